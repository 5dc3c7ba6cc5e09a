"""State files never end half-written or lose a concurrent update; a corrupt one is
reported, moved aside and read as empty."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from nbops.state import StateFile, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lineage.json"
    atomic_write(path, '{"a": 1}')
    os.chmod(path, 0o600)

    atomic_write(path, b'{"a": 2}')

    assert json.loads(path.read_text()) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file's mode is kept"
    assert [p.name for p in path.parent.iterdir()] == ["lineage.json"]


def test_a_file_of_secrets_is_never_readable_by_others(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "task.secrets", '["hunter2pw"]', mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_write_that_fails_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lineage.json"
    atomic_write(path, '{"kept": true}')

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, '{"new": "' + "x" * 100_000 + '"}')

    assert json.loads(path.read_text()) == {"kept": True}
    assert [p.name for p in tmp_path.iterdir()] == ["lineage.json"]


def _add_keys(
    path: str, worker: int, count: int, barrier: multiprocessing.synchronize.Barrier
) -> None:
    state = StateFile(path)
    barrier.wait()
    for i in range(count):
        with state.locked():
            data = state.read()
            data[f"{worker}-{i}"] = i
            state.write(data)


def test_concurrent_read_modify_write_under_the_lock_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lineage.json"
    workers, count = 4, 25
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_add_keys, args=(str(path), w, count, barrier))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0

    assert len(json.loads(path.read_text())) == workers * count


@pytest.mark.parametrize("content", ['{"ingest": {"build_id": "ab', "", "[1, 2]", "\udcff"])
def test_a_corrupt_state_file_is_reported_once_and_read_as_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "lineage.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    state = StateFile(path, consequence="skipped tasks will not link to their build")

    assert state.read() == {}
    err = capsys.readouterr().err
    assert f"nbops: WARNING: {path}" in err and "treated as empty" in err
    assert "skipped tasks will not link to their build" in err
    assert path.exists(), "only the lock holder moves it"

    with state.locked():
        assert state.read() == {}
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and f"moved to {path}.corrupt" in err
    assert (tmp_path / "lineage.json.corrupt").read_bytes() == content.encode(
        "utf-8", "surrogateescape"
    )

    with state.locked():
        assert state.read() == {}
        state.write({"ingest": {"build_id": "cd"}})
    assert capsys.readouterr().err == "", "a missing file is not an error"
    assert StateFile(path).read() == {"ingest": {"build_id": "cd"}}
