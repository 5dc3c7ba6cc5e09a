"""Ploomber hooks that turn a build into a run record. Declared in ``pipeline.yaml``::

    on_finish: nbops.build.hooks.build_finished      # DAG level (ploomber build)
    on_failure: nbops.build.hooks.build_failed
    tasks:
      - source: notebooks/ingest.ipynb
        on_finish: nbops.build.hooks.task_finished   # every task
        on_failure: nbops.build.hooks.task_failed

or, in a project adopted with ``nbops adopt``, by one DAG-level line::

    on_render: nbops.build.hooks.build_rendered

which, when Ploomber renders the pipeline, wraps every task's hooks (the user's own
``on_render``/``on_finish``/``on_failure`` still run, first) and the DAG's
``on_finish``/``on_failure`` the same way: Ploomber allows one hook of each kind, so
nbops composes with the user's instead of taking the slot. Tasks built in other
processes (``executor: parallel``) hand their records back through
``.nbops/tmp/<build id>/tasks/``; the DAG hooks settle every task's status from the
DAG itself, so a task whose hook never ran is still recorded as what it was.

A task whose code mentions MLflow (or ``nbops.log_model``) runs with its own MLflow run
of the build in its environment (``MLFLOW_RUN_ID``, ``MLFLOW_TRACKING_URI``; see
:mod:`nbops.tracking.taskruns` and :class:`RunIn`), so its plain ``mlflow.log_*`` calls
land in that run; a model it releases with ``nbops.log_model`` becomes the build's
release. The build's headline metrics are the ``headline_metrics`` setting
(:func:`headline_setting`), never whichever task ran last.

Task hooks only collect (paths, parameters, status, timings) into the process's
:class:`~nbops.tracking.record.BuildRecord`; the DAG hooks add lineage and skipped tasks,
write the build summary page and link the reports (:mod:`nbops.reports.site`), and
publish once. ``ploomber task NAME`` runs no DAG hooks, so an ``atexit`` handler
publishes what the task hooks collected. When the build's notebooks run in kernels
forked from a template process, a child of that template publishes the record
(:mod:`nbops.build.recorder`): the template imports MLflow for the gate notebook, or
while it waits, and this process never does. Otherwise MLflow is imported in a
background thread while the notebooks run, so publishing costs little at the end.

A store that cannot take the record never fails the build: the record is spooled to
``.nbops/spool/`` and the message says to run ``nbops sync``. A capture that goes wrong
(a task nbops could not read) is never silent: what was captured is kept, the warning
names the task, and the build exits non-zero.
Secrets never reach the record (:mod:`nbops.tracking.redact`): secret-looking
``--env--*`` values, parameters and env.yaml entries, and URL credentials are hidden in
the command line, parameters, errors, the git diff, the summary page and the copies of
the reports that are recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback as tb_module
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from nbops.state import StateFile, atomic_write
from nbops.tracking import lineage
from nbops.tracking.record import (
    EXECUTED,
    FAILED,
    NOT_RUN,
    SKIPPED,
    BuildRecord,
    TaskRecord,
    headline_metrics,
)
from nbops.tracking.record import numeric_leaves as _numbers
from nbops.tracking.redact import redact, redact_command, scrub, secret_values
from nbops.tracking.store import enabled

__all__ = [
    "build_failed",
    "build_finished",
    "build_rendered",
    "task_failed",
    "task_finished",
    "trigger",
]

log = logging.getLogger(__name__)

TRIGGERS = ("manual", "ci", "schedule", "drift")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_build: _Build | None = None
_capture_seconds = [0.0]
_capture_cpu = [0.0]  # CPU seconds of the hooks' thread meanwhile


def trigger() -> str:
    """Why this build runs: ``NBOPS_TRIGGER`` if set, ``ci`` under CI, else ``manual``."""
    value = os.environ.get("NBOPS_TRIGGER", "").strip().lower()
    if value:
        if value not in TRIGGERS:
            print(
                f"nbops: NBOPS_TRIGGER={value!r} is not one of {', '.join(TRIGGERS)}; recorded as given.",
                file=sys.stderr,
            )
        return value
    return "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "manual"


# -- the hooks Ploomber calls ---------------------------------------------------------


def task_finished(task: Any) -> None:
    build = _current(task)
    _safely(lambda: build.add_task(task, EXECUTED), build=build)


def task_failed(task: Any) -> None:
    build = _current(task)
    _safely(lambda: build.add_task(task, FAILED), build=build)


# Ploomber passes a hook only the parameters without a default: ``report`` and
# ``traceback`` must stay required or they never arrive.
def build_finished(dag: Any, report: Any) -> None:
    build = _current(dag)
    _safely(lambda: build.finish(dag, "FINISHED", report=report), build=build)
    _raise_if_incomplete(build)


def build_failed(dag: Any, traceback: Any) -> None:
    build = _current(dag)
    _safely(lambda: build.finish(dag, "FAILED", traceback=traceback), build=build)


def build_rendered(dag: Any, then: str | None = None) -> None:
    """DAG-level ``on_render`` of an adopted project: wires capture into every task.

    ``then`` is the dotted path of the user's own DAG-level ``on_render`` (``nbops
    adopt`` keeps it there), called first with the arguments it names.
    """
    if then:
        from ploomber.util.dotted_path import DottedPath
        from ploomber.util.util import callback_check

        hook = DottedPath(then)
        hook(**callback_check(hook, dag._available_callback_kwargs))
    if enabled():
        _safely(lambda: _current(dag).wire(dag))
    from nbops.build.startup import pipeline_loaded

    pipeline_loaded()  # the garbage collector runs again (nbops.build.startup)


def _at_exit(finish: Any) -> None:
    """Run ``finish`` when the process ends, while thread pools still take work.

    ``ploomber task NAME`` runs no DAG hooks, so its record is published at exit, and a
    release downloads the model's files through MLflow's thread pool. ``atexit`` handlers
    run after the interpreter has shut every ``concurrent.futures`` pool down ("cannot
    schedule new futures after interpreter shutdown": the record was spooled, the release
    left to ``nbops sync``). Threading's exit hooks run before that, latest first, so one
    registered after ``concurrent.futures.thread`` is imported runs before it closes the
    pools. Falls back to ``atexit`` where that hook is missing or closed.
    """
    import concurrent.futures.thread  # noqa: F401  (its exit hook first, so ours runs before)

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # raised once the process is shutting down
            register(finish)
            return
    atexit.register(finish)


def _safely(action: Any, *, build: _Build | None = None) -> None:
    if not enabled():
        return
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        action()
    except Exception:  # the build's own outcome stands; the capture problem is reported
        problem = tb_module.format_exc()
        print("nbops: could not record this build step:\n" + problem, file=sys.stderr)
        if build is not None:
            build.problems.append(problem.strip().splitlines()[-1])
            _spool_as_is(build)
    finally:
        _capture_seconds[0] += time.perf_counter() - started
        _capture_cpu[0] += time.thread_time() - cpu
        if _build is not None and _build.done and os.environ.get("NBOPS_TIMING"):
            # benchmarks/pipeline.py reads this: the time the build spent in nbops' hooks
            print(
                f"nbops: capture took {_capture_seconds[0]:.3f} s (CPU {_capture_cpu[0]:.3f} s)",
                file=sys.stderr,
            )


def _current(task_or_dag: Any) -> _Build:
    global _build
    if _build is None or _build.done:
        _build = _worker_build() or _Build(_project_root(task_or_dag))
    return _build


def _worker_build() -> _Build | None:
    """In a worker process the build's process started without forking (Ploomber's
    parallel executor with ``start_method: spawn``): the build it works for, so task
    records are handed back instead of published as a build of their own."""
    import multiprocessing

    owner = os.environ.get(_OWNER_ENV, "")
    if multiprocessing.parent_process() is None or owner.count(":") < 2:
        return None
    pid, build_id, root = owner.split(":", 2)
    if int(pid) == os.getpid():
        return None
    return _Build(Path(root), build_id=build_id, owner_pid=int(pid))


_OWNER_ENV = "NBOPS_BUILD_OWNER"
#: Set to 1 to record a build that has nothing to do (every task up to date) as a run:
#: what a scheduler's last step does to record the whole pipeline (nbops export).
RECORD_UP_TO_DATE_ENV = "NBOPS_RECORD_UP_TO_DATE"


def _record_up_to_date() -> bool:
    return os.environ.get(RECORD_UP_TO_DATE_ENV, "").strip().lower() in {"1", "on", "true", "yes"}


def _scheduled(dag: Any) -> list[str]:
    """The tasks this build runs (after Ploomber's render: the ones not up to date)."""
    return [
        name
        for name in dag.keys()  # noqa: SIM118  (a Ploomber DAG, not a dict)
        if getattr(dag[name].exec_status, "name", "") != "Skipped"
    ]


def _raise_if_incomplete(build: _Build) -> None:
    """The build's exit status says when its record is incomplete (Ploomber fails the
    build when the DAG's on_finish raises)."""
    if build.problems and enabled():
        from nbops.errors import TrackingError

        raise TrackingError(
            f"nbops could not capture all of this build ({len(build.problems)} problem(s): "
            + "; ".join(build.problems[:3])
            + "). The products are built and what was captured is recorded (or spooled in "
            ".nbops/spool/); the messages above say which task and why. Run the build "
            "again once fixed, or report the message if it names nbops."
        )


def _spool_as_is(build: _Build) -> None:
    """Last resort when finishing the record failed half-way: keep what there is."""
    if not build.done or getattr(build, "published", False):
        return
    with contextlib.suppress(Exception):
        from nbops.tracking.publish import spool_dir

        folder = build.record.spool(spool_dir(build.root))
        build.published = True
        print(f"nbops: the build's record as captured is kept in {folder}.", file=sys.stderr)


def _project_root(task_or_dag: Any) -> Path:
    from nbops.project import project_root

    source = getattr(getattr(task_or_dag, "source", None), "loc", None)
    start = Path(source).resolve().parent if source else Path.cwd()
    root = project_root(start)
    return root if (root / "pipeline.yaml").is_file() else project_root()


# -- one build in progress ------------------------------------------------------------


class _Build:
    def __init__(
        self, root: Path, *, build_id: str | None = None, owner_pid: int | None = None
    ) -> None:
        self.root = root
        self.done = False
        self.sources: set[Path] = set()
        self.secrets: list[str] = []
        #: the process that records the build (workers hand their tasks back to it)
        self.pid = owner_pid or os.getpid()
        #: what went wrong while capturing (the build then exits non-zero)
        self.problems: list[str] = []
        self.published = False
        #: when each task was last rendered, and when this process last finished a task
        self.marks: dict[str, float] = {}
        self.last_end = 0.0
        # The command line as typed, for reading --env-- overrides; the record only
        # ever holds it redacted.
        self.argv = _command_line()
        self.record = BuildRecord(
            build_id=build_id or uuid.uuid4().hex,
            project=root.name,
            root=str(root),
            command=redact_command(self.argv),
            trigger=trigger(),
            started_at=_process_start(),
        )
        self.tmp = root / ".nbops" / "tmp" / self.record.build_id
        self._warming = owner_pid is not None  # a worker hands back; it publishes nothing
        self.packages: list[str] | None = None
        self._warm_thread: threading.Thread | None = None
        #: the build's kernel template, held to publish the record from a child of it,
        #: and that child (nbops.build.recorder)
        self.template: Any = None
        self.publisher: Any = None
        self._env: tuple[tuple[int, int], dict[str, Any]] | None = None
        if owner_pid is None:
            _at_exit(self._finish_at_exit)

    def warm_up(self) -> None:
        """Once a task is to run (a build with nothing to do never does this): hold the
        build's kernel template to publish the record from, or else import MLflow on a
        thread while the notebooks run."""
        if not self._warming:
            self._warming = True
            from nbops.build.recorder import held_template

            self.template, why = held_template()
            if self.template is None:
                log.debug("the build will be recorded in this process: %s", why)
            self._warm_thread = threading.Thread(
                target=self._warm, name="nbops-mlflow-warm-up", daemon=True
            )
            self._warm_thread.start()
            _WARMING.append(self._warm_thread)

    def _warm(self) -> None:
        # What the record needs at the end that does not change during the build: the
        # package freeze, MLflow's import and the opened store.
        with contextlib.suppress(Exception):
            self.packages = lineage.freeze()
        if self.template is not None:  # a child of it publishes, and opens the store now
            from nbops.build.recorder import start_publisher

            self.publisher = start_publisher(self.template, root=self.root)
        else:
            _warm_up(self.root)

    def add_task(self, task: Any, status: str) -> None:
        """Record one task. What cannot be read is named in the record and in a loud
        warning, and the task is kept with what could be read."""
        self.warm_up()
        record = TaskRecord(name=task.name, status=status)
        try:
            self._fill(record, task)
        except Exception as exc:
            problem = f"task {task.name!r}: {type(exc).__name__}: {exc}"
            print(
                f"nbops: WARNING: could not capture {problem}\n" + tb_module.format_exc(),
                file=sys.stderr,
            )
            record.capture_error = problem
            self.problems.append(problem)
        if os.getpid() != self.pid:
            self._hand_back(record)  # built in a worker process (executor: parallel)
        else:
            self._put(record)

    def _put(self, record: TaskRecord) -> None:
        existing = self.record.task(record.name)
        if existing is not None:
            self.record.tasks.remove(existing)
        self.record.tasks.append(record)

    def _fill(self, record: TaskRecord, task: Any) -> None:
        status = record.status
        products = product_paths(task.product)
        record.products = products
        raw = task.params.to_dict() if hasattr(task.params, "to_dict") else dict(task.params)
        params = {k: v for k, v in raw.items() if k not in {"product", "upstream"}}
        self.secrets += secret_values(params) + secret_values(self._env_used())
        record.params = redact(params)
        resources = params.get("resources_") or {}
        self.sources.update(Path(p) for p in resources.values())
        source = task_source_file(task)
        if source is not None:
            self.sources.add(source)
            record.source_hashes = lineage.source_hashes(self.root, [source])
        record.product_hashes = _product_hashes(products)
        record.duration_s = self._elapsed(task)
        notebook, html = self._notebook_files(task, products)
        if notebook and Path(notebook).is_file():
            nb = _read_notebook(notebook)
            record.duration_s = _duration(nb) or record.duration_s
            if status == FAILED:
                record.error = _error_text(nb)
                if html and not _newer(html, notebook):
                    _render_html(notebook, html)  # Ploomber writes no report for a failed task
        if notebook:
            record.files = self._report_files(notebook, html)
        mlmodel = products.get("mlmodel")
        if status == EXECUTED and mlmodel and Path(mlmodel).is_file():
            # The gate prepared a model for release: it travels with the task's run.
            for file in sorted(Path(mlmodel).parent.rglob("*")):
                if file.is_file():
                    record.files[f"model/{file.relative_to(Path(mlmodel).parent)}"] = str(file)
        if status == EXECUTED:
            record.metrics = _read_metrics(products)

    def _elapsed(self, task: Any) -> float | None:
        """Seconds since the task's run began, as far as this process knows: its render
        (``ploomber task``) or the previous task's end (a serial build). The build's
        report replaces it with Ploomber's own figure when the build finishes."""
        began = max(self.marks.get(task.name, 0.0), self.last_end)
        self.last_end = time.time()
        return round(self.last_end - began, 3) if began else None

    def _notebook_files(self, task: Any, products: dict[str, str]) -> tuple[str | None, str | None]:
        """The executed notebook and its HTML report, for a task that runs a notebook."""
        if type(task).__name__ != "NotebookRunner":
            return None, None
        keys = task.nb_product_key
        nb_keys = [keys] if isinstance(keys, str) else list(keys)
        paths = [products[k] for k in nb_keys if k in products] or list(products.values())[:1]
        html = next((p for p in paths if p.endswith(".html")), None)
        notebook = next((p for p in paths if p.endswith(".ipynb")), None)
        if notebook is None:
            # Ploomber renders the executed notebook over itself (``nb: out.html``): the
            # copy nbops kept just before (see wire) is the notebook; a failed run leaves
            # it next to the product instead.
            kept = self.kept_notebook(task.name)
            partial = Path(paths[0]).with_suffix(".ipynb") if paths else kept
            notebook = str(partial if not kept.is_file() and partial.is_file() else kept)
        return notebook, html

    def kept_notebook(self, name: str) -> Path:
        return self.tmp / "notebooks" / f"{_safe_name(name)}.ipynb"

    def _hand_back(self, record: TaskRecord) -> None:
        folder = self.tmp / "tasks"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{_safe_name(record.name)}.json"
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(asdict(record), default=str))
        partial.replace(target)
        if self.secrets:
            # The values themselves: for this user only (the project folder may be shared).
            secrets = folder / f"{_safe_name(record.name)}.secrets"
            atomic_write(secrets, json.dumps(self.secrets), mode=0o600)

    def _collect_handed_back(self) -> None:
        folder = self.tmp / "tasks"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            self._put(TaskRecord(**json.loads(path.read_text())))
        for path in sorted(folder.glob("*.secrets")):
            self.secrets += json.loads(path.read_text())
        for task in self.record.tasks:
            if task.capture_error and task.capture_error not in self.problems:
                self.problems.append(task.capture_error)

    def wire(self, dag: Any) -> None:
        """Compose nbops' capture with every task's own hooks (see the module docstring)."""
        if self.pid != os.getpid():
            return
        os.environ[_OWNER_ENV] = f"{self.pid}:{self.record.build_id}:{self.root}"
        # With nothing to run, nothing is captured: MLflow is not imported and no runs
        # are opened (see finish).
        scheduled = bool(_scheduled(dag))
        if scheduled and not _forking_executor(dag):
            # With forked kernels, the first task's capture holds their template
            # instead (it starts with the first notebook).
            self.warm_up()
        for name in dag.keys():  # noqa: SIM118  (a Ploomber DAG, not a dict)
            task = dag[name]
            if _is_nbops(task.on_finish, "task_finished"):
                continue  # wired by hand, as in nbops' reference pipeline
            for kind in ("render", "finish", "failure"):
                current = getattr(task, f"on_{kind}")
                if not isinstance(current, TaskHook):
                    setattr(task, f"on_{kind}", TaskHook(kind, current))
            if type(task).__name__ == "NotebookRunner":
                _keep_notebook(task, self.kept_notebook(name))
        if scheduled:
            self._open_runs(dag)
        for kind, ours in (("finish", build_finished), ("failure", build_failed)):
            current = getattr(dag, f"on_{kind}")
            if not isinstance(current, DagHook) and not _is_nbops(current, ours.__name__):
                setattr(dag, f"on_{kind}", DagHook(kind, current))

    def _open_runs(self, dag: Any) -> None:
        """Runs for the tasks' own MLflow calls (:mod:`nbops.tracking.taskruns`), when a
        task's code mentions MLflow: opening the store costs seconds, spent only where
        it is used (``NBOPS_TASK_RUNS=on`` opens them for every build)."""
        if self.record.runs or _subcommand() not in {"build", "task"}:
            return
        names = list(dag.keys())
        forced = os.environ.get("NBOPS_TASK_RUNS", "").strip().lower() in {"1", "on", "true"}
        if not forced and not any(_mentions_mlflow(dag[name]) for name in names):
            return
        from nbops.tracking.taskruns import open_runs, task_env

        try:
            runs = open_runs(
                self.root,
                names,
                scratch=self.tmp / "mlflow",
                title=f"build {self.record.build_id[:12]}",
            )
        except Exception as exc:
            problem = (
                f"could not open runs for the tasks' own MLflow calls: {type(exc).__name__}: {exc}"
            )
            print(f"nbops: WARNING: {problem}", file=sys.stderr)
            self.problems.append(problem)
            return
        if runs.get("scratch"):
            print(
                f"nbops: the tracking store is not available ({runs['problem']}); the tasks' "
                "MLflow calls are kept with the build's record and published with it.",
                file=sys.stderr,
            )
        self.record.runs = runs
        for name in names:
            task = dag[name]
            env = {**task_env(runs, name), "NBOPS_MODEL_DIR": str(self.own_model_dir(name))}
            if runs.get("scratch"):
                env["NBOPS_STORE_UNAVAILABLE"] = "1"  # nbops.log_model: champion unknown
            if not isinstance(task.__dict__.get("run"), RunIn):
                task.run = RunIn(task, env)

    def own_model_dir(self, name: str) -> Path:
        """Where ``nbops.log_model`` in task ``name`` puts the model and its decision."""
        return self.tmp / "models" / _safe_name(name)

    def _own_models(self) -> None:
        """A model a task released with ``nbops.log_model``: its files travel with the
        task's run, its metrics with the task, and its decision is the build's release."""
        for task in self.record.tasks:
            folder = self.own_model_dir(task.name)
            decision = folder / "decision.json"
            if task.status != EXECUTED or not decision.is_file():
                continue
            for file in sorted((folder / "model").rglob("*")):
                if file.is_file():
                    task.files[f"model/{file.relative_to(folder / 'model')}"] = str(file)
            data = json.loads(decision.read_text())
            task.metrics = {**task.metrics, **_numbers(data.get("metrics") or {})}
            if self.record.release:
                problem = (
                    f"task {task.name!r}: a second model released in one build "
                    f"(task {self.record.release['task']!r} released one): only the first is registered"
                )
                print(f"nbops: WARNING: {problem}", file=sys.stderr)
                self.problems.append(problem)
                continue
            self.record.release = {"task": task.name, "decision": data}

    def _collect_logged(self) -> None:
        """Each task's own MLflow calls into its record: metrics (beside a ``metrics``
        product's), parameters, and, from a scratch store, files."""
        runs = self.record.runs
        if not runs:
            return
        from nbops.tracking.store import Store
        from nbops.tracking.taskruns import logged

        store: Store | None = None
        for task in self.record.tasks:
            if task.status not in (EXECUTED, FAILED):
                continue
            try:
                store = store or Store(self.root, uri=runs["uri"])
                got = logged(runs, task.name, root=self.root, store=store)
            except Exception as exc:  # the run keeps them; publishing adopts it later
                print(
                    f"nbops: could not read what task {task.name!r} logged to MLflow "
                    f"({type(exc).__name__}: {exc}); it stays in its run.",
                    file=sys.stderr,
                )
                continue
            task.metrics = {**task.metrics, **_numbers(got["metrics"])}
            task.logged_params = {str(k): str(v) for k, v in got["params"].items()}
            for artifact, path in got["files"].items():
                task.files.setdefault(artifact, path)

    def _report_files(self, notebook: str, html: str | None) -> dict[str, str]:
        # The HTML report may still be rendering (nbops.build.executor renders reports in the
        # background); it is read when the build finishes.
        files = {f"reports/{Path(notebook).name}": notebook}
        if html and Path(html).is_file():
            files[f"reports/{Path(html).name}"] = html
        return files

    def _complete_reports(self) -> None:
        """Every task that ran a notebook gets its executed notebook and an HTML report
        in the record: reports rendered in the background, notebooks kept aside, and a
        report rendered here when the project makes none."""
        for task in self.record.tasks:
            notebooks = [
                p
                for k, p in task.files.items()
                if k.startswith("reports/") and p.endswith(".ipynb")
            ]
            if not notebooks or not Path(notebooks[0]).is_file():
                continue
            notebook = notebooks[0]
            if task.duration_s is None:
                task.duration_s = _duration(_read_notebook(notebook))
            if any(k.startswith("reports/") and k.endswith(".html") for k in task.files):
                continue
            html = next((p for p in task.products.values() if p.endswith(".html")), None)
            if html is None or not Path(html).is_file():
                html = str(self.tmp / "reports" / f"{_safe_name(task.name)}.html")
                Path(html).parent.mkdir(parents=True, exist_ok=True)
                try:
                    _render_html(notebook, html)
                except Exception as exc:
                    problem = f"task {task.name!r}: no HTML report ({type(exc).__name__}: {exc})"
                    print(f"nbops: WARNING: {problem}", file=sys.stderr)
                    self.problems.append(problem)
                    continue
            task.files[f"reports/{Path(html).name}"] = html

    def _scrub_reports(self) -> None:
        """The injected-parameters cell holds parameter values: scrub secrets from the
        copies of notebooks and reports that are recorded."""
        scrubbed = self.root / ".nbops" / "tmp" / self.record.build_id
        secrets = self._secret_texts()
        for task in self.record.tasks:
            for name, path in list(task.files.items()):
                if not name.startswith("reports/") or not Path(path).is_file():
                    continue
                text = Path(path).read_text(errors="replace")
                clean = scrub(text, secrets)
                if clean == text:
                    continue  # nothing to hide: record the report itself
                copy = scrubbed / task.name / Path(path).name
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(clean)
                task.files[name] = str(copy)

    def _secret_texts(self) -> list[str]:
        """Every secret value known to this build, also as HTML and JSON write it."""
        import html

        values = set(self.secrets)
        with contextlib.suppress(Exception):  # a broken env.yaml fails the build itself
            values.update(secret_values(self._env_used()))
        return sorted(
            values | {html.escape(v) for v in values} | {json.dumps(v)[1:-1] for v in values}
        )

    def _redact_record(self) -> None:
        """Hide every known secret in what the record holds as text (the command line,
        env, parameters, errors, the store the tasks' runs are in, the git diff) before
        anything is written or published."""
        record, secrets = self.record, self._secret_texts()
        record.command = [scrub(arg, secrets) for arg in redact_command(self.argv)]
        record.env = _scrub_tree(redact(record.env), secrets)
        for task in record.tasks:
            task.params = _scrub_tree(redact(task.params), secrets)
            task.logged_params = _scrub_tree(redact(task.logged_params), secrets)
            task.error = scrub(task.error, secrets) if task.error else task.error
        record.error = scrub(record.error, secrets) if record.error else record.error
        # The tasks' runs name the store by its URI, password and all (it was their
        # MLFLOW_TRACKING_URI); publishing matches it with the password hidden.
        if record.runs:
            from nbops.tracking.record import shown_runs

            record.runs = shown_runs(record.runs, secrets)
        # Not the commit or branch: a short secret ("5432") may occur inside a hash.
        if record.git.get("diff"):
            record.git["diff"] = scrub(record.git["diff"], secrets, assignments=True)
        if record.git.get("untracked"):
            record.git["untracked"] = _scrub_tree(record.git["untracked"], secrets)

    def finish(self, dag: Any, status: str, *, traceback: Any = None, report: Any = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._finish(dag, status, traceback=traceback, report=report)
        finally:
            publisher, self.publisher = self.publisher, None
            if publisher is not None:
                publisher.cancel()  # it did not publish: it leaves
            template, self.template = self.template, None
            if template is not None:
                template.release()  # the template goes now if the build closed it

    def _finish(self, dag: Any, status: str, *, traceback: Any, report: Any) -> None:
        if status == "FINISHED" and self.is_no_op(dag):
            self._nothing_to_do(dag, report)
            return
        from nbops.build.startup import pipeline_loaded

        # What is alive now lives until the process exits: no collection during the
        # recording visits it (nbops.build.startup.out_of_reach).
        pipeline_loaded()
        if dag is not None:  # something ran (or failed): the kept "nothing to do" is stale
            from nbops.build.noop import forget

            forget(self.root)
        try:
            index = _Lineage(self.root)
            self._collect(dag, status, index, traceback=traceback, report=report)
        except Exception:
            self._spool_after_failure(tb_module.format_exc())
            return
        from nbops.build.recorder import RecordingFailed

        try:
            self._publish()
        except RecordingFailed as exc:  # in the template's child, as below
            self._spool_after_failure(exc.traceback)
            return
        except Exception:  # it spools on store failures; this is a failure to spool
            self._spool_after_failure(tb_module.format_exc())
            return
        self.published = True
        try:
            index.update(self.record)
        except OSError as exc:
            print(
                f"nbops: could not update {index.path} ({exc}); the build is recorded, but a "
                "later build that skips these tasks will not link to this run.",
                file=sys.stderr,
            )
        _cleanup_tmp(self.root, self.record.build_id)

    def _publish(self) -> None:
        """Publish the record and release its model: from a child of the build's
        kernel template when this build holds it (MLflow is not imported here), else
        here (see :mod:`nbops.build.recorder`)."""
        if self._warm_thread is not None and self.template is not None:
            self._warm_thread.join(timeout=300)  # it forks the publisher
        publisher, self.publisher = self.publisher, None
        in_template = False
        if publisher is not None:
            from nbops.build.recorder import publish_in_template

            if self.record.runs:  # MLflow is imported here already, the store open
                publisher.cancel()
                log.debug("build recorded in this process: it opened the tasks' MLflow runs")
            else:
                in_template = (
                    publish_in_template(publisher, self.record, root=self.root) is not None
                )
        if not in_template:
            from nbops.release.prepare import release_build
            from nbops.tracking.publish import publish_or_spool

            publish_or_spool(self.record, root=self.root, release=release_build)
        if os.environ.get("NBOPS_TIMING"):
            # benchmarks and tests read this: what recording cost the build's process
            where = "in a child of the kernel template" if in_template else "in this process"
            mlflow = "yes" if "mlflow" in sys.modules else "no"
            print(
                f"nbops: the record was published (or spooled) {where}; MLflow imported "
                f"in this process: {mlflow}",
                file=sys.stderr,
            )

    def is_no_op(self, dag: Any) -> bool:
        """Whether this build ran nothing: every task of the DAG up to date (skipped),
        no task captured, and no record asked for (``NBOPS_RECORD_UP_TO_DATE``)."""
        return (
            dag is not None
            and len(dag) > 0
            and not self.record.tasks
            and not _scheduled(dag)
            and not _record_up_to_date()
        )

    def _nothing_to_do(self, dag: Any, report: Any = None) -> None:
        """A build with nothing to do touches nothing: no run (a scheduler's retries and
        an editor's save-and-build would fill ``nbops runs list`` with copies of the last
        build), no report or summary page rewritten (the pages describe the build that
        made the products, which still stands). A summary page that is missing is
        written, so the folder of reports keeps its front page."""
        from nbops.reports.site import summary_path

        self.published = True  # nothing to publish at exit either
        summary = summary_path(
            TaskRecord(name=name, status=SKIPPED, products=_paths_or_nothing(dag[name].product))
            for name in dag.keys()  # noqa: SIM118  (a Ploomber DAG, not a dict)
        )
        if summary is not None and not summary.is_file():
            self.record.status, self.record.ended_at = "FINISHED", time.time()
            index = _Lineage(self.root)
            for name in dag.keys():  # noqa: SIM118
                self.record.tasks.append(
                    TaskRecord(
                        name=name,
                        status=SKIPPED,
                        products=_paths_or_nothing(dag[name].product),
                        produced_by=index.get(name),
                    )
                )
            self._write_site(dag)
        print(
            f"nbops: nothing to do: all {len(dag)} task(s) are up to date; no run recorded "
            f"(set {RECORD_UP_TO_DATE_ENV}=1 to record one).",
            file=sys.stderr,
        )
        self._keep_no_op(dag, report, summary)

    def _keep_no_op(self, dag: Any, report: Any, summary: Path | None) -> None:
        """Keep what this answer rested on, so the next ``ploomber build`` with nothing
        changed answers it at start-up (:mod:`nbops.build.noop`); a pipeline whose
        status rests on more than its files keeps nothing."""
        from nbops.build import noop

        inputs = _no_op_inputs(dag, self.root)
        if inputs is None or report is None:
            noop.forget(self.root)
            return
        hashed, stated = inputs
        if summary is not None:  # a missing summary page is written again
            stated.append(str(Path(summary).resolve()))
        message = (
            f"nbops: nothing to do: all {len(dag)} task(s) are up to date (no file they "
            "depend on changed since the last build found them so); no run recorded "
            f"(set {RECORD_UP_TO_DATE_ENV}=1 to record one).\n"
        )
        try:
            noop.remember(
                self.root,
                hashed=hashed,
                stated=stated,
                output=f"Loading pipeline...\n{report}\n",
                message=message,
                started_at=self.record.started_at,
                # only what the start-up hook answers: the `ploomber` program's command
                argv=self.argv[1:] if self.argv[:1] == ["ploomber"] else self.argv,
            )
        except OSError:  # a read-only project: the next build loads the pipeline
            noop.forget(self.root)

    def _spool_after_failure(self, error: str) -> None:
        """Collecting the record failed half-way: keep what was collected (redacted) in
        the spool, and say so loudly, rather than lose the build's record."""
        from nbops.tracking.publish import spool_dir

        record = self.record
        record.status = "FAILED" if record.status == "RUNNING" else record.status
        record.ended_at = record.ended_at or time.time()
        note = "nbops could not finish recording this build:\n" + error
        try:
            self._redact_record()
            secrets = self._secret_texts()
            record.error = scrub(f"{record.error}\n\n{note}" if record.error else note, secrets)
            folder = record.spool(spool_dir(self.root))
        except Exception:
            print(
                "nbops: ERROR: recording this build failed and its record could not be kept:\n"
                + error
                + "\nwhile keeping it:\n"
                + tb_module.format_exc(),
                file=sys.stderr,
            )
            return
        finally:
            _cleanup_tmp(self.root, record.build_id)
        print(
            "nbops: ERROR: recording this build failed half-way (the build's own result "
            f"stands):\n{scrub(error, self._secret_texts())}\nThe record collected so far is kept in "
            f"{folder}: fix the cause above and run `nbops sync` to publish it.",
            file=sys.stderr,
        )

    def _collect(
        self, dag: Any, status: str, index: _Lineage, *, traceback: Any = None, report: Any = None
    ) -> None:
        """Complete the record: skipped tasks, lineage, environment, data, metrics, the
        summary page; secrets redacted."""
        record = self.record
        self._collect_handed_back()
        if dag is not None:
            elapsed = _elapsed_by_task(report)
            for name in dag.keys():  # noqa: SIM118  (a Ploomber DAG, not a dict)
                task = dag[name]
                source = task_source_file(task)
                if source is not None:
                    self.sources.add(source)
                # The DAG knows what happened to each task, whether or not a task hook
                # ran (a user's on_finish that raised, a worker process that died).
                ran = _DAG_STATUS.get(getattr(task.exec_status, "name", ""))
                existing = record.task(name)
                if ran is not None and (existing is None or existing.status != ran):
                    self.add_task(task, ran)
                elif existing is None:
                    skipped = getattr(task.exec_status, "name", "") == "Skipped"
                    record.tasks.append(
                        TaskRecord(
                            name=name,
                            status=SKIPPED if skipped else NOT_RUN,
                            products=_paths_or_nothing(task.product),
                            produced_by=index.get(name) if skipped else None,
                        )
                    )
                found = record.task(name)
                if found is not None and name in elapsed and found.status == EXECUTED:
                    found.duration_s = elapsed[name]
        if any(t.status == FAILED for t in record.tasks):
            status = "FAILED"
        record.status = status
        record.ended_at = time.time()
        if traceback:
            text = (
                "\n".join(map(str, traceback.values()))
                if isinstance(traceback, dict)
                else traceback
            )
            record.error = _ANSI.sub("", str(text)).strip()[-5000:]
        record.git = lineage.git_state(self.root)
        self.sources.update(self.root / name for name in (_spec(record.command), "env.yaml"))
        record.sources = lineage.source_hashes(self.root, sorted(self.sources))
        record.env = redact(self._env_used())
        record.python = lineage.python_info()
        record.packages = self.packages or lineage.freeze()
        record.data = _snapshot(record.tasks)
        record.release = _release(record.tasks)
        self._collect_logged()
        self._own_models()
        # A skipped evaluate step's metrics product is still the build's, as in use.
        in_use = [
            replace(t, metrics=t.metrics or _read_metrics(t.products))
            if t.status in (EXECUTED, SKIPPED)
            else t
            for t in record.tasks
        ]
        record.metrics = headline_metrics(in_use, headline_setting(self.root))
        for task in record.tasks:
            task.metrics = _numbers(task.metrics)
        self._complete_reports()
        self._redact_record()
        self._write_site(dag)
        self._scrub_reports()

    def _write_site(self, dag: Any) -> None:
        """The build summary page next to the reports, and the bar linking every report
        (nbops.reports.site); the summary is recorded with the build's run."""
        if dag is None:
            return  # `ploomber task NAME`: one task is no build to summarise
        from nbops.reports.site import write_build_site

        try:
            names = list(dag.keys())
            upstream = {name: sorted(dag[name].upstream) for name in names}
            spec = _spec(self.record.command)
            title = self.record.project + ("" if spec == "pipeline.yaml" else f" ({spec})")
            summary = write_build_site(
                self.record,
                order=names,
                upstream=upstream,
                title=title,
                scrub=lambda text: scrub(text, self._secret_texts()),
            )
        except Exception:  # the record matters more than its summary page
            print(
                "nbops: could not write the build summary page:\n" + tb_module.format_exc(),
                file=sys.stderr,
            )
            return
        if summary is not None:
            self.record.files["summary.html"] = str(summary)
            print(f"nbops: build summary in {_display_path(summary)}", file=sys.stderr)

    def _finish_at_exit(self) -> None:
        if self._warm_thread is not None:
            # It may be creating the store's tables: a process that exits (a build
            # stopped early, Ctrl-C) lets it finish rather than leave them half made.
            self._warm_thread.join(timeout=300)
        if not self.done and self.record.tasks and enabled() and os.getpid() == self.pid:
            _safely(lambda: self.finish(None, "FINISHED"), build=self)

    def _env_raw(self) -> dict[str, Any]:
        """env.yaml, read again only when it changed (every task's capture asks)."""
        path = self.root / "env.yaml"
        try:
            stat = path.stat()
        except OSError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._env is None or self._env[0] != key:
            import yaml

            self._env = (key, yaml.safe_load(path.read_text()) or {})
        return self._env[1]  # _flat_env works on a copy

    def _env_used(self) -> dict[str, Any]:
        return _flat_env(self._env_raw(), self.argv)


class _Lineage:
    """``.nbops/lineage.json``: which build last produced each task's products, so a
    skipped task can point at it (its run id is looked up in whichever store is used).

    Builds of one project may run at the same time: the update re-reads the file under
    its lock and replaces it atomically, so neither build's entries are lost."""

    def __init__(self, root: Path) -> None:
        self.state = StateFile(
            root / ".nbops" / "lineage.json",
            consequence="skipped tasks will not link to the build that produced their products",
        )
        self.path = self.state.path
        with self.state.locked():
            self.data = self.state.read()

    def get(self, task: str) -> dict[str, str] | None:
        entry = self.data.get(task)
        return entry if isinstance(entry, dict) else None

    def update(self, record: BuildRecord) -> None:
        ours = {t.name: {"build_id": record.build_id} for t in record.tasks if t.status == EXECUTED}
        with self.state.locked():
            self.data = {**self.state.read(warn=False), **ours}
            self.state.write(self.data)


# -- composing with the user's hooks -------------------------------------------------


class TaskHook:
    """A task's hook slot shared by the user's hook (called first, as Ploomber would)
    and nbops' capture. Picklable, so it travels to worker processes."""

    def __init__(self, kind: str, user: Any = None) -> None:
        self.kind, self.user = kind, user

    def __call__(self, task: Any) -> None:
        if self.user is not None:
            from ploomber.util.util import callback_check

            self.user(**callback_check(self.user, task._available_callback_kwargs))
        if not enabled():
            return
        if self.kind == "render":
            _current(task).marks[task.name] = time.time()
            return
        build = _current(task)
        before = len(build.problems)
        (task_finished if self.kind == "finish" else task_failed)(task)
        if len(build.problems) > before and _subcommand() == "task":
            # `ploomber task NAME` has no DAG hook to fail at the end: fail the task.
            from nbops.errors import TrackingError

            raise TrackingError(
                f"nbops could not capture task {task.name!r}: {build.problems[-1]}. "
                "The task's products are built; the message above says why."
            )

    def __repr__(self) -> str:
        return f"TaskHook({self.kind!r}, {self.user!r})"


class DagHook:
    """The DAG's ``on_finish``/``on_failure`` shared by the user's hook and nbops'."""

    def __init__(self, kind: str, user: Any = None) -> None:
        self.kind, self.user = kind, user
        # Ploomber passes what the signature names; both need what Ploomber offers.
        self.__signature__ = _DAG_SIGNATURES[kind]

    def __call__(self, dag: Any, **extra: Any) -> None:
        if self.user is not None:
            from ploomber.util.util import callback_check

            self.user(**callback_check(self.user, {**dag._available_callback_kwargs, **extra}))
        if self.kind == "finish":
            build_finished(dag, extra["report"])
        else:
            build_failed(dag, extra["traceback"])


def _dag_signatures() -> dict[str, Any]:
    import inspect

    def param(name: str) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)

    return {
        "finish": inspect.Signature([param("dag"), param("report")]),
        "failure": inspect.Signature([param("dag"), param("traceback")]),
    }


