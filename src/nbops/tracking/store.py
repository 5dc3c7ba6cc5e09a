"""The tracking store: MLflow, embedded by default, a shared server by configuration.

The only module of nbops that imports MLflow. A build is one parent run (lineage as
tags and params, environment and git diff as artifacts, key metrics) with one child
run per task (its parameters, executed notebook and HTML report, metrics, status).
Data snapshots are content-addressed: one run per distinct content hash in the
``nbops-data`` experiment, shared by every build that used that data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nbops.errors import TrackingError
from nbops.tracking.record import EXECUTED, FAILED, NOT_RUN, SKIPPED, BuildRecord, numeric_leaves

__all__ = [
    "DATA_EXPERIMENT",
    "Store",
    "embedded_builds",
    "experiment_name",
    "local_store_dir",
    "reachability_problem",
    "tracking_uri",
]

DATA_EXPERIMENT = "nbops-data"
_STATUS = {EXECUTED: "FINISHED", SKIPPED: "FINISHED", FAILED: "FAILED", NOT_RUN: "KILLED"}
_MAX_PARAM = 6000
#: Tag set on a build's parent run once every part of the record is written.
_PUBLISHED = "nbops.published"


def local_store_dir(root: Path) -> Path:
    """The project's embedded store folder (git-ignored): SQLite db, artifacts, spool."""
    return root / ".nbops"


def enabled() -> bool:
    """Whether builds are recorded at all: ``NBOPS_TRACKING=off`` (or 0/false/no) disables it."""
    return os.environ.get("NBOPS_TRACKING", "on").strip().lower() not in {"off", "0", "false", "no"}


def warm_up(root: Path | None = None, *, registry: bool = True) -> None:
    """Import MLflow's client ahead of need (about 2 s), e.g. on a thread while notebooks
    run; with ``root``, also open the project's SQLite store (its SQL layer imported, the
    schema created or checked: about 2 s more), and its model registry unless
    ``registry`` is false (a record that releases nothing). MLflow keeps a store per URI
    for the process, so the build's publishing at the end reuses it. A store that cannot
    be opened is left to the publishing, which says why and spools."""
    with contextlib.suppress(Exception):
        import mlflow.tracking  # noqa: F401

        if root is not None and _sqlite_path(tracking_uri(root)) is not None:
            Store(root, registry=registry)


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store of the project."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{(local_store_dir(root) / 'mlflow.db').resolve()}"


def experiment_name(root: Path) -> str:
    """``NBOPS_EXPERIMENT`` if set, else the project folder's name."""
    return os.environ.get("NBOPS_EXPERIMENT", "").strip() or root.resolve().name


def reachability_problem(uri: str, *, timeout: float = 3.0) -> str | None:
    """Why the store at ``uri`` cannot be used right now, or None if it looks fine."""
    from nbops.tracking.redact import display_url

    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(_health_request(uri), timeout=timeout) as response:
                if response.status >= 400:
                    return f"{display_url(uri)} answered HTTP {response.status}"
        except urllib.error.HTTPError as exc:  # it answered: a refusal, not an absence
            return f"{display_url(uri)} answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return display_url(f"{uri} is unreachable ({getattr(exc, 'reason', exc)})")
    return None


