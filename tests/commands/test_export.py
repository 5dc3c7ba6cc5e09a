"""``nbops export``: the pipeline as an Airflow 3 DAG (loaded by Airflow's own DagBag, one
task run by ``airflow tasks test``) with its batch-scoring DAG, and as an Argo Workflow.

Airflow lives in a venv of its own (``make airflow-env`` creates ``.venv-airflow/``; its
dependencies clash with the project's); the Airflow tests run its python in a subprocess
and fail, not skip, when it is missing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nbops.cli import main
from nbops.commands.export import (
    RECORD_TASK,
    SCORE_TASK,
    ExportOptions,
    Pipeline,
    ScoreOptions,
    export,
    load_pipeline,
    render_airflow,
    render_airflow_score,
    render_argo,
)
from nbops.errors import ConfigError
from tests.conftest import ROOT, Project, _copy_project, build_env, run_cli

#: ``make airflow-env``'s venv; NBOPS_AIRFLOW_VENV points at another (e.g. in a worktree).
AIRFLOW_PYTHON = (
    Path(os.environ.get("NBOPS_AIRFLOW_VENV") or ROOT / ".venv-airflow") / "bin" / "python"
)

#: A project folder and task names that are Python, Jinja, Argo and shell syntax: the
#: exported files must treat them as data.
HOSTILE_PROJECT = '/srv/it\'s """{{ 7*7 }}""" $(touch pwned) `touch pwned` \\x.sh'
HOSTILE_TASKS: dict[str, tuple[str, ...]] = {
    "ingest {{ 7*7 }}": (),
    "train-{% raw %}$(touch pwned)'\"{#": ("ingest {{ 7*7 }}",),
    "evaluate {{=sprig.env('HOME')}}": ("train-{% raw %}$(touch pwned)'\"{#",),
}
#: Paths for the scoring DAG's params that are shell, option, Jinja and Python syntax:
#: each must reach `nbops score` as one argument, as typed. (`touch pwned` stands in for
#: `rm -rf ~`: the same injection, harmless if it ever ran.)
HOSTILE_PATHS = {
    "input": '--help; touch pwned $(touch pwned) `touch pwned` \'"{{ 7*7 }}"""" {% raw %}\\x.sh',
    "output": "x; touch pwned #{{ var.value.secret }} {# $HOME.sh",
}
#: Stands in for Ploomber: prints the arguments it gets, one a line.
ECHO_ARGS = "printf '%s\\n'"

#: The reference pipeline as Ploomber runs it: each task and what it depends on (the
#: notebooks' parameters cells), with the grid over env.yaml's train.models expanded.
REFERENCE = {
    "ingest": set(),
    "validate": {"ingest"},
    "split": {"ingest", "validate"},
    "train-linear": {"split"},
    "train-hgb": {"split"},
    "evaluate": {"split", "train-linear", "train-hgb"},
    "gate": {"ingest", "validate", "split", "evaluate"},
}

#: Loads every DAG file in each folder named with Airflow's DagBag (a bag per folder) and
#: prints what Airflow sees, by folder: one process for the module (Airflow's import is
#: 2 CPU-s). Its argument: ``{key: {"folder": path, "runs": [[dag_id, conf], ...]}}``,
#: the runs being DAG runs to render (a run triggered with that conf).
DAGBAG_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
except ImportError:
    from airflow.models.dagbag import DagBag
import airflow

from airflow.sdk.definitions.param import process_params


# The params a task of a run sees: Airflow merges the conf in and validates it.
def params(dag, task, conf=None):
    return process_params(dag, task, conf, suppress_exception=False)


