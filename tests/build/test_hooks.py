"""The Ploomber hooks: trigger, env as used, metric flattening, and a record that
survives a corrupt lineage file, builds finishing at once, and a failure while finishing."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.build.hooks import (
    _Build,
    _flat_env,
    _Lineage,
    _numbers,
    _safely,
    enabled,
    trigger,
)
from nbops.tracking.publish import spool_dir
from nbops.tracking.record import (
    EXECUTED,
    BuildRecord,
    TaskRecord,
    load_spooled,
    spooled_records,
)
from nbops.tracking.redact import REDACTED


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "manual"),
        ({"CI": "true"}, "ci"),
        ({"CI": "true", "NBOPS_TRIGGER": "schedule"}, "schedule"),
        ({"NBOPS_TRIGGER": "drift"}, "drift"),
        ({"NBOPS_TRIGGER": " Manual "}, "manual"),
    ],
)
def test_trigger_comes_from_the_environment(monkeypatch, env, expected):
    monkeypatch.delenv("NBOPS_TRIGGER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert trigger() == expected


def test_an_unknown_trigger_is_recorded_but_warned_about(monkeypatch, capsys):
    monkeypatch.setenv("NBOPS_TRIGGER", "nightly")
    assert trigger() == "nightly"
    assert "not one of manual, ci, schedule, drift" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "on"), [("off", False), ("0", False), ("false", False), ("on", True), ("", True)]
)
def test_tracking_can_be_switched_off(monkeypatch, value, on):
    monkeypatch.setenv("NBOPS_TRACKING", value)
    assert enabled() is on


def test_env_as_used_applies_command_line_overrides():
    env = {"data": {"rows": 5000, "source": "bundled"}, "task": "classification"}
    command = [
        "ploomber",
        "build",
        "--env--data--rows",
        "100",
        "--env--task=regression",
        "--env--new--key",
        "x",
    ]
    assert _flat_env(env, command) == {
        "data": {"rows": "100", "source": "bundled"},
        "task": "regression",
        "new": {"key": "x"},
    }
    assert env["data"]["rows"] == 5000, "the file's values are not modified"


def test_numbers_flattens_nested_metrics_and_drops_the_rest():
    metrics = {
        "metrics": {"roc_auc": 0.8, "f1": float("nan")},
        "best": "hgb",
        "ok": True,
        "test_rows": 300,
        "slices": [{"a": 1}],
    }
    assert _numbers(metrics) == {"metrics.roc_auc": 0.8, "test_rows": 300.0}


# -- the build record survives a corrupt state file or a failure while finishing ------


def _record(build_id: str, *tasks: str) -> BuildRecord:
    return BuildRecord(
        build_id=build_id,
        project="p",
        root="/p",
        command=["ploomber", "build"],
        trigger="manual",
        started_at=0.0,
        tasks=[TaskRecord(name=t, status=EXECUTED) for t in tasks],
    )


def test_a_corrupt_lineage_file_is_reported_and_rewritten(tmp_path, capsys):
    path = tmp_path / ".nbops" / "lineage.json"
    path.parent.mkdir()
    path.write_text('{"ingest": {"build_id": "old"}, "spl')  # a write cut short

    index = _Lineage(tmp_path)

    assert index.get("ingest") is None
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and str(path) in err and "lineage.json.corrupt" in err
    index.update(_record("new", "ingest"))
    assert json.loads(path.read_text()) == {"ingest": {"build_id": "new"}}


def _update_lineage(root: str, task: str, barrier) -> None:
    index = _Lineage(Path(root))  # read when the build finishes...
    barrier.wait()
    index.update(_record(f"build-{task}", task))  # ...written after publishing


def test_builds_finishing_at_once_keep_each_others_lineage(tmp_path):
    context = multiprocessing.get_context("fork")
    tasks = [f"train-{i}" for i in range(4)]
    barrier = context.Barrier(len(tasks))
    processes = [
        context.Process(target=_update_lineage, args=(str(tmp_path), t, barrier)) for t in tasks
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0

    assert _Lineage(tmp_path).data == {t: {"build_id": f"build-{t}"} for t in tasks}


def test_a_failure_while_finishing_spools_the_record_and_says_so(tmp_path, monkeypatch, capsys):
    secret = "argv-secret-4711"
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    (tmp_path / "env.yaml").write_text("db:\n  password: placeholder\n")
    metrics = tmp_path / "products" / "metrics.json"
    metrics.parent.mkdir()
    metrics.write_text('{"roc_auc": 0.8')  # half-written by a killed process
    monkeypatch.setattr(
        sys, "orig_argv", ["/venv/bin/ploomber", "build", "--env--db--password", secret]
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never reached
    build = _Build(tmp_path)
    build.record.tasks.append(
        TaskRecord(name="evaluate", status=EXECUTED, products={"metrics": str(metrics)})
    )

    _safely(lambda: build.finish(None, "FINISHED"))  # as the hooks call it

    err = capsys.readouterr().err
    assert "ERROR: recording this build failed half-way" in err and "nbops sync" in err
    assert "JSONDecodeError" in err and secret not in err
    (folder,) = spooled_records(spool_dir(tmp_path))
    record = load_spooled(folder)
    assert [t.name for t in record.tasks] == ["evaluate"]
    assert record.status == "FINISHED" and "JSONDecodeError" in record.error
    assert record.command == ["ploomber", "build", "--env--db--password", REDACTED]
    assert secret not in (folder / "record.json").read_text()
    assert not (tmp_path / ".nbops" / "tmp").exists()


def test_env_yaml_is_read_once_per_build_and_again_when_it_changes(tmp_path, monkeypatch):
    import os

    import yaml

    env = tmp_path / "env.yaml"
    env.write_text("data:\n  rows: 10\n")
    parsed = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parsed.append(1) or real(text))
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/ploomber", "build", "--env--data--rows", "7"])
    build = _Build(tmp_path)

    seen = [build._env_used() for _ in range(5)]  # every task's capture asks

    assert seen == [{"data": {"rows": "7"}}] * 5 and len(parsed) == 1
    env.write_text("data:\n  rows: 12\n  seed: 1\n")
    os.utime(env, ns=(1, 1))  # a different mtime even on a coarse clock
    assert build._env_raw() == {"data": {"rows": 12, "seed": 1}} and len(parsed) == 2


def test_the_warm_up_opens_the_projects_store_for_the_build_to_reuse(tmp_path):
    from nbops.tracking.store import Store, warm_up

    warm_up(tmp_path)  # on the build's warm-up thread, while the notebooks run

    assert (tmp_path / ".nbops" / "mlflow.db").is_file(), "created (tables) ahead of need"
    assert Store(tmp_path).experiment_id("demo")  # the build's publishing opens it again


def test_a_fork_while_the_warm_up_imports_waits_for_it(tmp_path, monkeypatch):
    # Ploomber's executors fork a process per task; a fork taken while the warm-up thread
    # imports MLflow would leave the child waiting forever on that import's lock.
    import os
    import threading

    from nbops.build import hooks

    started, release, done = threading.Event(), threading.Event(), []

    def slow_warm_up(root):
        started.set()
        release.wait(60)
        done.append(True)

    monkeypatch.setattr(hooks, "_warm_up", slow_warm_up)
    monkeypatch.setattr(hooks.lineage, "freeze", lambda: [])
    monkeypatch.setattr(hooks, "_WARMING", [])
    build = hooks._Build(tmp_path)
    build.warm_up()
    assert started.wait(60)
    threading.Timer(0.2, release.set).start()  # the warm-up ends while the fork waits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the task's process: was the warm-up over when it was forked?
        os.write(write, b"over" if done else b"running")
        os._exit(0)
    os.close(write)
    seen = os.read(read, 16)
    os.waitpid(pid, 0)
    assert seen == b"over"


def test_a_record_published_at_exit_can_still_use_thread_pools():
    # `ploomber task gate` publishes at exit, and the release downloads the model through
    # MLflow's thread pool: at plain atexit time every pool refuses work, so the record
    # was spooled and the release left for `nbops sync`.
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from nbops.build.hooks import _at_exit\n"
        "_at_exit(lambda: print(ThreadPoolExecutor(1).submit(str, 'released').result()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "released"), done.stderr


def test_secrets_handed_back_by_a_worker_are_readable_by_this_user_only(tmp_path):
    """A parallel build's worker hands its task back through a file beside the record,
    with the secret values the build must scrub: the project folder may be shared (its
    files 0o644), the secrets file is not."""
    import os
    import stat

    worker = _Build(tmp_path, build_id="b" * 32, owner_pid=os.getpid() + 1)
    worker.secrets = ["hunter2pw"]
    worker._hand_back(TaskRecord("train", EXECUTED))

    (secrets,) = (tmp_path / ".nbops" / "tmp" / ("b" * 32) / "tasks").glob("*.secrets")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    owner = _Build(tmp_path, build_id="b" * 32, owner_pid=os.getpid())
    owner._collect_handed_back()
    assert "hunter2pw" in owner.secrets
