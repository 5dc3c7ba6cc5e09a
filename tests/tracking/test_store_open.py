"""Opening a SQLite tracking store: created once under a lock by whichever process
opens it first, and a store left half-migrated is repaired (issue 18, item 13)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.tracking.store import Store

# One Python imports MLflow (the store's SQL layer included: seconds of CPU, the same in
# every process), then forks ``count`` processes. Each opens the store on its own, after
# waiting for every other to be ready to (a file per process, polled with a deadline),
# so the opens truly overlap; the import before the fork opens nothing.
_OPEN = """
import os, sys, time, traceback
from pathlib import Path
import mlflow.store.db.utils, mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
from mlflow.tracking import MlflowClient  # noqa: F401
from nbops.tracking.store import Store
here, count = Path(sys.argv[1]), int(sys.argv[2])
children = []
for index in range(count):
    pid = os.fork()
    if pid:
        children.append(pid)
        continue
    try:
        (here / f"ready-{index}").touch()
        deadline = time.monotonic() + 120
        while len(list(here.glob("ready-*"))) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        store = Store(here, uri=f"sqlite:///{here / 'shared.db'}")
        store.experiment_id("shared")
        store.client.search_registered_models()
        print(f"{index} opened", flush=True)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)
failed = [pid for pid in children if os.waitpid(pid, 0)[1]]
sys.exit(1 if failed else 0)
"""


@pytest.mark.parametrize("cache", ["new", "unwritable"])
def test_a_new_store_opened_by_four_processes_at_once_works_for_all(
    tmp_path: Path, cache: str
) -> None:
    # "new": the four race to make the empty store they copy; "unwritable": MLflow makes
    # the store itself, migrations and all, under the store's lock.
    count = 4
    (tmp_path / "file").touch()
    env = {
        **os.environ,
        "NBOPS_CACHE_DIR": str(tmp_path / ("cache" if cache == "new" else "file/x")),
    }
    result = subprocess.run(
        [sys.executable, "-c", _OPEN, str(tmp_path), str(count)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    opened = sorted(line for line in result.stdout.splitlines() if line.endswith(" opened"))
    assert result.returncode == 0 and len(opened) == count, result.stderr[-6000:]
    with sqlite3.connect(tmp_path / "shared.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not [t for t in tables if t.startswith("_alembic_tmp_")]


def _half_migrated(path: Path) -> None:
    """A store as one of several builds opening it at once used to leave it: the
    schema partly upgraded, with alembic's copy of a table it was rebuilding left over."""
    from alembic import command
    from mlflow.store.db.utils import InitialBase, _get_alembic_config, create_sqlalchemy_engine

    uri = f"sqlite:///{path}"
    engine = create_sqlalchemy_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "4465047574b1")
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags")


def test_a_half_migrated_store_is_repaired_on_open(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    _half_migrated(path)

    store = Store(tmp_path, uri=f"sqlite:///{path}")
    experiment = store.experiment_id("after-repair")
    run = store.client.create_run(experiment)
    store.client.set_tag(run.info.run_id, "k", "v")

    assert store.client.get_run(run.info.run_id).data.tags["k"] == "v"
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "_alembic_tmp_tags" not in tables


def test_a_new_store_is_a_copy_of_an_empty_one_without_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.store.db.utils as db_utils
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    monkeypatch.setenv("NBOPS_CACHE_DIR", str(tmp_path / "cache"))
    Store(tmp_path / "first").experiment_id("builds")  # makes the empty store once
    migrations: list[object] = []
    monkeypatch.setattr(db_utils, "_upgrade_db", lambda engine: migrations.append(engine))
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "second")
    run = store.client.create_run(store.experiment_id("builds"))
    store.client.log_metric(run.info.run_id, "roc_auc", 0.9)
    assert migrations == [], "MLflow migrated a new store"
    assert store.client.get_run(run.info.run_id).data.metrics == {"roc_auc": 0.9}
    default = store.client.get_experiment("0").artifact_location
    assert default == append_to_uri_path(resolve_uri_if_local("./mlruns"), "0")  # MLflow's own
    assert str(tmp_path) in default