# The fields of each task as Airflow renders them for a run with this conf.
def render(dag, conf):
    try:
        return {
            t.task_id: {
                field: t.render_template(getattr(t, field), {"params": params(dag, t, conf)})
                for field in ("bash_command", "cwd", "env")
            }
            for t in dag.tasks
        }
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def seen(bag, runs):
    return {
        "version": airflow.__version__,
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": {
            dag_id: {
                "schedule": dag.schedule if isinstance(dag.schedule, (str, type(None))) else repr(dag.schedule),
                "start_date": dag.start_date.isoformat() if dag.start_date else None,
                "max_active_runs": dag.max_active_runs,
                "max_active_tasks": dag.max_active_tasks,
                "tasks": {
                    t.task_id: {
                        "operator": f"{type(t).__module__}.{type(t).__name__}",
                        "upstream": sorted(t.upstream_task_ids),
                        "downstream": sorted(t.downstream_task_ids),
                        "bash_command": t.bash_command,
                        "cwd": t.cwd,
                        # what runs: the fields after Airflow's Jinja rendering
                        "rendered_command": t.render_template(t.bash_command, {"params": params(dag, t)}),
                        "rendered_cwd": t.render_template(t.cwd, {"params": params(dag, t)}),
                        "env": t.env,
                        "retries": t.retries,
                    }
                    for t in dag.tasks
                },
                "params": {name: dag.params[name] for name in dag.params},
            }
            for dag_id, dag in bag.dags.items()
        },
        "runs": [render(bag.dags[dag_id], conf) for dag_id, conf in runs],
    }


jobs = json.loads(sys.argv[1])
print(json.dumps({
    key: seen(DagBag(dag_folder=job["folder"], safe_mode=False), job["runs"])
    for key, job in jobs.items()
}))
"""


def downstream_of(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: {n for n, ups in graph.items() if name in ups} for name in graph}


def with_record(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The exported graph: the pipeline's, plus the record task after the last task(s)."""
    leaves = {n for n in graph if not any(n in ups for ups in graph.values())}
    return {**graph, RECORD_TASK: leaves}


def airflow_python() -> Path:
    if not AIRFLOW_PYTHON.is_file():
        pytest.fail(
            f"Apache Airflow 3 is not installed for these tests ({AIRFLOW_PYTHON} is missing): "
            "run `make airflow-env` in the project folder (a separate venv, .venv-airflow/, "
            "about 1 minute and 290 MB), then run the tests again."
        )
    return AIRFLOW_PYTHON


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    """Airflow in a throwaway home (its SQLite db, logs), no example DAGs."""
    env = {k: v for k, v in build_env().items() if not k.startswith("AIRFLOW")}
    home.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def run_airflow(args: list[str], env: dict[str, str], *, timeout: float) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, cwd=env["AIRFLOW_HOME"]
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout + result.stderr