def _health_request(uri: str) -> urllib.request.Request:
    """The server's ``/health``, with the URI's user and password sent as MLflow's
    client sends them (HTTP basic authentication): urllib would take them for part of
    the host name, and call a server that MLflow reaches unreachable."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri.rstrip("/") + "/health")
    headers = {}
    if parts.username is not None or parts.password is not None:
        user = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        parts = parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host)
    return urllib.request.Request(urlunsplit(parts), headers=headers)


def require_reachable(root: Path) -> None:
    """Raise unless the project's tracking store looks usable (a remote one answers).

    Raises:
        TrackingError: it does not; the message shows its URI without a password.
    """
    problem = reachability_problem(tracking_uri(root))
    if problem:
        from nbops.errors import TrackingError

        raise TrackingError(
            f"The tracking store is not available: {problem}. Check MLFLOW_TRACKING_URI, "
            "or unset it to use the project's embedded store."
        )


class Store:
    """An MLflow tracking store for one project."""

    def __init__(self, root: Path, *, uri: str | None = None, registry: bool = True) -> None:
        """``registry``: also open the model registry of a SQLite store now (its schema
        checked under the store's lock, see :func:`_open_sqlite`); false for a store
        that only records runs (0.25 s of CPU less)."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow.store.db.utils").setLevel(
            logging.WARNING
        )  # "Creating initial tables..."
        self.root = root
        self.uri = uri or tracking_uri(root)
        self.embedded = self.uri.startswith("sqlite:///") and self.uri == tracking_uri_embedded(
            root
        )
        if self.embedded:
            local_store_dir(root).mkdir(parents=True, exist_ok=True)
        if _sqlite_path(self.uri) is not None:
            self.client = _open_sqlite(self.uri, MlflowClient, registry=registry)
        else:
            self.client = MlflowClient(tracking_uri=self.uri)
        #: the artifact folders of runs this store created or read (see _log_artifact)
        self._folders: dict[str, Any] = {}

    # -- experiments -----------------------------------------------------------------

    def experiment_id(self, name: str, *, create: bool = True) -> str | None:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        if not create:
            return None
        location = None
        if self.embedded:
            location = (local_store_dir(self.root) / "artifacts").resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created meanwhile by a concurrent build
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    # -- publishing ------------------------------------------------------------------

    def publish(self, record: BuildRecord) -> dict[str, Any]:
        """Write ``record`` as a parent run with one child per task.

        Returns ``{"run_id": parent id, "tasks": {task: child run id}}``. Idempotent:
        a build published completely before (a retried ``nbops sync``) is returned as it
        is; an earlier, partial copy is replaced. Only records: releasing the gate's model
        is a separate step (:func:`nbops.release.prepare.release_build`).
        """
        from mlflow.entities import Metric, Param, RunTag

        experiment = self.experiment_id(experiment_name(Path(record.root)))
        copies = self._runs_with_tag(experiment, "nbops.build_id", record.build_id, limit=10_000)
        complete = [
            r
            for r in copies
            if r.data.tags.get(_PUBLISHED) == "complete"
            and r.data.tags.get("nbops.kind") == "build"
        ]
        if complete:
            parent_id = complete[0].info.run_id
            return {
                "run_id": parent_id,
                "tasks": {
                    r.data.tags["nbops.task"]: r.info.run_id for r in self.children(parent_id)
                },
            }
        # Runs opened before the tasks ran (nbops.tracking.taskruns) in this very store
        # hold what the tasks logged themselves: they become the build's runs.
        # (the record names the store with its password hidden, as everything it holds)
        opened = record.runs if _same_store(record.runs.get("uri"), self.uri) else {}
        opened = opened if not opened.get("scratch") else {}
        keep = {opened.get("build"), *(opened.get("tasks") or {}).values()} - {None}
        for stale in copies:
            if stale.info.run_id not in keep:
                self.client.delete_run(stale.info.run_id)

        data_run = self._store_snapshot(record)
        start_ms = int(record.started_at * 1000)
        end_ms = int((record.ended_at or time.time()) * 1000)
        git = record.git or {}
        tags = {
            "mlflow.runName": f"build {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.started_at))}",
            "mlflow.source.name": record.root,
            "mlflow.source.type": "PROJECT",
            "nbops.kind": "build",
            "nbops.build_id": record.build_id,
            "nbops.project": record.project,
            "nbops.trigger": record.trigger,
            "nbops.status": record.status,
            "nbops.command": " ".join(record.command)[:5000],
            "git.commit": git.get("commit") or "",
            "git.branch": git.get("branch") or "",
            "git.dirty": str(git.get("dirty")).lower(),
            "python.version": record.python.get("python", ""),
            "data.content_hash": record.data.get("content_hash", ""),
            "data.run_id": data_run or "",
            "nbops.tasks": ",".join(f"{t.name}:{t.status}" for t in record.tasks)[:5000],
        }
        if git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        if record.error:
            tags["nbops.error"] = record.error[-5000:]
        parent = self._adopt(opened.get("build"), tags, RunTag=RunTag)
        if parent is None:
            parent = self.client.create_run(experiment, start_time=start_ms, tags=tags)
        parent_id = self._known(parent)
        params = {f"env.{k}": v for k, v in _flatten(record.env).items()}
        params.update({f"source.{k}": v for k, v in record.sources.items()})
        self._log(
            parent_id,
            params=params,
            metrics=numeric_leaves(record.metrics),
            step_time=end_ms,
            Metric=Metric,
            Param=Param,
            RunTag=RunTag,
        )
        with tempfile.TemporaryDirectory() as tmp:
            extra = Path(tmp)
            (extra / "requirements.txt").write_text("\n".join(record.packages) + "\n")
            (extra / "python.json").write_text(json.dumps(record.python, indent=2))
            self._log_artifact(parent_id, str(extra / "requirements.txt"), "environment")
            self._log_artifact(parent_id, str(extra / "python.json"), "environment")
            if git.get("diff") is not None and git.get("dirty"):
                (extra / "diff.patch").write_text(git["diff"])
                (extra / "untracked.txt").write_text("\n".join(git.get("untracked", [])) + "\n")
                self._log_artifact(parent_id, str(extra / "diff.patch"), "git")
                self._log_artifact(parent_id, str(extra / "untracked.txt"), "git")
            (extra / "record.json").write_text(
                json.dumps(_public_record(record), indent=2, default=str)
            )
            self._log_artifact(parent_id, str(extra / "record.json"))
        for artifact, path in record.files.items():  # the build summary page
            self._log_file(parent_id, artifact, path)

        children = {}
        opened_tasks = dict(opened.get("tasks") or {})
        for task in record.tasks:
            children[task.name] = self._publish_task(
                experiment,
                parent_id,
                record,
                task,
                opened=opened_tasks.pop(task.name, None),
                Metric=Metric,
                Param=Param,
                RunTag=RunTag,
            )
        for unused in opened_tasks.values():  # tasks this build did not have
            with contextlib.suppress(Exception):
                self.client.delete_run(unused)
        self.client.set_terminated(
            parent_id,
            status="FINISHED" if record.status == "FINISHED" else "FAILED",
            end_time=end_ms,
        )
        self.client.set_tag(parent_id, _PUBLISHED, "complete")  # last: marks the copy whole
        return {"run_id": parent_id, "tasks": children}

    def _adopt(self, run_id: str | None, tags: dict[str, str], *, RunTag: Any) -> Any:
        """Tag a run opened before the build ran as one of its runs and return it as it
        was read (what the task logged in it); None when there is none to adopt (never
        opened, or deleted meanwhile)."""
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except Exception:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return run

    def _known(self, run: Any) -> str:
        """Remember where ``run`` (just created or read) keeps its files; its id."""
        uri = run.info.artifact_uri or ""
        if uri.startswith("file:"):
            from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

            self._folders[run.info.run_id] = LocalArtifactRepository(uri)
        return run.info.run_id

    def _log_artifact(self, run_id: str, path: str, folder: str | None = None) -> None:
        """``MlflowClient.log_artifact``, without reading the whole run again (about
        10 ms each, for the first file of every run) when this store already knows
        where the run keeps its files."""
        repository = self._folders.get(run_id)
        if repository is None:
            self.client.log_artifact(run_id, path, folder)
        else:
            repository.log_artifact(path, folder)

    def _publish_task(self, experiment, parent_id, record, task, *, opened=None, **entities) -> str:
        tags = {
            "mlflow.parentRunId": parent_id,
            "mlflow.runName": task.name,
            "nbops.kind": "task",
            "nbops.task": task.name,
            "nbops.status": task.status,
            "nbops.build_id": record.build_id,
        }
        if task.error:
            tags["nbops.error"] = task.error[-5000:]
        if task.capture_error:
            tags["nbops.capture_error"] = task.capture_error[-5000:]
        if task.status == SKIPPED and task.produced_by:
            # Resolved in this store: the producing build may have gone to another one.
            build_id = task.produced_by.get("build_id", "")
            tags["nbops.produced_by_build"] = build_id
            tags["nbops.produced_by_run"] = (
                self.task_run_id(experiment, build_id, task.name) if build_id else None
            ) or ""
        start = int(record.started_at * 1000)
        adopted = self._adopt(opened, tags, RunTag=entities["RunTag"])
        run = adopted
        if run is None:
            run = self.client.create_run(experiment, start_time=start, tags=tags)
        run_id = self._known(run)
        metrics = dict(task.metrics)
        if task.duration_s is not None:
            metrics["duration_s"] = task.duration_s
        params = {str(k): v for k, v in task.logged_params.items()}
        params.update(_flatten(task.params))
        params.update({f"product.{k}": v for k, v in task.products.items()})
        params.update({f"product_hash.{k}": v for k, v in task.product_hashes.items()})
        params.update({f"source.{k}": v for k, v in task.source_hashes.items()})
        metrics = numeric_leaves(metrics)
        if adopted is not None:
            # What the task logged itself is there already; a logged parameter keeps
            # its value (MLflow refuses to change one).
            there = adopted.data
            params = {k: v for k, v in params.items() if _key(k) not in there.params}
            metrics = {k: v for k, v in metrics.items() if there.metrics.get(_key(k)) != v}
        self._log(run_id, params=params, metrics=metrics, step_time=start, **entities)
        for artifact, path in task.files.items():
            self._log_file(run_id, artifact, path)
        if task.error:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "error.txt").write_text(task.error)
                self._log_artifact(run_id, str(Path(tmp) / "error.txt"))
        end = start + int((task.duration_s or 0) * 1000)
        self.client.set_terminated(
            run_id, status=_STATUS.get(task.status, "FINISHED"), end_time=end
        )
        return run_id

    def _log_file(self, run_id: str, artifact: str, path: str) -> None:
        source = Path(path)
        if not source.is_file():
            return
        folder, name = os.path.split(artifact)
        if source.name == name:
            self._log_artifact(run_id, str(source), folder or None)
            return
        with tempfile.TemporaryDirectory() as tmp:
            renamed = Path(tmp) / name
            renamed.write_bytes(source.read_bytes())
            self._log_artifact(run_id, str(renamed), folder or None)

    def _log(self, run_id, *, params, metrics, step_time, Metric, Param, RunTag) -> None:
        param_items = [Param(_key(k), _value(v)) for k, v in params.items()]
        metric_items = [Metric(_key(k), float(v), step_time, 0) for k, v in metrics.items()]
        for i in range(0, max(len(param_items), len(metric_items), 1), 100):
            self.client.log_batch(
                run_id, metrics=metric_items[i : i + 100], params=param_items[i : i + 100]
            )

    def _store_snapshot(self, record: BuildRecord) -> str | None:
        """Upload the data snapshot once per content hash; return its run id."""
        content_hash = record.data.get("content_hash")
        if not content_hash:
            return None
        experiment = self.experiment_id(DATA_EXPERIMENT)
        existing = self._runs_with_tag(experiment, "nbops.content_hash", content_hash)
        if existing:
            return existing[0].info.run_id
        run = self.client.create_run(
            experiment,
            tags={
                "mlflow.runName": content_hash[:19],
                "nbops.kind": "snapshot",
                "nbops.content_hash": content_hash,
                "nbops.first_build": record.build_id,
            },
        )
        self._known(run)
        for key in ("data", "meta"):
            if record.data.get(key) and Path(record.data[key]).is_file():
                self._log_artifact(run.info.run_id, record.data[key], "snapshot")
        for key in ("rows", "columns"):
            if isinstance(record.data.get(key), (int, float)):
                self.client.log_metric(run.info.run_id, key, record.data[key])
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    # -- queries ---------------------------------------------------------------------

    def _runs_with_tag(
        self, experiment_id: str | None, key: str, value: str, *, limit: int = 10
    ) -> list[Any]:
        if experiment_id is None:
            return []
        return list(
            self.client.search_runs(
                [experiment_id], filter_string=f"tags.`{key}` = '{value}'", max_results=limit
            )
        )

    def task_run_id(self, experiment_id: str, build_id: str, task: str) -> str | None:
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`nbops.build_id` = '{build_id}' and tags.`nbops.task` = '{task}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def builds(self, *, limit: int = 20) -> list[Any]:
        """The latest builds of this project, newest first."""
        experiment = self.experiment_id(experiment_name(self.root), create=False)
        if experiment is None:
            return []
        return list(
            self.client.search_runs(
                [experiment],
                filter_string="tags.`nbops.kind` = 'build'",
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )
        )

    def children(self, run_id: str) -> list[Any]:
        run = self.client.get_run(run_id)
        runs = self.client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
            max_results=1000,
        )
        return sorted(runs, key=lambda r: r.data.tags.get("nbops.task", ""))

    def resolve(self, ref: str) -> Any:
        """A build run from a full id, an id prefix, ``latest`` or ``latest~N``."""
        latest = re.fullmatch(r"latest(?:~(\d+))?", ref)
        if ref.startswith("latest") and not latest:
            raise TrackingError(
                f"'{ref}' is not a build reference: use a run id, a prefix of one, latest, or latest~N (N = 1, 2, ...)."
            )
        if latest:
            back = int(latest.group(1) or 0)
            runs = self.builds(limit=back + 1)
            if len(runs) <= back:
                raise TrackingError(
                    f"There is no build '{ref}': the store holds {len(runs)} build(s). List them with `nbops runs list`."
                )
            return runs[back]
        try:
            run = self.client.get_run(ref)
        except Exception:
            run = None
        if run is not None:
            if run.data.tags.get("nbops.kind") != "build" or run.info.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"Run {ref} is not a recorded build (it is a {run.data.tags.get('nbops.kind', 'foreign')} run). List builds with `nbops runs list`."
                )
            return run
        matches = [r for r in self.builds(limit=5000) if r.info.run_id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            from nbops.tracking.redact import display_url

            raise TrackingError(
                f"No build run matches '{ref}' in {display_url(self.uri)}. List them with `nbops runs list`."
            )
        raise TrackingError(
            f"'{ref}' matches {len(matches)} builds; give more characters of the run id."
        )

    def checkpoint(self) -> None:
        """For a SQLite store in WAL mode: copy what was written into the database file
        (see :func:`_checkpoint`). Nothing for other stores."""
        path = _sqlite_path(self.uri)
        if path is not None and path.is_file():
            _checkpoint(path)

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dest)))


