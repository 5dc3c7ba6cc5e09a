"""Ploomber hooks that turn a build into a run record. Declared in ``pipeline.yaml``::

    on_finish: nbops.tracking.hooks.build_finished      # DAG level (ploomber build)
    on_failure: nbops.tracking.hooks.build_failed
    tasks:
      - source: notebooks/ingest.ipynb
        on_finish: nbops.tracking.hooks.task_finished   # every task
        on_failure: nbops.tracking.hooks.task_failed

Task hooks only collect (paths, parameters, status, timings) into the process's
:class:`~nbops.tracking.record.BuildRecord`; the DAG hooks add lineage and skipped tasks,
write the build summary page and link the reports (:mod:`nbops.reports.site`), and
publish once. ``ploomber task NAME`` runs no DAG hooks, so an ``atexit`` handler
publishes what the task hooks collected. MLflow is imported in a background thread
while the notebooks run, so publishing costs little at the end.

A hook never fails the build: if recording goes wrong the build result stands, the
record is spooled to ``.nbops/spool/`` and the message says to run ``nbops sync``.
Secrets never reach the record (:mod:`nbops.tracking.redact`): secret-looking
``--env--*`` values, parameters and env.yaml entries, and URL credentials are hidden in
the command line, parameters, errors, the git diff, the summary page and the copies of
the reports that are recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import sys
import threading
import time
import traceback as tb_module
import uuid
from pathlib import Path
from typing import Any

from nbops.state import StateFile
from nbops.tracking import lineage
from nbops.tracking.record import EXECUTED, FAILED, NOT_RUN, SKIPPED, BuildRecord, TaskRecord
from nbops.tracking.record import numeric_leaves as _numbers
from nbops.tracking.redact import redact, redact_command, scrub, secret_values

__all__ = ["build_failed", "build_finished", "task_failed", "task_finished", "trigger"]

TRIGGERS = ("manual", "ci", "schedule", "drift")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_build: _Build | None = None
_capture_seconds = [0.0]


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


def enabled() -> bool:
    return os.environ.get("NBOPS_TRACKING", "on").strip().lower() not in {"off", "0", "false", "no"}


# -- the hooks Ploomber calls ---------------------------------------------------------


def task_finished(task: Any) -> None:
    _safely(lambda: _current(task).add_task(task, EXECUTED))


def task_failed(task: Any) -> None:
    _safely(lambda: _current(task).add_task(task, FAILED))


def build_finished(dag: Any, report: Any = None) -> None:
    _safely(lambda: _current(dag).finish(dag, "FINISHED"))


def build_failed(dag: Any, traceback: Any = None) -> None:
    _safely(lambda: _current(dag).finish(dag, "FAILED", traceback=traceback))


def _safely(action: Any) -> None:
    if not enabled():
        return
    started = time.perf_counter()
    try:
        action()
    except Exception:  # recording must never change the build's outcome
        print(
            "nbops: could not record this build step:\n" + tb_module.format_exc(), file=sys.stderr
        )
    finally:
        _capture_seconds[0] += time.perf_counter() - started
        if _build is not None and _build.done and os.environ.get("NBOPS_TIMING"):
            # benchmarks/tracking.py reads this: the time the build spent in nbops' hooks
            print(f"nbops: capture took {_capture_seconds[0]:.3f} s", file=sys.stderr)


def _current(task_or_dag: Any) -> _Build:
    global _build
    if _build is None or _build.done:
        _build = _Build(_project_root(task_or_dag))
    return _build


def _project_root(task_or_dag: Any) -> Path:
    from nbops.project import project_root

    source = getattr(getattr(task_or_dag, "source", None), "loc", None)
    start = Path(source).resolve().parent if source else Path.cwd()
    root = project_root(start)
    return root if (root / "pipeline.yaml").is_file() else project_root()


# -- one build in progress ------------------------------------------------------------


class _Build:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.done = False
        self.sources: set[Path] = set()
        self.secrets: list[str] = []
        # The command line as typed, for reading --env-- overrides; the record only
        # ever holds it redacted.
        self.argv = _command_line()
        self.record = BuildRecord(
            build_id=uuid.uuid4().hex,
            project=root.name,
            root=str(root),
            command=redact_command(self.argv),
            trigger=trigger(),
            started_at=_process_start(),
        )
        atexit.register(self._finish_at_exit)
        threading.Thread(target=_warm_up, name="nbops-mlflow-warm-up", daemon=True).start()

    def add_task(self, task: Any, status: str) -> None:
        products = (
            {k: str(v) for k, v in task.product.to_json_serializable().items()}
            if hasattr(task.product, "to_json_serializable")
            else {"product": str(task.product)}
        )
        raw = task.params.to_dict() if hasattr(task.params, "to_dict") else dict(task.params)
        params = {k: v for k, v in raw.items() if k not in {"product", "upstream"}}
        self.secrets += secret_values(params) + secret_values(self._env_used())
        resources = params.get("resources_") or {}
        self.sources.update(Path(p) for p in resources.values())
        if getattr(task.source, "loc", None):
            self.sources.add(Path(task.source.loc))
        record = TaskRecord(name=task.name, status=status, params=redact(params), products=products)
        notebook = products.get("nb")
        if notebook and Path(notebook).is_file():
            nb = json.loads(Path(notebook).read_text())
            record.duration_s = _duration(nb)
            if status == FAILED:
                record.error = _error_text(nb)
                html = products.get("html")
                if html and not _newer(html, notebook):
                    _render_html(notebook, html)  # Ploomber writes no report for a failed task
            record.files = self._report_files(notebook, products.get("html"))
        mlmodel = products.get("mlmodel")
        if status == EXECUTED and mlmodel and Path(mlmodel).is_file():
            # The gate prepared a model for release: it travels with the task's run.
            for file in sorted(Path(mlmodel).parent.rglob("*")):
                if file.is_file():
                    record.files[f"model/{file.relative_to(Path(mlmodel).parent)}"] = str(file)
        if status == EXECUTED:
            record.metrics = _read_metrics(products)
        existing = self.record.task(task.name)
        if existing is not None:
            self.record.tasks.remove(existing)
        self.record.tasks.append(record)

    def _report_files(self, notebook: str, html: str | None) -> dict[str, str]:
        # The HTML report may still be rendering (nbops.executor renders reports in the
        # background); it is read when the build finishes.
        files = {f"reports/{Path(notebook).name}": notebook}
        if html and Path(html).is_file():
            files[f"reports/{Path(html).name}"] = html
        return files

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
        env, parameters, errors, the git diff) before anything is written or published."""
        record, secrets = self.record, self._secret_texts()
        record.command = [scrub(arg, secrets) for arg in redact_command(self.argv)]
        record.env = _scrub_tree(redact(record.env), secrets)
        for task in record.tasks:
            task.params = _scrub_tree(redact(task.params), secrets)
            task.error = scrub(task.error, secrets) if task.error else task.error
        record.error = scrub(record.error, secrets) if record.error else record.error
        # Not the commit or branch: a short secret ("5432") may occur inside a hash.
        if record.git.get("diff"):
            record.git["diff"] = scrub(record.git["diff"], secrets, assignments=True)
        if record.git.get("untracked"):
            record.git["untracked"] = _scrub_tree(record.git["untracked"], secrets)

    def finish(self, dag: Any, status: str, *, traceback: Any = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            index = _Lineage(self.root)
            self._collect(dag, status, index, traceback=traceback)
        except Exception:
            self._spool_after_failure(tb_module.format_exc())
            return
        from nbops.tracking.publish import publish_or_spool

        try:
            publish_or_spool(self.record, root=self.root)
        except Exception:  # it spools on store failures; this is a failure to spool
            self._spool_after_failure(tb_module.format_exc())
            return
        try:
            index.update(self.record)
        except OSError as exc:
            print(
                f"nbops: could not update {index.path} ({exc}); the build is recorded, but a "
                "later build that skips these tasks will not link to this run.",
                file=sys.stderr,
            )
        _cleanup_tmp(self.root, self.record.build_id)

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

    def _collect(self, dag: Any, status: str, index: _Lineage, *, traceback: Any = None) -> None:
        """Complete the record: skipped tasks, lineage, environment, data, metrics, the
        summary page; secrets redacted."""
        record = self.record
        if dag is not None:
            for name in dag.keys():  # noqa: SIM118  (a Ploomber DAG, not a dict)
                task = dag[name]
                if getattr(task.source, "loc", None):
                    self.sources.add(Path(task.source.loc))
                if record.task(name) is None:
                    skipped = getattr(task.exec_status, "name", "") == "Skipped"
                    products = (
                        {k: str(v) for k, v in task.product.to_json_serializable().items()}
                        if hasattr(task.product, "to_json_serializable")
                        else {}
                    )
                    record.tasks.append(
                        TaskRecord(
                            name=name,
                            status=SKIPPED if skipped else NOT_RUN,
                            products=products,
                            produced_by=index.get(name) if skipped else None,
                        )
                    )
        if any(t.status == FAILED for t in record.tasks):
            status = "FAILED"
        record.status = status
        record.ended_at = time.time()
        if traceback:
            record.error = _ANSI.sub("", str(traceback)).strip()[-5000:]
        record.git = lineage.git_state(self.root)
        self.sources.update(self.root / name for name in (_spec(record.command), "env.yaml"))
        record.sources = lineage.source_hashes(self.root, sorted(self.sources))
        record.env = redact(self._env_used())
        record.python = lineage.python_info()
        record.packages = lineage.freeze()
        record.data = _snapshot(record.tasks)
        record.release = _release(record.tasks)
        for task in (t for t in record.tasks if t.status in (EXECUTED, SKIPPED)):
            # The build's key metrics come from the metrics product in use, whether this
            # build or an earlier one produced it (a skipped evaluate step).
            found = task.metrics or _read_metrics(task.products)
            if found:
                record.metrics = _numbers(
                    found["metrics"] if isinstance(found.get("metrics"), dict) else found
                )
            task.metrics = _numbers(task.metrics)
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
        if not self.done and self.record.tasks and enabled():
            _safely(lambda: self.finish(None, "FINISHED"))

    def _env_raw(self) -> dict[str, Any]:
        path = self.root / "env.yaml"
        if not path.is_file():
            return {}
        import yaml

        return yaml.safe_load(path.read_text()) or {}

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


# -- helpers --------------------------------------------------------------------------


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


def _warm_up() -> None:
    with contextlib.suppress(Exception):
        import mlflow.tracking  # noqa: F401  (heavy import, done while notebooks run)


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
