"""Export the pipeline to a scheduler: an Apache Airflow 3 DAG file (or an Argo Workflow).

The pipeline is read with Ploomber's own loader (``pipeline.yaml`` and ``env.yaml``,
grid tasks expanded, upstream dependencies taken from the notebooks' parameters cells),
so the exported graph is exactly the one ``ploomber build`` runs. Every Ploomber task
becomes one scheduler task that runs, in the project folder::

    ploomber build --partially NAME --skip-upstream

rather than ``ploomber task NAME``: it runs only that task (the scheduler has already
run its upstream), still skips it when its products are up to date (``ploomber task``
fails on an up-to-date task, so a rerun or a retry of the DAG would fail), and runs the
build-level hooks, so every scheduler task leaves a complete run record of its own: that
task executed, its upstream tasks skipped with a pointer to the run that produced their
products. A final ``nbops-record`` task runs a plain ``ploomber build``: everything is up
to date by then, so it executes nothing and (``NBOPS_RECORD_UP_TO_DATE=1``, set for
every step; a build with nothing to do is otherwise not recorded) records the whole
pipeline as one run (data
hash, parameters, metrics, each task pointing at the run that produced it), the run a
reviewer looks for; anything left out of date would be built there.

The Airflow export also writes a batch-scoring DAG, ``<dag-id>_score``: one task running
``nbops score INPUT --out OUTPUT`` with the registry's model, the two paths being the
DAG's params. They reach ``nbops`` through environment variables, never through the
shell line or Jinja, so whatever path a user types arrives as one argument, verbatim.

Rendering is plain string work; only :func:`load_pipeline` touches Ploomber.

Example::

    from nbops.commands.export import ExportOptions, export
    export(Path("."), "airflow", out=Path("dist/airflow"), options=ExportOptions(schedule="@daily"))
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import ConfigError
from nbops.project import in_folder
from nbops.state import atomic_write

__all__ = [
    "FORMATS",
    "RECORD_TASK",
    "SCORE_TASK",
    "ExportOptions",
    "Pipeline",
    "ScoreOptions",
    "default_ploomber",
    "export",
    "load_pipeline",
    "render_airflow",
    "render_airflow_score",
    "render_argo",
]

#: The scheduler task that records the whole pipeline as one run at the end.
RECORD_TASK = "nbops-record"
#: The one task of the batch-scoring DAG.
SCORE_TASK = "score"
FORMATS = ("airflow", "argo")
#: What Airflow accepts in a dag_id or task_id (``airflow.utils.helpers.KEY_REGEX``).
_AIRFLOW_KEY = re.compile(r"^[\w.-]{1,250}$")
#: Argo task names (DNS-1123 labels, shorter to leave room for pod-name suffixes).
_ARGO_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: The fixed start date of every exported DAG: Airflow 3 has no ``days_ago``, and a
#: moving start date makes schedules unpredictable.
_START = (2025, 1, 1)


@dataclass(frozen=True)
class ExportOptions:
    """What the Airflow and the Argo export both take (checked when made).

    Attributes:
        project_dir: where the project is on the workers (default: Airflow, the project's
            own folder; Argo, ``/project``).
        ploomber: how the workers start Ploomber, a path or a command prefix such as
            ``conda run -n churn ploomber`` (default: Airflow, :func:`default_ploomber`;
            Argo, ``ploomber`` in the image).
        name: the DAG's ``dag_id`` or the workflow's name (default: the pipeline's name).
        schedule: ``@daily``, a cron expression; None = manual runs only.
        retries: retries of each task.
        max_active_tasks: tasks running at once. 1 (the default) runs them one at a time
            like ``ploomber build``; more lets grid tasks train side by side, but their
            builds then race on ``.nbops/lineage.json`` and a record may point at an
            older run for a skipped task.
    """

    project_dir: str | None = None
    ploomber: str | None = None
    name: str | None = None
    schedule: str | None = None
    retries: int = 0
    max_active_tasks: int = 1

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {self.retries}.")
        if self.max_active_tasks < 1:
            raise ConfigError(f"max_active_tasks must be at least 1, got {self.max_active_tasks}.")


@dataclass(frozen=True)
class ScoreOptions:
    """The batch-scoring DAG that ``nbops export airflow`` writes beside the pipeline's.

    Attributes:
        input: the default of the DAG's ``input`` param, the file to score (relative to
            the project folder, or absolute); a run can be given another.
        output: the default of the ``output`` param, where the scores go.
        schedule: ``@daily``, a cron expression; None = manual runs only.
        nbops: how the workers start nbops (default: beside ``ExportOptions.ploomber``,
            e.g. ``conda run -n churn nbops`` for ``conda run -n churn ploomber``).
    """

    input: str = "data/score.parquet"
    output: str = "scores/score.parquet"
    schedule: str | None = None
    nbops: str | None = None

    def __post_init__(self) -> None:
        for option in ("input", "output"):
            value = getattr(self, option)
            if not value or "\0" in value:
                raise ConfigError(
                    f"The scoring DAG's default {option} path {value!r} is empty or holds a "
                    f"NUL character: give a file path (--score-{option})."
                )


@dataclass(frozen=True)
class Pipeline:
    """The graph of a Ploomber pipeline, as plain values.

    Attributes:
        root: the project folder (holds ``pipeline.yaml``).
        name: a default name for the exported workflow: env.yaml's
            ``release.model_name``, else the folder's name.
        upstream: every task name (Ploomber's order) with the names it depends on.
    """

    root: Path
    name: str
    upstream: dict[str, tuple[str, ...]]


def load_pipeline(root: Path) -> Pipeline:
    """Read the pipeline in ``root`` with Ploomber's loader (``pipeline.yaml`` + ``env.yaml``).

    Raises:
        ConfigError: no ``pipeline.yaml`` in ``root``, or Ploomber cannot load it.
    """
    root = Path(root).resolve()
    spec_path = root / "pipeline.yaml"
    if not spec_path.is_file():
        raise ConfigError(
            f"No pipeline.yaml in {root}: run the export from a project folder "
            "(or create one with `nbops init DIR`)."
        )
    from ploomber.exceptions import (
        DAGSpecInitializationError,
        SourceInitializationError,
        TaskInitializationError,
    )
    from ploomber.spec import DAGSpec

    ploomber_errors = (
        Exception,
        DAGSpecInitializationError,
        SourceInitializationError,
        TaskInitializationError,
    )
    try:
        # In the project folder, as the workers run it: Ploomber prefers the env.yaml of
        # the working directory to the one beside pipeline.yaml.
        with in_folder(root), warnings.catch_warnings():
            # e.g. "placeholders declared in the environment but unused" (monitor: ...)
            warnings.simplefilter("ignore")
            spec = DAGSpec(str(spec_path))
            dag = spec.to_dag()
    except ploomber_errors as exc:
        raise ConfigError(
            f"Ploomber could not load {spec_path}: {str(exc).strip().rstrip('.')}. Check that "
            "`ploomber build` works in that folder, then export again."
        ) from exc
    upstream = {str(name): tuple(sorted(str(u) for u in dag[name].upstream)) for name in dag}
    release = spec.env.get("release", {})
    model_name = release.get("model_name") if hasattr(release, "get") else None
    # A name every scheduler accepts (see the id patterns above); --dag-id overrides it.
    name = re.sub(r"[^A-Za-z0-9-]+", "-", str(model_name or root.name)).strip("-")
    return Pipeline(root=root, name=name or "pipeline", upstream=upstream)


def default_ploomber() -> str:
    """The ``ploomber`` executable of the environment running nbops (its venv's bin)."""
    return str(Path(sys.executable).parent / "ploomber")


def export(
    root: Path,
    fmt: str = "airflow",
    *,
    out: Path,
    options: ExportOptions | None = None,
    image: str = "nbops:latest",
    score: ScoreOptions | None = None,
) -> list[Path]:
    """Write the pipeline in ``root`` as an Airflow DAG file (``fmt="airflow"``), and its
    batch-scoring DAG file (``score``), or as an Argo Workflow (``fmt="argo"``) into the
    folder ``out``; returns the files written, the pipeline's first.

    ``image`` is the Argo steps' container image.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    options = options or ExportOptions()
    pipeline = load_pipeline(root)
    name = options.name or pipeline.name
    if fmt == "airflow":
        module = _python_module_name(name)
        files = {
            Path(out) / f"{module}.py": render_airflow(pipeline, options),
            Path(out) / f"{module}_score.py": render_airflow_score(pipeline, options, score),
        }
    else:
        files = {Path(out) / f"{name}.yaml": render_argo(pipeline, options, image=image)}
    for path, text in files.items():
        atomic_write(path, text)  # a scheduler may be reading the DAG folder right now
    return list(files)


# -- Airflow 3 -------------------------------------------------------------------------


def render_airflow(pipeline: Pipeline, options: ExportOptions | None = None) -> str:
    """The source of an Airflow 3 DAG file for ``pipeline`` (from :func:`load_pipeline`)."""
    options = options or ExportOptions()
    dag_id = options.name or pipeline.name
    if not _AIRFLOW_KEY.match(dag_id):
        raise ConfigError(
            f"{dag_id!r} is not a valid Airflow dag_id: use letters, digits, '_', '-' and '.' "
            "only (choose one with --dag-id)."
        )
    task_ids = _task_ids(pipeline, _AIRFLOW_KEY, lambda n: re.sub(r"[^\w.-]", "_", n))
    project = str(options.project_dir or pipeline.root)
    command = options.ploomber or shlex.quote(default_ploomber())

    lines = [
        f'"""Airflow 3 DAG {_py(dag_id)}: the Ploomber pipeline in {_docstring(project)}, one',
        "Airflow task per Ploomber task, generated by `nbops export airflow`. Export again",
        "when tasks or their dependencies change (pipeline.yaml, a notebook's upstream, the",
        "grid in env.yaml); other edits to notebooks and env.yaml are picked up by the next",
        "run as they are.",
        "",
        "Each task runs `ploomber build --partially TASK --skip-upstream` in the project folder",
        "and records a run of its own (that task executed, upstream tasks skipped). The last",
        f"task, {RECORD_TASK}, runs `ploomber build`: everything is up to date by then, so it",
        "executes nothing and records the whole pipeline as one run, each task pointing at",
        "the run that produced it. The workers need the project folder and its environment.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime",
        "",
        "import pendulum",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.sdk import DAG",
        "",
        f"PROJECT = {_py(project)}",
        f"PLOOMBER = {_py(command)}",
        "ENV = {",
        '    "PLOOMBER_STATS_ENABLED": "false",',
        '    "PLOOMBER_VERSION_CHECK_DISABLED": "true",',
        "    # every step leaves a run record, also one that finds its task up to date",
        '    "NBOPS_RECORD_UP_TO_DATE": "1",',
        "    # the run record's trigger: schedule for scheduled runs and backfills, else manual",
        "    \"NBOPS_TRIGGER\": \"{{ 'schedule' if dag_run.run_type in ('scheduled', 'backfill') "
        "else 'manual' }}\",",
        "}",
        "",
        "",
        *_AIRFLOW_LITERAL,
        "def ploomber(task_id: str, command: str) -> BashOperator:",
        '    """A task that runs a Ploomber command in the project folder."""',
        "    return BashOperator(",
        "        task_id=task_id,",
        "        # the project path and task names are data, not templates",
        '        bash_command=literal(f"{PLOOMBER} {command}"),',
        "        cwd=literal(PROJECT),",
        "        env=ENV,",
        "        append_env=True,",
        "    )",
        "",
        "",
        "with DAG(",
        f"    dag_id={_py(dag_id)},",
        f"    schedule={_py(options.schedule)},",
        f'    start_date=pendulum.datetime({_START[0]}, {_START[1]}, {_START[2]}, tz="UTC"),',
        "    catchup=False,",
        "    # runs share the project folder: one at a time",
        "    max_active_runs=1,",
        f"    max_active_tasks={options.max_active_tasks},",
        f'    default_args={{"retries": {options.retries}, "retry_delay": datetime.timedelta(minutes=5)}},',
        '    tags=["nbops", "ploomber"],',
        "    doc_md=__doc__,",
        "):",
        "    tasks = {",
    ]
    for name, task_id in task_ids.items():
        command_args = f"build --partially {shlex.quote(name)} --skip-upstream"
        lines.append(f"        {_py(task_id)}: ploomber({_py(task_id)}, {_py(command_args)}),")
    lines += [
        "    }",
        f'    record = ploomber({_py(RECORD_TASK)}, "build")',
        "",
    ]
    for name, upstream in pipeline.upstream.items():
        if upstream:
            lines.append(
                f"    {_airflow_list([task_ids[u] for u in upstream])} >> tasks[{_py(task_ids[name])}]"
            )
    leaves = _leaves(pipeline)
    lines.append(f"    {_airflow_list([task_ids[n] for n in leaves])} >> record")
    return "\n".join(lines) + "\n"


#: The DAG files' helper that keeps a value out of Airflow's Jinja templating.
_AIRFLOW_LITERAL = [
    "def literal(text: str) -> str:",
    '    """``text`` as it is in a field Airflow renders with Jinja (bash_command, cwd):',
    "    each brace becomes an expression printing a brace, and a value ending like a",
    '    template file name (.sh, .bash) is not read as one."""',
    '    text = text.replace("{", "{{ \'{\' }}")',
    '    return text + "{{ \'\' }}" if text.endswith((".sh", ".bash")) else text',
    "",
    "",
]


def render_airflow_score(
    pipeline: Pipeline, options: ExportOptions | None = None, score: ScoreOptions | None = None
) -> str:
    """The source of an Airflow 3 DAG file that scores a file with ``nbops score``.

    Its ``dag_id`` is the pipeline DAG's with ``_score``; ``project_dir`` and
    ``retries`` come from ``options``, the params' defaults and the schedule from
    ``score``. The params reach the command as environment variables (Airflow renders
    ``{{ params.input }}`` once: a value's own ``{{ }}`` is text) quoted in the shell
    line, so a path such as ``x; rm -rf ~`` is one argument, as typed.
    """
    options = options or ExportOptions()
    score = score or ScoreOptions()
    dag_id = f"{options.name or pipeline.name}_score"
    if not _AIRFLOW_KEY.match(dag_id):
        raise ConfigError(
            f"{dag_id!r} is not a valid Airflow dag_id: use letters, digits, '_', '-' and '.' "
            "only (choose one with --dag-id)."
        )
    project = str(options.project_dir or pipeline.root)
    nbops = score.nbops or _nbops_beside(options.ploomber)
    lines = [
        f'"""Airflow 3 DAG {_py(dag_id)}: batch scoring with the registry\'s model, for the',
        f"project in {_docstring(project)}, generated by `nbops export airflow`.",
        "",
        f"One task, {SCORE_TASK}, runs `nbops score INPUT --out OUTPUT` in the project folder:",
        "the champion of the project's model scores INPUT (.csv or .parquet) into OUTPUT,",
        "rejected rows beside it, and the job is recorded as a run (`nbops runs list`).",
        "INPUT and OUTPUT are the DAG's params `input` and `output` (relative to the",
        "project folder, or absolute): scheduled runs take the defaults below, a manual run",
        "can be given others. A value is used exactly as typed, one argument: it is not read",
        "by the shell, and Airflow renders no template inside it (a date macro stays text).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime",
        "",
        "import pendulum",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.sdk import DAG, Param",
        "",
        f"PROJECT = {_py(project)}",
        f"NBOPS = {_py(nbops)}",
        "",
        "",
        *_AIRFLOW_LITERAL,
        "# The paths are data: Airflow puts each param into an environment variable (its",
        '# value is not rendered again), and the shell expands a quoted "$VAR" to exactly',
        "# that value, one argument; `--` ends the options, so no input is read as one.",
        'SCORE = literal(f\'{NBOPS} score --out="$NBOPS_SCORE_OUTPUT" -- "$NBOPS_SCORE_INPUT"\')',
        "",
        "with DAG(",
        f"    dag_id={_py(dag_id)},",
        f"    schedule={_py(score.schedule)},",
        f'    start_date=pendulum.datetime({_START[0]}, {_START[1]}, {_START[2]}, tz="UTC"),',
        "    catchup=False,",
        "    # runs write the same output: one at a time",
        "    max_active_runs=1,",
        f'    default_args={{"retries": {options.retries}, "retry_delay": datetime.timedelta(minutes=5)}},',
        "    params={",
        '        "input": Param(',
        f"            {_py(score.input)},",
        '            type="string",',
        "            minLength=1,",
        '            description="The file to score (.csv, .parquet); relative to the project folder.",',
        "        ),",
        '        "output": Param(',
        f"            {_py(score.output)},",
        '            type="string",',
        "            minLength=1,",
        '            description="Where the scores go (.parquet, .csv); rejected rows go beside it.",',
        "        ),",
        "    },",
        '    tags=["nbops", "score"],',
        "    doc_md=__doc__,",
        "):",
        "    BashOperator(",
        f"        task_id={_py(SCORE_TASK)},",
        "        bash_command=SCORE,",
        "        cwd=literal(PROJECT),",
        "        env={",
        '            "NBOPS_SCORE_INPUT": "{{ params.input }}",',
        '            "NBOPS_SCORE_OUTPUT": "{{ params.output }}",',
        '            "PLOOMBER_STATS_ENABLED": "false",',
        '            "PLOOMBER_VERSION_CHECK_DISABLED": "true",',
        "        },",
        "        append_env=True,",
        "    )",
    ]
    return "\n".join(lines) + "\n"


def _nbops_beside(ploomber: str | None) -> str:
    """How the workers start nbops, from how they start Ploomber: the same prefix or folder."""
    if ploomber is None:
        return shlex.quote(str(Path(sys.executable).parent / "nbops"))
    if ploomber == "ploomber" or ploomber.endswith(("/ploomber", " ploomber")):
        return ploomber[: -len("ploomber")] + "nbops"
    raise ConfigError(
        f"Cannot tell how the workers start nbops from --ploomber {ploomber!r}: give it "
        "with --nbops (a path or a command prefix such as 'conda run -n churn nbops')."
    )


def _airflow_list(task_ids: list[str]) -> str:
    items = [f"tasks[{_py(t)}]" for t in task_ids]
    return items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"


def _py(value: str | None) -> str:
    """A Python literal for ``value``, in double quotes like the rest of the file."""
    return "None" if value is None else json.dumps(value)


def _docstring(value: str) -> str:
    """``value`` as text inside the DAG file's docstring: quotes, backslashes and control
    characters escaped (a path holding ``\"\"\"`` would end the docstring)."""
    return json.dumps(value)[1:-1]


def _python_module_name(name: str) -> str:
    # The DAG file is imported by Airflow: keep its name a plain module name.
    return re.sub(r"\W", "_", name)


# -- Argo Workflows --------------------------------------------------------------------


def render_argo(
    pipeline: Pipeline, options: ExportOptions | None = None, *, image: str = "nbops:latest"
) -> str:
    """An Argo Workflows manifest for ``pipeline``: a ``Workflow`` (or a ``CronWorkflow``
    when ``schedule`` is a cron expression) whose DAG template mirrors the pipeline, each
    step running the same Ploomber command as the Airflow export in ``image``.

    The project folder must be where the pods see it (``project_dir``, default
    ``/project``), e.g. on a ReadWriteMany volume, here the claim ``nbops-project``.
    """
    options = options or ExportOptions()
    given = options.name or pipeline.name
    name = given.lower()
    if not _ARGO_NAME.match(name):
        raise ConfigError(
            f"{given!r} is not a valid Argo workflow name: use letters, digits and '-' "
            "(choose one with --dag-id)."
        )
    task_ids = _task_ids(
        pipeline, _ARGO_NAME, lambda n: re.sub(r"[^a-z0-9]+", "-", n.lower()).strip("-")
    )
    project = options.project_dir or "/project"
    command = options.ploomber or "ploomber"
    for option, value in (("project_dir", project), ("ploomber", command), ("image", image)):
        if "{{" in value:
            raise ConfigError(
                f"{option} {value!r} holds '{{{{', which Argo would read as a template "
                "expression (Argo has no way to escape it): choose one without '{{'."
            )

    def step(task_id: str, args: str) -> dict[str, object]:
        return {
            "name": task_id,
            "template": "ploomber",
            "arguments": {"parameters": [{"name": "args", "value": args}]},
        }

    dag_tasks: list[dict[str, object]] = []
    for task_name, task_id in task_ids.items():
        entry = step(task_id, f"build --partially {_argo_quote(task_name)} --skip-upstream")
        if pipeline.upstream[task_name]:
            entry["dependencies"] = [task_ids[u] for u in pipeline.upstream[task_name]]
        dag_tasks.append(entry)
    record = step(RECORD_TASK, "build")
    record["dependencies"] = [task_ids[n] for n in _leaves(pipeline)]
    dag_tasks.append(record)

    workflow_spec: dict[str, object] = {
        "entrypoint": "pipeline",
        "parallelism": options.max_active_tasks,
        "volumes": [{"name": "project", "persistentVolumeClaim": {"claimName": "nbops-project"}}],
        "templates": [
            {"name": "pipeline", "dag": {"tasks": dag_tasks}},
            {
                "name": "ploomber",
                "inputs": {"parameters": [{"name": "args"}]},
                "retryStrategy": {"limit": str(options.retries)},
                "container": {
                    "image": image,
                    "command": ["sh", "-c"],
                    "args": [f"{command} {{{{inputs.parameters.args}}}}"],
                    "workingDir": project,
                    "env": [
                        {"name": "PLOOMBER_STATS_ENABLED", "value": "false"},
                        {"name": "PLOOMBER_VERSION_CHECK_DISABLED", "value": "true"},
                        {"name": "NBOPS_RECORD_UP_TO_DATE", "value": "1"},
                        {
                            "name": "NBOPS_TRIGGER",
                            "value": "schedule" if options.schedule else "manual",
                        },
                    ],
                    "volumeMounts": [{"name": "project", "mountPath": project}],
                },
            },
        ],
    }
    metadata = {"generateName": f"{name}-", "labels": {"app.kubernetes.io/part-of": "nbops"}}
    if options.schedule:
        manifest: dict[str, object] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": name, "labels": metadata["labels"]},
            "spec": {
                "schedule": options.schedule,
                "concurrencyPolicy": "Forbid",
                "workflowSpec": workflow_spec,
            },
        }
    else:
        manifest = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": metadata,
            "spec": workflow_spec,
        }
    import yaml

    header = (
        f"# Argo Workflows manifest for the Ploomber pipeline in {_py(str(pipeline.root))}, generated\n"
        "# by `nbops export argo` from pipeline.yaml. Each step runs\n"
        "# `ploomber build --partially TASK --skip-upstream` on the project volume; the last\n"
        f"# step ({RECORD_TASK}) records the whole pipeline as one run. Submit with\n"
        f"#   argo submit {name}.yaml\n"
    )
    return header + yaml.safe_dump(manifest, sort_keys=False, width=100)


