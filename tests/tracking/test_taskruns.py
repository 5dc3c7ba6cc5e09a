"""Runs opened before the tasks ran: what a task logs to MLflow itself lands in its run of
the build, in the project's store or, when that is unreachable, with the build's record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nbops.tracking.publish import publish_or_spool
from nbops.tracking.record import EXECUTED, BuildRecord, TaskRecord, headline_metrics
from nbops.tracking.store import Store
from nbops.tracking.taskruns import logged, open_runs, task_env


def record(root: Path, runs: dict, tasks: list[TaskRecord]) -> BuildRecord:
    return BuildRecord(
        build_id="b" * 32,
        project=root.name,
        root=str(root),
        command=["ploomber", "build"],
        trigger="manual",
        started_at=time.time(),
        ended_at=time.time(),
        status="FINISHED",
        tasks=tasks,
        runs=runs,
    )


def log_as_the_task(runs: dict, name: str, tmp_path: Path) -> None:
    """What a notebook's ``mlflow.log_*`` calls do, given the task's environment."""
    env = task_env(runs, name)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    client.log_metric(env["MLFLOW_RUN_ID"], "r2", 0.91)
    client.log_param(env["MLFLOW_RUN_ID"], "C", "0.5")
    plot = tmp_path / "plot.txt"
    plot.write_text("a figure")
    client.log_artifact(env["MLFLOW_RUN_ID"], str(plot), "figures")


def test_the_tasks_own_runs_become_the_builds_runs(tmp_path: Path) -> None:
    root = tmp_path / "project"
    runs = open_runs(root, ["train", "load"], scratch=root / ".nbops" / "tmp", title="build")
    assert not runs["scratch"]
    log_as_the_task(runs, "train", tmp_path)
    got = logged(runs, "train", root=root)
    assert got["metrics"] == {"r2": 0.91} and got["params"] == {"C": "0.5"}
    train = TaskRecord("train", EXECUTED, params={"C": "0.5", "rows": 20})
    train.metrics, train.logged_params = got["metrics"], got["params"]

    # "load" did not run in this build: its opened run is not kept.
    result = Store(root).publish(record(root, runs, [train]))

    assert result["run_id"] == runs["build"]
    assert result["tasks"] == {"train": runs["tasks"]["train"]}
    client = MlflowClient(runs["uri"])
    run = client.get_run(runs["tasks"]["train"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["nbops.task"] == "train"
    assert run.data.tags["mlflow.parentRunId"] == runs["build"]
    assert run.data.metrics == {"r2": 0.91}
    assert run.data.params == {"C": "0.5", "rows": "20"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == [
        "figures/plot.txt"
    ]
    assert client.get_run(runs["tasks"]["load"]).info.lifecycle_stage == "deleted"
    assert [b.info.run_id for b in Store(root).builds()] == [runs["build"]]


def test_the_stores_password_is_not_recorded_and_its_runs_are_still_adopted(
    tmp_path: Path,
) -> None:
    """The tasks' runs name the store they are in by its URI: a team's tracking server
    or database with a password in it (``postgresql://u:pw@db/mlflow``,
    ``http://u:pw@mlflow``) went as it was into the record.json stored with the run,
    readable by anyone who reads the store. The record holds it redacted, as the build
    hooks leave it, and publishing still knows its own store's runs by it."""
    import json

    from nbops.tracking.record import shown_runs
    from nbops.tracking.redact import strip_url_credentials

    root = tmp_path / "project"
    runs = open_runs(root, ["train"], scratch=root / ".nbops" / "tmp", title="build")
    store = Store(root)
    secret_uri = "http://ada:hunter2pw@mlflow.example:5000"
    store.uri = secret_uri  # the store, as a team's server would be named to this process
    runs["uri"] = secret_uri
    train = TaskRecord("train", EXECUTED, params={"C": "0.5"})

    result = store.publish(record(root, shown_runs(runs), [train]))

    assert result["run_id"] == runs["build"], "the opened runs are the build's"
    assert result["tasks"] == {"train": runs["tasks"]["train"]}
    path = store.client.download_artifacts(result["run_id"], "record.json", str(tmp_path))
    stored = Path(path).read_text()
    assert "hunter2pw" not in stored
    assert json.loads(stored)["runs"]["uri"] == strip_url_credentials(secret_uri)

    # The record.json artifact holds no password even from a record that still has it.
    second = open_runs(root, ["train"], scratch=root / ".nbops" / "tmp", title="build")
    second["uri"] = "postgresql://ada:hunter2pw@db/mlflow"  # another store: not adopted
    result = Store(root).publish(record(root, second, [train]))
    path = store.client.download_artifacts(result["run_id"], "record.json", str(tmp_path / "b"))
    assert "hunter2pw" not in Path(path).read_text()


def test_an_unreachable_store_keeps_what_the_task_logged_with_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens
    scratch = root / ".nbops" / "tmp" / "build" / "mlflow"
    runs = open_runs(root, ["train"], scratch=scratch, title="build")
    assert runs["scratch"] and runs["uri"].startswith("sqlite:///")
    log_as_the_task(runs, "train", tmp_path)

    got = logged(runs, "train", root=root)
    train = TaskRecord("train", EXECUTED, metrics=got["metrics"], logged_params=got["params"])
    train.files = got["files"]
    spooled = publish_or_spool(record(root, runs, [train]), root=root)
    # Nothing in the work tree but nbops' own folder.
    assert sorted(p.name for p in root.iterdir()) == [".nbops"]

    # The store is back: the spooled record publishes what the task logged.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    from nbops.tracking.publish import sync

    ((_, run_id),) = sync(root)
    store = Store(root)
    (child,) = store.children(run_id)
    assert child.data.metrics["r2"] == 0.91 and child.data.params["C"] == "0.5"
    paths = [a.path for a in store.client.list_artifacts(child.info.run_id, "figures")]
    assert paths == ["figures/plot.txt"]
    assert "spooled" in spooled


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (None, {}),  # two tasks with metrics: no task is the build's by default
        (["fit-2"], {"score": 2.0, "loss": 0.5}),
        (["fit-1:score", "fit-2:score"], {"fit-1.score": 1.0, "fit-2.score": 2.0}),
        (["fit-9"], {}),
    ],
)
def test_the_headline_metrics_are_a_setting_not_the_last_task(selection, expected) -> None:
    tasks = [
        TaskRecord("fit-1", EXECUTED, metrics={"score": 1.0}),
        TaskRecord("fit-2", EXECUTED, metrics={"score": 2.0, "loss": 0.5}),
    ]
    assert headline_metrics(tasks, selection) == expected


def test_a_metrics_product_or_a_single_task_is_the_headline_by_default() -> None:
    evaluate = TaskRecord(
        "evaluate", EXECUTED, metrics={"metrics": {"roc_auc": 0.8}}, products={"metrics": "m.json"}
    )
    other = TaskRecord("fit", EXECUTED, metrics={"score": 1.0})
    assert headline_metrics([evaluate, other]) == {"roc_auc": 0.8}
    assert headline_metrics([other]) == {"score": 1.0}