_DAG_SIGNATURES = _dag_signatures()
_DAG_STATUS = {"Executed": EXECUTED, "Errored": FAILED, "BrokenProcessPool": FAILED}


def _no_op_inputs(dag: Any, root: Path) -> tuple[list[str], list[str]] | None:
    """The files a "nothing to do" of ``dag`` rests on, as (hashed: sources, resources
    and product metadata; stated: products), or None when it rests on more than files:
    a task other than a notebook or script, a product not a local file, a hook not
    nbops', a client, or a placeholder whose value changes by itself."""
    from nbops.build.noop import stable_placeholders

    if getattr(getattr(dag, "clients", None), "_mapping", None):
        return None
    dag_hooks = {"on_render": "build_rendered", "on_finish": "build_finished"}
    dag_hooks["on_failure"] = "build_failed"
    for attr, name in dag_hooks.items():
        if not _own_hook(getattr(dag, attr, None), name):
            return None
    hashed: list[str] = []
    stated: list[str] = []
    for name in dag.keys():  # noqa: SIM118  (a Ploomber DAG, not a dict)
        task = dag[name]
        if type(task).__name__ not in {"NotebookRunner", "ScriptRunner"}:
            return None
        hooks = {"on_render": None, "on_finish": "task_finished", "on_failure": "task_failed"}
        if not all(_own_hook(getattr(task, a, None), n) for a, n in hooks.items()):
            return None
        source = task_source_file(task)
        if source is None:
            return None
        hashed.append(str(source.resolve()))
        params = task.params.to_dict() if hasattr(task.params, "to_dict") else {}
        resources = params.get("resources_") or {}
        if not isinstance(resources, dict):
            return None
        hashed.extend(str(Path(p).resolve()) for p in resources.values())
        product = task.product
        for one in list(product) if hasattr(product, "products") else [product]:
            if type(one).__name__ != "File" or getattr(one, "client", None) is not None:
                return None
            stated.append(str(Path(one._path_to_file).resolve()))
            hashed.append(str(Path(one._path_to_metadata).resolve()))
    texts, envs = [], []
    for path in sorted(root.glob("*.y*ml")):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = path.read_text(encoding="utf-8")
            texts.append(text)
            if path.name.startswith("env"):
                envs.append(text)
    if not stable_placeholders(texts, envs):
        return None
    return hashed, stated


