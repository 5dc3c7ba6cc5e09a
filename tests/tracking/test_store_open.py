"""Opening a SQLite tracking store: created once under a lock by whichever process
opens it first, and a store left half-migrated is repaired (issue 18, item 13); it
commits in WAL mode without a disk sync per commit, and once a build is recorded the
database file alone holds it (issue 19, item 2)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from nbops.tracking.publish import publish_or_spool
from nbops.tracking.record import EXECUTED, TaskRecord
from nbops.tracking.store import Store
from tests.tracking.factories import finished_build

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


# -- how it commits ------------------------------------------------------------------


def _journal_mode(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def _synchronous(uri: str) -> int:
    """The sync setting of a connection made the way MLflow's stores make theirs."""
    from mlflow.store.db.utils import create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(uri)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA synchronous").scalar()
    finally:
        engine.dispose()


def test_a_store_commits_to_its_write_ahead_log_without_a_disk_sync_each(
    tmp_path: Path,
) -> None:
    # Recording a build is ~40 MLflow commits: in SQLite's default mode each one synced
    # the disk four times (about 160 syncs, most of the recording's time).
    store = Store(tmp_path)
    path = tmp_path / ".nbops" / "mlflow.db"
    assert _journal_mode(path) == "wal"
    assert _synchronous(store.uri) == 1  # NORMAL: synced at checkpoints only
    other = tmp_path / "other.db"
    assert _synchronous(f"sqlite:///{other}") == 2  # a database of the user's: untouched


def test_an_older_store_is_switched_to_wal_and_nbops_sqlite_wal_off_keeps_it_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shared.db"
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("NBOPS_SQLITE_WAL", "off")
    store = Store(tmp_path, uri=uri)
    run = store.client.create_run(store.experiment_id("builds")).info.run_id
    assert _journal_mode(path) == "delete"
    assert _synchronous(uri) == 2

    monkeypatch.delenv("NBOPS_SQLITE_WAL")
    store = Store(tmp_path, uri=uri)
    store.client.set_tag(run, "after", "switch")
    assert _journal_mode(path) == "wal"
    assert store.client.get_run(run).data.tags["after"] == "switch"


def test_once_a_build_is_recorded_the_database_file_alone_holds_it(tmp_path: Path) -> None:
    # WAL keeps recent commits in mlflow.db-wal; a backup or a copy of mlflow.db alone
    # must still hold every recorded build.
    root = tmp_path / "project"
    report = root / "products" / "train.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>train</html>")
    tasks = [
        TaskRecord(name=name, status=EXECUTED, duration_s=1.0, files={"train.html": str(report)})
        for name in ("ingest", "train")
    ]
    result = publish_or_spool(finished_build(root, tasks=tasks), root=root, quiet=True)

    copy = tmp_path / "copy.db"
    shutil.copyfile(root / ".nbops" / "mlflow.db", copy)
    with closing(sqlite3.connect(copy)) as db:
        runs = {
            r[0]
            for r in db.execute("SELECT run_uuid FROM runs WHERE status = 'FINISHED'").fetchall()
        }
    assert {result["run_id"], *result["tasks"].values()} <= runs


def test_a_reader_that_may_not_write_the_store_folder_still_reads_it() -> None:
    # A WAL store is read through <db>-shm, created by its reader when missing: a
    # container's user serving a mounted project may not create it. Run as root (CI),
    # the reader is a forked child that becomes the user nobody.
    from nbops.tracking.store import read_only_connection

    base = Path(tempfile.mkdtemp(prefix="nbops-ro-"))  # not under pytest's private folder
    base.chmod(0o755)
    folder = base / "store"
    folder.mkdir()
    path = folder / "mlflow.db"
    try:
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE runs (run_uuid TEXT)")
            db.execute("INSERT INTO runs VALUES ('r1')")
            db.commit()
        assert not (folder / "mlflow.db-shm").exists()
        path.chmod(0o644)
        folder.chmod(0o555)
        if os.geteuid() != 0:
            with closing(read_only_connection(path)) as db:
                assert db.execute("SELECT run_uuid FROM runs").fetchall() == [("r1",)]
            return
        # Python itself may not be readable by nobody (a pyenv under /root): the test
        # process forks, and only the child (sqlite3 imported already) drops to nobody.
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover  (what the child read is written to the pipe)
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with closing(read_only_connection(path)) as db:
                    got = repr(db.execute("SELECT run_uuid FROM runs").fetchall())
            except BaseException as exc:  # noqa: BLE001
                got = f"{type(exc).__name__}: {exc}"
            os.write(write, got.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as answer:
            got = answer.read()
        os.waitpid(child, 0)
        assert got == "[('r1',)]"
        assert not (folder / "mlflow.db-shm").exists()
    finally:
        folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