def _argo_quote(value: str) -> str:
    """``value`` quoted for the step's ``sh -c`` and hidden from Argo's templating: every
    brace ends and restarts the shell quoting (``'a{''{b'`` is ``a{{b`` to the shell),
    so no ``{{`` reaches Argo."""
    return shlex.quote(value).replace("{", "{''").replace("}", "}''")


# -- shared ----------------------------------------------------------------------------


def _task_ids(
    pipeline: Pipeline, pattern: re.Pattern[str], clean: Callable[[str], str]
) -> dict[str, str]:
    """Scheduler task ids for the Ploomber task names (cleaned where a name is not allowed)."""
    ids: dict[str, str] = {}
    for name in pipeline.upstream:
        task_id = name if pattern.match(name) else clean(name)
        if not pattern.match(task_id):
            raise ConfigError(
                f"The task name {name!r} cannot be a scheduler task id: rename it in "
                "pipeline.yaml (letters, digits, '-' and '_')."
            )
        if task_id in ids.values() or task_id == RECORD_TASK:
            raise ConfigError(
                f"Two tasks would share the scheduler task id {task_id!r} (from {name!r}): "
                "rename one in pipeline.yaml."
            )
        ids[name] = task_id
    return ids


def _leaves(pipeline: Pipeline) -> list[str]:
    """Tasks nothing depends on: the record step waits for these (and so for all)."""
    needed = {u for ups in pipeline.upstream.values() for u in ups}
    return [name for name in pipeline.upstream if name not in needed]