def _own_hook(hook: Any, name: str | None) -> bool:
    """No hook, or nbops' own (declared, or wrapped by an adopted project's render)
    with no hook of the user's inside."""
    if hook is None:
        return True
    if isinstance(hook, (TaskHook, DagHook)):
        return hook.user is None
    if name is None or not _is_nbops(hook, name):
        return False
    # build_rendered(then=...) calls the user's own on_render
    get_kwargs = getattr(getattr(hook, "_spec", None), "get_kwargs", None)
    return not (get_kwargs() if callable(get_kwargs) else None)


def _is_nbops(hook: Any, name: str) -> bool:
    spec = getattr(hook, "_spec", None)
    dotted = getattr(spec, "dotted_path", None) if spec is not None else None
    if dotted is None and callable(hook):
        dotted = f"{getattr(hook, '__module__', '')}.{getattr(hook, '__name__', '')}"
    return dotted == f"{__name__}.{name}"


class KeepNotebook:
    """Wraps a NotebookRunner's converter: copies the executed notebook aside before
    Ploomber renders it over itself (``nb: out.html``), so the record keeps it."""

    def __init__(self, convert: Any, source: str, copy: Path) -> None:
        self.convert, self.source, self.copy = convert, source, copy

    def __call__(self) -> Any:
        with contextlib.suppress(OSError):
            import shutil

            self.copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.source, self.copy)
        return self.convert()