def as_sets(tasks: dict[str, dict]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    return (
        {name: set(t["upstream"]) for name, t in tasks.items()},
        {name: set(t["downstream"]) for name, t in tasks.items()},
    )


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()


# -- reading the pipeline ------------------------------------------------------------


def test_load_pipeline_sees_ploombers_graph_with_grid_tasks(project: Project) -> None:
    pipeline = load_pipeline(project.root)
    assert pipeline.root == project.root.resolve()
    assert pipeline.name == "churn"  # env.yaml's release.model_name
    assert {name: set(ups) for name, ups in pipeline.upstream.items()} == REFERENCE
    assert list(pipeline.upstream)[0] == "ingest"


def test_grid_tasks_follow_env_yaml(make_project: Callable[..., Project]) -> None:
    project = make_project(train={"models": ["linear", "hgb", "forest"]})
    upstream = load_pipeline(project.root).upstream
    assert {n for n in upstream if n.startswith("train-")} == {
        "train-linear",
        "train-hgb",
        "train-forest",
    }
    assert set(upstream["evaluate"]) == {"split", "train-linear", "train-hgb", "train-forest"}


@pytest.mark.parametrize(
    ("model_name", "dag_id"),
    [("churn", "churn"), ("Churn model (v2)", "Churn-model-v2"), (None, "project0")],
)
def test_default_name_is_the_registered_model_or_the_folder(
    make_project: Callable[..., Project], model_name: str | None, dag_id: str
) -> None:
    project = make_project(release={"model_name": model_name})
    assert load_pipeline(project.root).name == dag_id


def test_no_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No pipeline.yaml in .*nbops init"):
        load_pipeline(tmp_path)


def test_a_pipeline_ploomber_cannot_load_is_a_clear_error(project: Project) -> None:
    (project.root / "pipeline.yaml").write_text("tasks:\n  - source: notebooks/missing.ipynb\n")
    with pytest.raises(ConfigError, match=r"Ploomber could not load .*pipeline.yaml"):
        load_pipeline(project.root)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "churn model"}, r"'churn model' is not a valid Airflow dag_id"),
        ({"retries": -1}, r"retries must be 0 or more"),
        ({"max_active_tasks": 0}, r"max_active_tasks must be at least 1"),
    ],
)
def test_bad_options_are_clear_errors(
    project: Project, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        render_airflow(load_pipeline(project.root), ExportOptions(**options))  # type: ignore[arg-type]


# -- Airflow 3 -----------------------------------------------------------------------


def hostile_pipeline() -> Pipeline:
    """A pipeline whose folder and task names are syntax (see :data:`HOSTILE_PROJECT`)."""
    return Pipeline(root=Path(HOSTILE_PROJECT), name="hostile", upstream=HOSTILE_TASKS)


@pytest.fixture(scope="module")
def dagbags(tmp_path_factory: pytest.TempPathFactory, module_env: None) -> dict[str, Any]:
    """What Airflow's DagBag sees in the DAG files of the two tests below, each set in a
    folder of its own, both loaded by one Airflow process (its import is 2 CPU-s):
    ``{"reference": (project, its four exported files, seen), "hostile": seen}``.

    The reference project exported twice (no options; every option, with a scoring
    schedule); the hostile pipeline's DAG, a scoring DAG whose params' defaults are
    hostile (a scheduled run uses them) and a tame one triggered with hostile values
    (the trigger form, the REST API)."""
    python = airflow_python()
    folder = tmp_path_factory.mktemp("dagbags")
    dags = folder / "dags"
    project = _copy_project(folder / "project0")
    manual, manual_score = export(project.root, "airflow", out=dags / "reference")
    daily, daily_score = export(
        project.root,
        "airflow",
        out=dags / "reference",
        options=ExportOptions(
            name="churn_daily",
            schedule="@daily",
            retries=2,
            project_dir="/srv/churn",
            ploomber="conda run -n churn ploomber",
            max_active_tasks=2,
        ),
        score=ScoreOptions(
            input="incoming/customers.csv", output="/srv/scores/out.parquet", schedule="@hourly"
        ),
    )
    pipeline = hostile_pipeline()
    hostile = dags / "hostile"
    hostile.mkdir(parents=True)
    (hostile / "hostile.py").write_text(render_airflow(pipeline, ExportOptions(ploomber=ECHO_ARGS)))
    scoring = ScoreOptions(nbops=ECHO_ARGS, **HOSTILE_PATHS)
    (hostile / "hostile_score.py").write_text(render_airflow_score(pipeline, None, scoring))
    tame = ExportOptions(name="tame")
    (hostile / "tame_score.py").write_text(
        render_airflow_score(pipeline, tame, ScoreOptions(nbops=ECHO_ARGS))
    )
    runs = [
        ["hostile_score", None],
        ["tame_score", HOSTILE_PATHS],
        ["tame_score", {"input": ""}],  # Airflow validates a run's params: refused
    ]
    jobs = {
        "reference": {"folder": str(dags / "reference"), "runs": []},
        "hostile": {"folder": str(hostile), "runs": runs},
    }
    out = run_airflow(
        [str(python), "-c", DAGBAG_SCRIPT, json.dumps(jobs)],
        airflow_env(folder / "airflow", dags),
        timeout=180,
    )
    seen = json.loads(out.strip().splitlines()[-1])
    files = (manual, manual_score, daily, daily_score)
    return {"reference": (project, files, seen["reference"]), "hostile": seen["hostile"]}


def test_airflow_dagbag_loads_the_exported_dags(dagbags: dict[str, Any]) -> None:
    project, (manual, manual_score, daily, daily_score), seen = dagbags["reference"]
    assert (manual.name, daily.name) == ("churn.py", "churn_daily.py")
    assert (manual_score.name, daily_score.name) == ("churn_score.py", "churn_daily_score.py")
    source = manual.read_text()
    assert "days_ago" not in source
    assert "from airflow.sdk import DAG" in source

    assert seen["version"].startswith("3.")
    assert seen["import_errors"] == {}
    assert set(seen["dags"]) == {"churn", "churn_daily", "churn_score", "churn_daily_score"}

    expected = with_record(REFERENCE)
    for dag_id in ("churn", "churn_daily"):
        dag = seen["dags"][dag_id]
        upstream, downstream = as_sets(dag["tasks"])
        assert upstream == expected, dag_id
        assert downstream == downstream_of(expected), dag_id
        assert dag["start_date"] == "2025-01-01T00:00:00+00:00"
        assert dag["max_active_runs"] == 1
        assert {t["operator"] for t in dag["tasks"].values()} == {
            "airflow.providers.standard.operators.bash.BashOperator"
        }

    tasks = seen["dags"]["churn"]["tasks"]
    assert seen["dags"]["churn"]["schedule"] is None
    assert seen["dags"]["churn"]["max_active_tasks"] == 1
    ploomber = str(Path(sys.executable).parent / "ploomber")
    assert tasks["train-hgb"]["bash_command"] == (
        f"{ploomber} build --partially train-hgb --skip-upstream"
    )
    assert tasks[RECORD_TASK]["bash_command"] == f"{ploomber} build"
    assert {t["cwd"] for t in tasks.values()} == {str(project.root.resolve())}
    assert {t["retries"] for t in tasks.values()} == {0}

    daily_dag = seen["dags"]["churn_daily"]
    assert daily_dag["schedule"] == "@daily"
    assert daily_dag["max_active_tasks"] == 2
    daily_tasks = daily_dag["tasks"]
    assert daily_tasks["gate"]["bash_command"] == (
        "conda run -n churn ploomber build --partially gate --skip-upstream"
    )
    assert {t["cwd"] for t in daily_tasks.values()} == {"/srv/churn"}
    assert {t["retries"] for t in daily_tasks.values()} == {2}

    # The scoring DAGs: one task running `nbops score` with the params' values.
    nbops = str(Path(sys.executable).parent / "nbops")
    scoring = seen["dags"]["churn_score"]
    assert scoring["schedule"] is None
    assert scoring["params"] == {"input": "data/score.parquet", "output": "scores/score.parquet"}
    assert set(scoring["tasks"]) == {SCORE_TASK}
    task = scoring["tasks"][SCORE_TASK]
    assert task["bash_command"] == (
        f'{nbops} score --out="$NBOPS_SCORE_OUTPUT" -- "$NBOPS_SCORE_INPUT"'
    )
    assert task["cwd"] == str(project.root.resolve())
    assert (task["env"]["NBOPS_SCORE_INPUT"], task["env"]["NBOPS_SCORE_OUTPUT"]) == (
        "{{ params.input }}",
        "{{ params.output }}",
    )
    daily_scoring = seen["dags"]["churn_daily_score"]
    assert daily_scoring["schedule"] == "@hourly"
    assert daily_scoring["max_active_runs"] == 1
    assert daily_scoring["params"] == {
        "input": "incoming/customers.csv",
        "output": "/srv/scores/out.parquet",
    }
    task = daily_scoring["tasks"][SCORE_TASK]
    assert task["bash_command"].startswith("conda run -n churn nbops score ")
    assert (task["cwd"], task["retries"]) == ("/srv/churn", 2)


def run_echo(command: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """The arguments ``command`` (a shell line starting with ECHO_ARGS) passes, run as
    Airflow's BashOperator runs it (``bash -c``, the task's env added to the worker's)."""
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_airflow_dag_treats_paths_and_task_names_as_data(
    dagbags: dict[str, Any], tmp_path: Path
) -> None:
    source = render_airflow(hostile_pipeline(), ExportOptions(ploomber=ECHO_ARGS))

    compile(source, "hostile.py", "exec")
    assert HOSTILE_PROJECT in (ast.get_docstring(ast.parse(source)) or "")

    # Airflow's view of that DAG and of two scoring DAGs (see dagbags): the runs of the
    # hostile one and of the tame one triggered with hostile values, then with a bad one.
    seen = dagbags["hostile"]
    assert seen["import_errors"] == {}
    assert seen["dags"]["hostile_score"]["params"] == HOSTILE_PATHS
    work = tmp_path / "work"
    work.mkdir()
    for run in seen["runs"][:2]:
        task = run[SCORE_TASK]
        assert task["cwd"] == HOSTILE_PROJECT
        assert run_echo(task["bash_command"], work, task["env"]) == [
            "score",
            f"--out={HOSTILE_PATHS['output']}",
            "--",
            HOSTILE_PATHS["input"],
        ]
    assert "ParamValidationError" in seen["runs"][2]["error"]
    assert list(work.iterdir()) == []  # no `touch pwned` ran

    tasks = seen["dags"]["hostile"]["tasks"]
    assert len(tasks) == len(HOSTILE_TASKS) + 1
    assert {t["rendered_cwd"] for t in tasks.values()} == {HOSTILE_PROJECT}

    ran = sorted(run_echo(t["rendered_command"], work) for t in tasks.values())
    assert ran == sorted(
        [["build"]] + [["build", "--partially", name, "--skip-upstream"] for name in HOSTILE_TASKS]
    )
    assert list(work.iterdir()) == []  # no $(touch pwned) ran


def test_an_exported_task_runs_in_airflow_and_records_a_run(
    project: Project, tmp_path: Path
) -> None:
    """`airflow tasks test` runs the ingest task for real: notebook, report and snapshot in
    the project's products/, and a run record of its own in the project's store."""
    python = airflow_python()
    dags = tmp_path / "dags"
    export(project.root, "airflow", out=dags, options=ExportOptions(name="churn_run"))
    env = airflow_env(tmp_path / "airflow", dags)
    airflow = str(python.parent / "airflow")
    run_airflow([airflow, "db", "migrate"], env, timeout=300)
    output = run_airflow([airflow, "tasks", "test", "churn_run", "ingest"], env, timeout=600)

    for product in ("ingest.ipynb", "ingest.html", "data/snapshot.parquet"):
        assert (project.products / product).is_file(), (
            f"{product} missing; airflow said:\n{output[-6000:]}"
        )
    assert not (project.products / "validate.ipynb").exists()
    shown = run_cli(project.root, "runs", "show", "latest").stdout
    assert "ploomber build --partially ingest --skip-upstream" in shown
    assert "trigger: manual" in shown
    assert "ingest" in shown and "executed" in shown


# -- Argo Workflows ------------------------------------------------------------------


def test_argo_workflow_mirrors_the_pipeline(project: Project, tmp_path: Path) -> None:
    (path,) = export(project.root, "argo", out=tmp_path)
    manifest = yaml.safe_load(path.read_text())
    assert manifest["kind"] == "Workflow"
    assert manifest["metadata"]["generateName"] == "churn-"
    spec = manifest["spec"]
    dag = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]
    graph = {t["name"]: set(t.get("dependencies", [])) for t in dag["tasks"]}
    assert graph == with_record(REFERENCE)
    args = {t["name"]: t["arguments"]["parameters"][0]["value"] for t in dag["tasks"]}
    assert args["train-linear"] == "build --partially train-linear --skip-upstream"
    assert args[RECORD_TASK] == "build"


def test_argo_workflow_treats_task_names_as_data(tmp_path: Path) -> None:
    pipeline = Pipeline(root=Path(HOSTILE_PROJECT), name="hostile", upstream=HOSTILE_TASKS)
    text = render_argo(pipeline, ExportOptions(ploomber=ECHO_ARGS))
    manifest = yaml.safe_load(text)

    assert text.splitlines()[0].startswith("# ")  # the path did not break the header
    template = manifest["spec"]["templates"][1]["container"]["args"][0]
    assert template == f"{ECHO_ARGS} {{{{inputs.parameters.args}}}}"
    steps = manifest["spec"]["templates"][0]["dag"]["tasks"]
    values = [step["arguments"]["parameters"][0]["value"] for step in steps]
    # Argo reads every {{ in a step's arguments as an expression: none may reach it.
    assert [v for v in values if "{{" in v or "}}" in v] == []
    # What the step's `sh -c` runs once Argo put the value in the template.
    ran = [run_echo(template.replace("{{inputs.parameters.args}}", v), tmp_path) for v in values]
    assert ran == [
        *(["build", "--partially", name, "--skip-upstream"] for name in HOSTILE_TASKS),
        ["build"],
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["project_dir", "ploomber", "image"])
def test_argo_refuses_template_braces_it_cannot_escape(option: str) -> None:
    pipeline = Pipeline(root=Path("/srv/churn"), name="churn", upstream={"ingest": ()})
    with pytest.raises(ConfigError, match=rf"{option} .* holds '{{{{', which Argo would read"):
        if option == "image":
            render_argo(pipeline, image="/srv/{{ x }}")
        else:
            render_argo(pipeline, ExportOptions(**{option: "/srv/{{ x }}"}))  # type: ignore[arg-type]


def test_argo_with_a_schedule_is_a_cron_workflow(project: Project) -> None:
    text = render_argo(
        load_pipeline(project.root), ExportOptions(schedule="0 3 * * *"), image="reg/churn:1"
    )
    manifest = yaml.safe_load(text)
    assert manifest["kind"] == "CronWorkflow"
    assert manifest["spec"]["schedule"] == "0 3 * * *"
    step = manifest["spec"]["workflowSpec"]["templates"][1]
    assert step["container"]["image"] == "reg/churn:1"
    assert {"name": "NBOPS_TRIGGER", "value": "schedule"} in step["container"]["env"]


# -- the command ---------------------------------------------------------------------


def test_cli_writes_the_dag_file(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root / "notebooks")  # found from a subfolder too
    result = CliRunner().invoke(
        main,
        [
            "export",
            "airflow",
            "--out",
            "dags",
            "--schedule",
            "@hourly",
            "--retries",
            "1",
            "--score-input",
            "in/today.csv",
            "--score-schedule",
            "@daily",
        ],
    )
    assert result.exit_code == 0, result.output
    path = project.root / "notebooks" / "dags" / "churn.py"
    assert result.stdout.splitlines() == [
        f"Wrote {Path('dags') / 'churn.py'}",
        f"Wrote {Path('dags') / 'churn_score.py'}",
    ]
    source = path.read_text()
    assert 'schedule="@hourly"' in source
    assert '"retries": 1' in source
    scoring = path.with_name("churn_score.py").read_text()
    assert 'schedule="@daily"' in scoring
    assert '"in/today.csv"' in scoring


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["export", "airflow", "--help"])
    assert result.exit_code == 0
    assert "Example:\n    nbops export airflow --out" in result.stdout
    assert "--dag-id" in result.stdout and "--schedule" in result.stdout


def test_cli_outside_a_project_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["export", "airflow"])
    assert result.exit_code == 1
    assert "No pipeline.yaml in" in result.output
    assert "Traceback" not in result.output


# -- the scoring DAG -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("export_options", "score_options", "message"),
    [
        ({}, {"input": ""}, r"default input path '' is empty .* \(--score-input\)"),
        ({}, {"output": "a\0b"}, r"default output path .* NUL character"),
        ({"ploomber": "/opt/run-ploomber.sh"}, {}, r"how the workers start nbops .* --nbops"),
        ({"name": "churn" + "x" * 245}, {}, r"'churnx+_score' is not a valid Airflow dag_id"),
    ],
)
def test_bad_scoring_options_are_clear_errors(
    export_options: dict[str, str], score_options: dict[str, str], message: str
) -> None:
    pipeline = Pipeline(root=Path("/srv/churn"), name="churn", upstream={"ingest": ()})
    with pytest.raises(ConfigError, match=message):
        render_airflow_score(
            pipeline, ExportOptions(**export_options), ScoreOptions(**score_options)
        )  # type: ignore[arg-type]