def embedded_builds(root: Path, *, limit: int = 20) -> list[Any] | None:
    """The latest builds straight from the embedded SQLite store, without loading MLflow.

    Importing MLflow and opening its SQL store costs about 2 s per command here, the
    whole budget of ``nbops runs list``; one read-only SQLite query takes milliseconds.
    Reads MLflow's long-stable tables (runs, tags, latest_metrics, experiments). Returns
    None when the store is remote, missing or not in the expected shape: callers then
    use :class:`Store`.
    """
    import sqlite3
    from types import SimpleNamespace

    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return None
    path = local_store_dir(root) / "mlflow.db"
    if not path.is_file():
        return None
    try:
        with contextlib.closing(read_only_connection(path)) as db:
            rows = db.execute(
                "SELECT r.run_uuid, r.start_time, r.end_time, r.status, r.artifact_uri FROM runs r "
                "JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'nbops.kind' AND k.value = 'build' "
                "WHERE e.name = ? AND r.lifecycle_stage = 'active' ORDER BY r.start_time DESC LIMIT ?",
                (experiment_name(root), limit),
            ).fetchall()
            ids = [r[0] for r in rows]
            marks = ",".join("?" * len(ids))
            tags: dict[str, dict[str, str]] = {i: {} for i in ids}
            metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
            if ids:
                for run_id, key, value in db.execute(
                    f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})", ids
                ):
                    tags[run_id][key] = value
                for run_id, key, value in db.execute(
                    f"SELECT run_uuid, key, value FROM latest_metrics WHERE run_uuid IN ({marks})",
                    ids,
                ):
                    metrics[run_id][key] = value
    except sqlite3.Error:
        return None
    return [
        SimpleNamespace(
            info=SimpleNamespace(
                run_id=i, start_time=start, end_time=end, status=status, artifact_uri=uri
            ),
            data=SimpleNamespace(tags=tags[i], metrics=metrics[i], params={}),
        )
        for i, start, end, status, uri in rows
    ]