class RunIn:
    """A task's ``run``, with its MLflow run in the environment: ``MLFLOW_RUN_ID`` and
    ``MLFLOW_TRACKING_URI`` for the task's process and the kernel it starts, then
    restored (nbops' own publishing reads ``MLFLOW_TRACKING_URI``). Picklable, so it
    travels to worker processes with the task."""

    def __init__(self, task: Any, env: dict[str, str]) -> None:
        self.task, self.env = task, env

    def __call__(self) -> Any:
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            return type(self.task).run(self.task)
        finally:
            if self.env:  # while the environment still names the task's store
                from nbops.tracking.taskruns import end_active_run

                end_active_run(self.env["MLFLOW_RUN_ID"])
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def recorded(dag: Any) -> bool:
    """Whether nbops' DAG hooks record this build (tracking on, their ``on_finish``)."""
    hook = getattr(dag, "on_finish", None)
    return enabled() and (isinstance(hook, DagHook) or _is_nbops(hook, "build_finished"))


def _forking_executor(dag: Any) -> bool:
    """Whether ``dag`` runs its notebooks in kernels forked from a template (nbops'
    executor, ``fork_kernels`` on, on a platform that forks)."""
    if not getattr(dag.executor, "fork_kernels", False):
        return False
    from nbops.build.forks import fork_supported

    return fork_supported() is None


