"""The build record: everything one build produced, as plain data.

A :class:`BuildRecord` is assembled while Ploomber runs (one :class:`TaskRecord` per
task) and published to the tracking store at the end. Files are referenced by path;
when the store cannot take the record, :meth:`BuildRecord.spool` copies every file into
``.nbops/spool/<build id>/`` next to a ``record.json``, so ``nbops sync`` can publish
it later even after the next build has overwritten ``products/``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.state import atomic_write

__all__ = [
    "BuildRecord",
    "TaskRecord",
    "headline_metrics",
    "load_spooled",
    "numeric_leaves",
    "shown_runs",
    "spooled_records",
]

#: Task statuses as recorded (MLflow run status is derived from them).
EXECUTED, FAILED, SKIPPED, NOT_RUN = "executed", "failed", "skipped", "not-run"


@dataclass
class TaskRecord:
    """One task of a build."""

    name: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: ``{artifact path in the run: file on disk}``
    files: dict[str, str] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    #: for skipped tasks: the build (and run) that produced the products in use
    produced_by: dict[str, str] | None = None
    #: ``{path: sha256}`` of the file that defines the task (a function's module)
    source_hashes: dict[str, str] = field(default_factory=dict)
    #: ``{product key: sha256}`` of the task's file products
    product_hashes: dict[str, str] = field(default_factory=dict)
    #: what nbops could not capture of this task, if anything
    capture_error: str | None = None
    #: parameters the task's own code logged with ``mlflow.log_param``
    logged_params: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildRecord:
    """One ``ploomber build`` (or ``ploomber task``)."""

    build_id: str
    project: str
    root: str
    command: list[str]
    trigger: str
    started_at: float
    ended_at: float | None = None
    status: str = "RUNNING"
    git: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    python: dict[str, str] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)
    #: ``{"content_hash", "data" (parquet path), "meta" (json path), "rows", "columns"}``
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tasks: list[TaskRecord] = field(default_factory=list)
    error: str | None = None
    #: ``{"task": gate task name, "decision": the gate's decision.json}`` when released
    release: dict[str, Any] = field(default_factory=dict)
    #: files of the build itself, ``{artifact path in the run: file on disk}`` (the
    #: build summary page)
    files: dict[str, str] = field(default_factory=dict)
    #: runs opened before the tasks ran, for their own MLflow calls
    #: (:func:`nbops.tracking.taskruns.open_runs`): uri, scratch, build, tasks
    runs: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> TaskRecord | None:
        return next((t for t in self.tasks if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord:
        tasks = [TaskRecord(**t) for t in data.get("tasks", [])]
        return cls(**{**data, "tasks": tasks})

    def spool(self, spool_root: Path) -> Path:
        """Copy the record and every file it references into ``spool_root/<build id>/``."""
        target = spool_root / self.build_id
        files_dir = target / "files"
        files_dir.mkdir(parents=True, exist_ok=True)
        copy = BuildRecord.from_dict(json.loads(json.dumps(self.to_dict())))
        for task in copy.tasks:
            for artifact, path in list(task.files.items()):
                task.files[artifact] = _copy_in(path, files_dir / task.name / artifact, target)
        for artifact, path in list(copy.files.items()):
            copy.files[artifact] = _copy_in(path, files_dir / "_build" / artifact, target)
        for key in ("data", "meta"):
            if copy.data.get(key):
                copy.data[key] = _copy_in(
                    copy.data[key], files_dir / "_data" / Path(copy.data[key]).name, target
                )
        # Written last and atomically: a folder without a whole record.json is no record.
        atomic_write(target / "record.json", json.dumps(copy.to_dict(), indent=2, default=str))
        return target


def _copy_in(path: str, dest: Path, base: Path) -> str:
    source = Path(path)
    if not source.is_file():
        return path
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, dest)
    return str(dest.relative_to(base))


def load_spooled(folder: Path) -> BuildRecord:
    """Read a spooled record back, with file paths made absolute again.

    Raises:
        TrackingError: ``record.json`` is unreadable, not JSON, or not a build record.
    """
    from nbops.errors import TrackingError

    try:
        record = BuildRecord.from_dict(json.loads((folder / "record.json").read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise TrackingError(
            f"The spooled record {folder / 'record.json'} is corrupt ({type(exc).__name__}: {exc})."
        ) from exc
    for task in record.tasks:
        task.files = {
            k: str(folder / v) if (folder / v).is_file() else v for k, v in task.files.items()
        }
    record.files = {
        k: str(folder / v) if (folder / v).is_file() else v for k, v in record.files.items()
    }
    for key in ("data", "meta"):
        if record.data.get(key) and (folder / record.data[key]).is_file():
            record.data[key] = str(folder / record.data[key])
    return record


def spooled_records(spool_root: Path) -> list[Path]:
    """Spooled record folders, oldest first (not those moved aside as ``*.corrupt``)."""
    if not spool_root.is_dir():
        return []
    folders = [
        p
        for p in spool_root.iterdir()
        if (p / "record.json").is_file() and not p.name.endswith(".corrupt")
    ]
    return sorted(folders, key=_started_at)


def _started_at(folder: Path) -> float:
    # A corrupt record sorts first; reading it is what reports it (load_spooled).
    try:
        value = json.loads((folder / "record.json").read_text()).get("started_at", 0)
        return float(value)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError):
        return 0.0


def numeric_leaves(values: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """Nested numbers flattened to ``{"a.b": 1.0}``; text, booleans and NaN left out
    (what MLflow accepts as metrics)."""
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(numeric_leaves(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[name] = float(value)
    return out


def headline_metrics(
    tasks: list[TaskRecord], selection: list[str] | None = None
) -> dict[str, float]:
    """The build's headline metrics, from its tasks' metrics.

    ``selection`` (the ``headline_metrics`` setting) names tasks (``fit-2``: all its
    metrics) or one metric of a task (``fit-2:score``); a metric two selected tasks
    share is named ``task.metric``. Without a selection: the task with a ``metrics``
    product (nbops' reference pipeline), else the only task with metrics, else none:
    which of several tasks' metrics describe the build is the user's choice, never
    whichever task ran last.

    Example:
        >>> a = TaskRecord("fit-1", "executed", metrics={"score": 1.0})
        >>> b = TaskRecord("fit-2", "executed", metrics={"score": 2.0})
        >>> headline_metrics([a, b], ["fit-2"])
        {'score': 2.0}
        >>> headline_metrics([a, b])
        {}
    """
    usable = [t for t in tasks if t.status in ("executed", "skipped") and t.metrics]
    if selection:
        by_name = {t.name: t for t in usable}
        picked: list[tuple[str, str, float]] = []
        for entry in selection:
            name, _, metric = entry.partition(":")
            task = by_name.get(name.strip())
            if task is None:
                continue
            values = numeric_leaves(task.metrics)
            keys = [metric.strip()] if metric.strip() else sorted(values)
            picked += [(task.name, k, values[k]) for k in keys if k in values]
        counts: dict[str, int] = {}
        for _, key, _ in picked:
            counts[key] = counts.get(key, 0) + 1
        return {(f"{t}.{k}" if counts[k] > 1 else k): v for t, k, v in picked}
    with_product = [t for t in usable if "metrics" in t.products]
    if with_product:
        found = with_product[-1].metrics
        return numeric_leaves(found["metrics"] if isinstance(found.get("metrics"), dict) else found)
    return numeric_leaves(usable[0].metrics) if len(usable) == 1 else {}


def shown_runs(runs: dict[str, Any], secrets: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """``runs`` (:attr:`BuildRecord.runs`) fit to record: the store's URI without its password
    (``postgresql://u:***REDACTED***@db/mlflow``), and the problem with a scratch store
    scrubbed. A scratch store's URI is a local path the spool is published from later:
    kept as it is."""
    from nbops.tracking.redact import scrub, strip_url_credentials

    shown = dict(runs)
    if shown.get("uri") and not shown.get("scratch"):
        shown["uri"] = strip_url_credentials(str(shown["uri"]))
    if shown.get("problem"):
        shown["problem"] = scrub(str(shown["problem"]), secrets)
    return shown