def read_only_connection(path: Path) -> Any:
    """A read-only ``sqlite3`` connection to the store ``path``.

    A store in WAL mode is read through its ``-shm`` and ``-wal`` files, which a reader
    creates when they are missing (SQLite deletes them when its last connection closes);
    a reader that may not write the store's folder (a container's user on a mounted
    project) then cannot open it. That reader gets the database file as it is
    (``immutable``): every build recorded and checkpointed, nothing half-written read
    as finished (a reader that fails to read returns None, and MLflow is asked).
    """
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
        return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def tracking_uri_embedded(root: Path) -> str:
    return f"sqlite:///{(local_store_dir(root) / 'mlflow.db').resolve()}"


# -- opening a SQLite store ------------------------------------------------------------
#
# MLflow creates and migrates a SQLite store's schema the first time a process opens it,
# with no lock between processes: builds opening a new store at once (CI runners, the
# tasks of one Airflow DAG, a gate notebook's kernel beside its build) run the same
# alembic migration side by side, fail ("Online migration expected to match one row"),
# and leave a half-migrated store (``_alembic_tmp_*``) that every later open fails on.

_TMP_PREFIX = "_alembic_tmp_"
_LOCK_WAIT = 300.0  # s: a migration takes a few; more means a process hung holding it


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and ``:memory:``)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _open_sqlite(uri: str, client_type: Any, *, registry: bool = True) -> Any:
    """A client of the store at ``uri``, opened while this process holds an exclusive
    file lock (``<db>.lock``): MLflow creates or migrates the schema once, whoever opens
    it first. A new store is a copy of an empty one (see :func:`_new_store`); a store
    left half-migrated is repaired first (see :func:`_repair`)."""
    path = _sqlite_path(uri)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(path.name + ".lock"), f"The tracking store {path}"):
        if not path.exists():
            _new_store(path)
        _repair(path, uri)
        _write_ahead(path)
        # The first use of each store (tracking: the client itself; registry: its
        # first call) builds it (tables, migrations) and caches it for this process.
        client = client_type(tracking_uri=uri)
        if registry and getattr(client, "_registry_uri", uri) == uri:
            client.search_registered_models(max_results=1)
        return client