def _mentions_mlflow(task: Any) -> bool:
    """Whether the task's code may log to MLflow itself (or release a model)."""
    source = task_source_file(task)
    try:
        text = source.read_text(errors="replace") if source is not None else ""
        return "mlflow" in text or "log_model" in text
    except OSError:
        return False


def headline_setting(root: Path) -> list[str] | None:
    """Which metrics are the build's headline: ``NBOPS_HEADLINE_METRICS`` (comma
    separated), else ``headline_metrics`` in ``[tool.nbops]`` of the project's
    ``pyproject.toml``; None when neither is set."""
    value: Any = os.environ.get("NBOPS_HEADLINE_METRICS", "").strip() or None
    if value is None and (root / "pyproject.toml").is_file():
        import tomllib

        with contextlib.suppress(OSError, ValueError):
            data = tomllib.loads((root / "pyproject.toml").read_text())
            value = data.get("tool", {}).get("nbops", {}).get("headline_metrics")
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _keep_notebook(task: Any, copy: Path) -> None:
    converters = task._converter if isinstance(task._converter, list) else [task._converter]
    for converter in converters:
        if getattr(converter, "_exporter", None) is None or isinstance(
            converter.convert, KeepNotebook
        ):
            continue
        source = str(getattr(converter, "_path_to_output", ""))
        if source.endswith(".ipynb"):
            continue  # the .ipynb is a product of its own: nothing to keep
        converter.convert = KeepNotebook(converter.convert, source, copy)


