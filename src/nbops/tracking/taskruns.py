"""Runs opened before the work, so plain MLflow calls inside a task land in the build.

A user's notebook or function that calls ``mlflow.log_metric`` (``log_param``,
``log_artifact``, ``log_figure``, ``mlflow.sklearn.log_model``) logs into the run
named by ``MLFLOW_RUN_ID`` in the store named by ``MLFLOW_TRACKING_URI``. Before the
tasks run, :func:`open_runs` creates the build's run and one nested run per task in the
project's store; :func:`task_env` is what a task's process and kernel receive. When the
store cannot be reached, the runs live in a scratch store inside the build's temporary
folder (``.nbops/tmp/<build id>/``, never the work tree), and :func:`logged` copies what
the task logged into its record, which is then published or spooled like the rest.

The runs are created without ``nbops.kind``/``nbops.build_id`` tags: until the build is
published (:meth:`nbops.tracking.store.Store.publish` adopts them) they are not builds,
and a build killed half-way leaves no half-record in ``nbops runs list``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from nbops.tracking.store import (
    Store,
    experiment_name,
    reachability_problem,
    tracking_uri,
)

__all__ = ["end_active_run", "logged", "open_runs", "task_env"]


def open_runs(root: Path, names: list[str], *, scratch: Path, title: str) -> dict[str, Any]:
    """Create the build's run and a nested run per task; return where they are.

    ``{"uri": store URI, "scratch": bool, "experiment": id, "build": run id,
    "tasks": {task name: run id}}``. The project's store is used when it can be
    reached, else a scratch store in ``scratch`` (a folder of the build's own).
    """
    uri = tracking_uri(root)
    store: Store | None = None
    problem = None
    try:
        problem = reachability_problem(uri)
        if problem is None:
            store = Store(root, uri=uri)
    except Exception as exc:  # an unreachable or broken store: log into the scratch one
        problem = f"{type(exc).__name__}: {exc}"
    scratch_store = store is None
    if scratch_store:
        scratch.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(scratch / 'mlflow.db').resolve()}"
        store = Store(root, uri=uri)
    assert store is not None
    if scratch_store:
        # its artifacts stay in the scratch folder (MLflow's default is ./mlruns)
        experiment = store.client.create_experiment(
            experiment_name(root), artifact_location=(scratch / "artifacts").resolve().as_uri()
        )
    else:
        experiment = store.experiment_id(experiment_name(root))
    build = store.client.create_run(experiment, tags={"mlflow.runName": title})
    tasks = {}
    for name in names:
        run = store.client.create_run(
            experiment,
            tags={"mlflow.runName": name, "mlflow.parentRunId": build.info.run_id},
        )
        tasks[name] = run.info.run_id
    return {
        "uri": uri,
        "scratch": scratch_store,
        "problem": problem,
        "experiment": experiment,
        "build": build.info.run_id,
        "tasks": tasks,
    }


def task_env(runs: dict[str, Any], name: str) -> dict[str, str]:
    """The environment a task's process and kernel get: its run and the store."""
    run_id = (runs.get("tasks") or {}).get(name)
    if not run_id:
        return {}
    return {
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": runs["uri"],
        "MLFLOW_EXPERIMENT_ID": str(runs["experiment"]),
    }


def end_active_run(run_id: str) -> None:
    """After a function task ran in this process: forget the run its MLflow calls
    resumed, so the next task's calls do not land in it. Its status is set when the
    build is published."""
    import sys

    if "mlflow" not in sys.modules:
        return  # the task never used MLflow
    import mlflow

    with contextlib.suppress(Exception):
        while (active := mlflow.active_run()) is not None:
            if active.info.run_id != run_id:
                break
            mlflow.end_run()


def logged(
    runs: dict[str, Any], name: str, *, root: Path, store: Store | None = None
) -> dict[str, Any]:
    """What a task logged into its run: ``{"metrics", "params", "files"}``.

    ``files`` (``{artifact path: file}``, logged artifacts and models) only for a
    scratch store: runs in the project's store already hold them.
    """
    run_id = (runs.get("tasks") or {}).get(name)
    empty: dict[str, Any] = {"metrics": {}, "params": {}, "files": {}}
    if not run_id:
        return empty
    store = store or Store(root, uri=runs["uri"])
    run = store.client.get_run(run_id)
    out = {
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "files": {},
    }
    if runs.get("scratch"):
        out["files"] = _scratch_files(store, run)
    return out


def _scratch_files(store: Store, run: Any) -> dict[str, str]:
    """Files of a run in the scratch store (local paths), models included."""
    from urllib.parse import unquote, urlparse

    def local(uri: str) -> Path:
        return Path(unquote(urlparse(uri).path))

    files: dict[str, str] = {}
    base = local(run.info.artifact_uri)
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            if path.is_file():
                files[str(path.relative_to(base))] = str(path)
    with contextlib.suppress(Exception):  # MLflow 3: models are entities of their own
        models = store.client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
        )
        for model in models:
            folder = local(model.artifact_location)
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    files[f"models/{model.name}/{path.relative_to(folder)}"] = str(path)
    return files