# -- how a SQLite store commits ---------------------------------------------------------
#
# MLflow commits every call (a batch of params, an artifact, a status, a registry step).
# In SQLite's default mode (rollback journal, synchronous=FULL) a commit syncs the
# journal twice, the database and its folder: recording one build made about 40 commits
# and 160 disk syncs, most of the time it took. In WAL mode with synchronous=NORMAL a
# commit appends to ``<db>-wal`` without a sync; the WAL is synced when its pages are
# copied into the database (a checkpoint: SQLite's own every 1000 pages, and one when a
# build is recorded, :meth:`Store.checkpoint`). The database stays consistent whatever
# happens; a power cut (not a crash of the process) may lose the commits since the last
# sync. ``NBOPS_SQLITE_WAL=off`` keeps a store in the rollback journal, syncing each
# commit (e.g. a store on a network drive, where WAL's shared memory does not work).

#: Database files (real paths) of the SQLite stores this process writes with
#: synchronous=NORMAL: its connections to them, and only those, are set so.
_WRITE_AHEAD: set[str] = set()


def _wal_wanted() -> bool:
    return os.environ.get("NBOPS_SQLITE_WAL", "on").strip().lower() not in {
        "off",
        "0",
        "false",
        "no",
    }


def _write_ahead(path: Path) -> None:
    """Put the SQLite store ``path`` in WAL mode (kept in the file: every process that
    opens it, ``mlflow ui`` included, writes the same way) and have this process's
    connections to it commit without syncing (synchronous=NORMAL). With
    ``NBOPS_SQLITE_WAL=off``, back to the rollback journal. A store another process
    holds locked right now is left as it is, and asked again at its next opening."""
    import sqlite3

    wanted = _wal_wanted()
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(path, timeout=5)) as db,
    ):
        mode = db.execute("PRAGMA journal_mode").fetchone()[0].lower()
        if wanted != (mode == "wal"):
            db.execute(f"PRAGMA journal_mode={'WAL' if wanted else 'DELETE'}")
    real = os.path.realpath(path)
    if not wanted:
        _WRITE_AHEAD.discard(real)
        return
    if not _WRITE_AHEAD:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        # Every engine, MLflow's tracking, registry and other stores alike: they are
        # made inside MLflow, one per store kind and URI; the listener picks ours.
        event.listen(Engine, "connect", _on_connect)
    _WRITE_AHEAD.add(real)


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    try:
        main = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
        if main and os.path.realpath(main) in _WRITE_AHEAD:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        return  # the connection works as SQLite's default has it