# -- helpers --------------------------------------------------------------------------


def product_paths(product: Any) -> dict[str, str]:
    """A task's products as ``{key: path}``: a single product is ``product``, a list's
    items are ``0``, ``1``, ... (Ploomber's product shapes)."""
    products = getattr(product, "products", None)
    if products is not None and hasattr(product, "to_json_serializable"):
        serial = product.to_json_serializable()
        if isinstance(serial, dict):
            return {str(k): str(v) for k, v in serial.items()}
        return {str(i): str(v) for i, v in enumerate(serial)}
    return {"product": str(product)}


def _paths_or_nothing(product: Any) -> dict[str, str]:
    try:
        return product_paths(product)
    except Exception:
        return {}


def task_source_file(task: Any) -> Path | None:
    """The file that defines a task: its notebook or script, or a function's module."""
    source = task.source
    primitive = getattr(source, "primitive", None)
    if callable(primitive):
        import inspect

        with contextlib.suppress(TypeError, OSError):
            found = inspect.getsourcefile(inspect.unwrap(primitive))
            if found and Path(found).is_file():
                return Path(found)
    loc = str(getattr(source, "loc", None) or "")
    # a function's loc is "path/to/module.py:LINE"
    for candidate in (loc, loc.rsplit(":", 1)[0]):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _product_hashes(products: dict[str, str]) -> dict[str, str]:
    from nbops.hashing import file_sha256

    return {k: file_sha256(v) for k, v in products.items() if Path(v).is_file()}


def _read_notebook(path: str) -> dict[str, Any]:
    """An executed notebook's JSON; an HTML or a missing one reads as empty."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _elapsed_by_task(report: Any) -> dict[str, float]:
    """Ploomber's build report: seconds per task that ran."""
    out: dict[str, float] = {}
    columns = getattr(report, "values", None)  # a Ploomber Table: {column: [values]}
    if isinstance(columns, dict):
        for name, ran, seconds in zip(
            columns.get("name", []),
            columns.get("Ran?", []),
            columns.get("Elapsed (s)", []),
            strict=False,
        ):
            if ran and seconds is not None:
                out[str(name)] = round(float(seconds), 3)
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _subcommand() -> str:
    command = _command_line()
    return command[1] if len(command) > 1 else ""


def _spec(command: list[str]) -> str:
    """The pipeline spec the build ran: ``-e/--entry-point FILE`` or ``pipeline.yaml``."""
    for flag in ("-e", "--entry-point"):
        if flag in command[:-1]:
            return command[command.index(flag) + 1]
    return "pipeline.yaml"


def _command_line() -> list[str]:
    # Ploomber's CLI rewrites sys.argv; the interpreter keeps the original (3.10+).
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if len(argv) > 1 and Path(argv[0]).name.startswith("python") and not argv[1].startswith("-"):
        argv = argv[1:]
    return [Path(argv[0]).name, *argv[1:]] if argv else []