def _checkpoint(path: Path) -> None:
    """Copy what the WAL of the store ``path`` holds into the database file and empty
    the WAL, without waiting for other processes (while one reads or writes, what can be
    copied is, and the WAL is emptied at a later checkpoint): after a build is recorded,
    ``mlflow.db`` alone holds it (a copy of the file alone, a backup, sees every run).
    Two disk syncs."""
    import sqlite3

    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(path, timeout=0)) as db,
    ):
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def _locked(lock: Path, what: str) -> Any:
    """Hold an exclusive file lock on ``lock`` (waiting up to five minutes)."""
    import fcntl

    with open(lock, "a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"{what} stayed locked for {_LOCK_WAIT:.0f} s "
                        f"(another process holds {lock} while creating or upgrading it). "
                        "Stop that process, or delete the lock file if none is running."
                    ) from None
                time.sleep(0.05)  # polling a lock held by another process
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """nbops' cache folder: ``NBOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nbops``, else
    ``~/.cache/nbops``. It holds nothing that cannot be made again."""
    if os.environ.get("NBOPS_CACHE_DIR"):
        return Path(os.environ["NBOPS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nbops"


def _new_store(path: Path) -> None:
    """Create the SQLite store ``path`` as a copy of an empty store of this MLflow version.

    MLflow builds a new store by running every schema migration since its first release,
    committing each: 1.4 s of CPU and several seconds of disk syncs, in the first build of
    every project (and every test that makes one). The empty store is made that way once
    per MLflow version, in :func:`cache_dir`, and copied. Its one row that names a place,
    the Default experiment's artifact folder, is set to what MLflow would have written
    here. If the cache cannot be written, MLflow builds the store as before.
    """
    import sqlite3

    import mlflow

    try:
        folder = cache_dir() / "stores"
        folder.mkdir(parents=True, exist_ok=True)
        template = folder / f"mlflow-{mlflow.__version__}.db"
        with _locked(folder / "stores.lock", f"The store template {template}"):
            if not template.exists():
                _make_template(template)
        partial = path.with_name(f".{path.name}.{os.getpid()}.new")
        shutil.copyfile(template, partial)
        with contextlib.closing(sqlite3.connect(partial)) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (_default_artifact_location(),),
            )
            db.commit()
        os.replace(partial, path)
    except OSError:
        return  # MLflow makes the store itself


def _make_template(template: Path) -> None:
    from mlflow.tracking import MlflowClient

    partial = template.with_name(f".{template.name}.{os.getpid()}.new")
    partial.unlink(missing_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{partial}")
    client.search_experiments(max_results=1)  # tracking tables and the Default experiment
    client.search_registered_models(max_results=1)  # model registry tables
    os.replace(partial, template)


def _default_artifact_location() -> str:
    """The Default experiment's artifact folder as MLflow sets it for a SQLite store
    opened from this working directory."""
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    return append_to_uri_path(resolve_uri_if_local("./mlruns"), "0")


def _repair(path: Path, uri: str) -> None:
    """Finish a schema upgrade that an earlier open left half done.

    alembic changes a SQLite table by copying it into ``_alembic_tmp_<table>``, dropping
    the original and renaming the copy; interrupted, the copy stays and every later
    upgrade fails on it. The copy is dropped (the original is still there) or renamed
    into place (the original was dropped), then the upgrade is run again. A store that
    still cannot be upgraded is rebuilt when it holds no runs and no models (a new
    store broken by its first opens), or reported with the commands that fix it.
    """
    import logging
    import sqlite3

    if not path.is_file():
        return
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        leftovers = sorted(t for t in tables if t.startswith(_TMP_PREFIX))
        if not leftovers:
            return
        for tmp in leftovers:
            original = tmp[len(_TMP_PREFIX) :]
            if original in tables:
                db.execute(f'DROP TABLE "{tmp}"')
            else:
                db.execute(f'ALTER TABLE "{tmp}" RENAME TO "{original}"')
        db.commit()
        empty = all(
            t not in tables or not db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()
            for t in ("runs", "registered_models")
        )
    logging.getLogger(__name__).warning(
        "The tracking store %s was left half-migrated (%s); finishing its schema upgrade.",
        path,
        ", ".join(leftovers),
    )
    from mlflow.store.db.utils import _upgrade_db, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(uri)
    try:
        _upgrade_db(engine)
        return
    except Exception as exc:
        if not empty:
            raise TrackingError(
                f"The tracking store {path} was left half-migrated by an interrupted schema "
                f"upgrade (leftover {', '.join(leftovers)}) and could not be upgraded: {exc}. "
                f"Back it up (cp {path} {path}.bak), then run `mlflow db upgrade {uri}`; if "
                f"that fails on a leftover {_TMP_PREFIX}<table>, drop it with `sqlite3 {path} "
                f"'DROP TABLE {_TMP_PREFIX}<table>'` and run the upgrade again."
            ) from exc
    finally:
        engine.dispose()
    # Nothing recorded yet: start the store again (MLflow creates it on first use).
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        db.execute("PRAGMA foreign_keys=OFF")
        for name in names:
            db.execute(f'DROP TABLE IF EXISTS "{name}"')
        db.commit()


def _public_record(record: BuildRecord) -> dict[str, Any]:
    from nbops.tracking.record import shown_runs

    data = record.to_dict()
    data["git"] = {k: v for k, v in data["git"].items() if k != "diff"}
    data.pop("packages", None)
    data["runs"] = shown_runs(data["runs"])  # the store's URI, without its password
    return data


def _same_store(recorded: str | None, uri: str) -> bool:
    """Whether a record's store URI (its password hidden) names the store at ``uri``."""
    from nbops.tracking.redact import display_url

    return recorded is not None and display_url(recorded) == display_url(uri)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        if not value and prefix:
            out[prefix[:-1]] = "{}"
        return out
    return {prefix[:-1]: value} if prefix else {"value": value}


def _key(name: str) -> str:
    # MLflow keys allow letters, digits and _ - . space / only.
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in str(name))[:250]


def _value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."