def _process_start() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return time.time()


#: The warm-up threads started in this process (see :func:`_before_fork`).
_WARMING: list[threading.Thread] = []


def _before_fork() -> None:
    """Before this process forks (Ploomber's executors run each task in a forked process),
    let the warm-up finish: a fork taken while that thread imports MLflow would leave the
    child holding import locks of a thread it does not have, and a task that imports
    MLflow would wait on them forever. It costs the first forked task up to the warm-up's
    2–3 s; processes started with subprocess are not forks of Python and do not wait."""
    for thread in _WARMING:
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=300)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)


def _warm_up(root: Path) -> None:
    from nbops.tracking.store import warm_up  # done while notebooks run

    warm_up(root)


def _duration(nb: dict[str, Any]) -> float | None:
    meta = nb.get("metadata", {}).get("papermill", {})
    if meta.get("duration") is not None:
        return float(meta["duration"])
    times = [c.get("metadata", {}).get("papermill", {}) for c in nb.get("cells", [])]
    starts = [t["start_time"] for t in times if t.get("start_time")]
    ends = [t["end_time"] for t in times if t.get("end_time")]
    if not starts or not ends:
        return None
    from datetime import datetime

    return (
        datetime.fromisoformat(max(ends).rstrip("Z"))
        - datetime.fromisoformat(min(starts).rstrip("Z"))
    ).total_seconds()


def _error_text(nb: dict[str, Any]) -> str | None:
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                lines = [_ANSI.sub("", line) for line in output.get("traceback", [])]
                head = f"{output.get('ename')}: {output.get('evalue')}"
                return head + ("\n\n" + "\n".join(lines) if len(lines) > 1 else "")
    return None


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _newer(path: str, than: str) -> bool:
    return Path(path).is_file() and Path(path).stat().st_mtime >= Path(than).stat().st_mtime


def _render_html(notebook: str, html: str) -> None:
    # The same exporter as the pipeline's reports (pipeline.yaml): offline, slim CSS.
    from nbops.reports.exporter import render_html

    render_html(notebook, html)


def _flat_env(env: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """env.yaml as used: the file, with ``--env--a--b VALUE`` overrides from the command line."""
    merged = json.loads(json.dumps(env, default=str))
    args = list(command)
    for i, arg in enumerate(args):
        if arg.startswith("--env--"):
            if "=" in arg:
                key, value = arg[len("--env--") :].split("=", 1)
            elif i + 1 < len(args):
                key, value = arg[len("--env--") :], args[i + 1]
            else:
                continue
            node = merged
            parts = key.split("--")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[parts[-1]] = value
    return merged


def _scrub_tree(value: Any, secrets: list[str]) -> Any:
    """``value`` with :func:`~nbops.tracking.redact.scrub` applied to every string in it."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_tree(v, secrets) for v in value]
    return value


def _snapshot(tasks: list[TaskRecord]) -> dict[str, Any]:
    """The data snapshot a build used: a task product pair ``data`` + ``meta`` whose JSON
    holds a ``content_hash`` (the ingest step's convention)."""
    for task in tasks:
        if task.status not in (EXECUTED, SKIPPED):
            continue  # a failed or unrun step's files are left over from another build
        meta_path, data_path = task.products.get("meta"), task.products.get("data")
        if meta_path and data_path and Path(meta_path).is_file() and meta_path.endswith(".json"):
            meta = json.loads(Path(meta_path).read_text())
            if "content_hash" in meta:
                return {
                    "content_hash": meta["content_hash"],
                    "data": data_path,
                    "meta": meta_path,
                    "rows": meta.get("rows"),
                    "columns": meta.get("columns"),
                    "task": task.name,
                }
    return {}


def _read_metrics(products: dict[str, str]) -> dict[str, Any]:
    """A task's ``metrics`` product (a JSON file), if it has one."""
    path = products.get("metrics")
    if path and path.endswith(".json") and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {}


def _release(tasks: list[TaskRecord]) -> dict[str, Any]:
    """The gate's decision when this build ran the gate (a skipped gate releases nothing)."""
    for task in tasks:
        decision = task.products.get("decision")
        if (
            task.status == EXECUTED
            and decision
            and Path(decision).is_file()
            and any(k.startswith("model/") for k in task.files)
        ):
            return {"task": task.name, "decision": json.loads(Path(decision).read_text())}
    return {}


def _cleanup_tmp(root: Path, build_id: str) -> None:
    import shutil

    shutil.rmtree(root / ".nbops" / "tmp" / build_id, ignore_errors=True)
