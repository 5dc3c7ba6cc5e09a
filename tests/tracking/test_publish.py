"""Nothing is lost: a record the store cannot take is spooled, and `nbops sync` sends it later."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from nbops.errors import TrackingError
from nbops.tracking.publish import publish_or_spool, spool_dir, sync
from nbops.tracking.record import EXECUTED, BuildRecord, TaskRecord
from nbops.tracking.store import Store
from tests.tracking.conftest import free_port
from tests.tracking.factories import T0, finished_build


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "churn-project"
    (root / "products").mkdir(parents=True)
    (root / "products" / "evaluate.ipynb").write_text('{"cells": [], "build": "first"}')
    (root / "products" / "evaluate.html").write_text("<html>first report</html>")
    return root


@pytest.fixture
def store_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI points at a port nothing listens on; returns that URI."""
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def make_record(root: Path, build_id: str = "build-1", started_at: float = T0) -> BuildRecord:
    products = root / "products"
    evaluate = TaskRecord(
        name="evaluate",
        status=EXECUTED,
        duration_s=1.5,
        files={
            "reports/evaluate.ipynb": str(products / "evaluate.ipynb"),
            "reports/evaluate.html": str(products / "evaluate.html"),
        },
    )
    return finished_build(root, build_id=build_id, started_at=started_at, tasks=[evaluate])


def test_unreachable_store_spools_the_record(
    project: Path, store_down: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = publish_or_spool(make_record(project), root=project)

    folder = spool_dir(project) / "build-1"
    assert result == {"spooled": str(folder), "tasks": {}}
    assert (folder / "record.json").is_file()
    assert (folder / "files" / "evaluate" / "reports" / "evaluate.html").is_file()
    err = capsys.readouterr().err
    assert store_down in err
    assert "nbops sync" in err
    assert str(folder) in err


def test_a_store_that_fails_while_publishing_spools_the_record(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://tracking.example.com")

    result = publish_or_spool(make_record(project), root=project)

    assert result["spooled"] == str(spool_dir(project) / "build-1")
    err = capsys.readouterr().err
    assert "publishing to nosuchscheme://tracking.example.com failed" in err
    assert "nbops sync" in err


def test_reachable_store_publishes_directly(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = publish_or_spool(make_record(project), root=project)

    assert [b.info.run_id for b in Store(project).builds()] == [result["run_id"]]
    assert set(result["tasks"]) == {"evaluate"}
    assert f"nbops: recorded build as run {result['run_id']}" in capsys.readouterr().err
    assert not spool_dir(project).exists()


def test_sync_publishes_spooled_builds_oldest_first(
    project: Path, store_down: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first_report = (project / "products" / "evaluate.html").read_text()
    publish_or_spool(make_record(project, "build-late", T0 + 60), root=project, quiet=True)
    publish_or_spool(make_record(project, "build-early", T0), root=project, quiet=True)
    shutil.rmtree(project / "products")  # the next build overwrites products/
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the store is back (embedded)

    done = sync(project)

    assert [build_id for build_id, _ in done] == ["build-early", "build-late"]
    store = Store(project)
    builds = store.builds()
    assert [b.info.run_id for b in builds] == [run_id for _, run_id in reversed(done)]
    assert [b.data.tags["nbops.build_id"] for b in builds] == ["build-late", "build-early"]
    assert not (spool_dir(project) / "build-early").exists()
    assert not (spool_dir(project) / "build-late").exists()
    child = store.children(done[0][1])[0]
    report = store.download(child.info.run_id, "reports/evaluate.html", tmp_path)
    assert report.read_text() == first_report


def test_sync_to_an_unreachable_store_keeps_the_spool(project: Path, store_down: str) -> None:
    publish_or_spool(make_record(project), root=project, quiet=True)

    with pytest.raises(
        TrackingError,
        match=rf"Cannot sync 1 spooled build\(s\): {re.escape(store_down)} is unreachable.*Check MLFLOW_TRACKING_URI",
    ):
        sync(project)

    assert (spool_dir(project) / "build-1" / "record.json").is_file()


def test_sync_with_nothing_spooled(project: Path) -> None:
    assert sync(project) == []
    assert not (project / ".nbops").exists()


def test_sync_skips_a_corrupt_record_and_publishes_the_rest(
    project: Path, store_down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_or_spool(make_record(project, "build-a", T0), root=project, quiet=True)
    publish_or_spool(make_record(project, "build-bad", T0 + 30), root=project, quiet=True)
    publish_or_spool(make_record(project, "build-c", T0 + 60), root=project, quiet=True)
    bad = spool_dir(project) / "build-bad"
    (bad / "record.json").write_text('{"build_id": "build-bad", "tas')  # cut short
    monkeypatch.delenv("MLFLOW_TRACKING_URI")

    with pytest.raises(
        TrackingError,
        match=r"Skipped 1 corrupt spooled record\(s\): The spooled record .*build-bad/record\.json is corrupt \(JSONDecodeError.*moved to .*build-bad\.corrupt\. Published the other 2",
    ):
        sync(project)

    assert [b.data.tags["nbops.build_id"] for b in Store(project).builds()] == [
        "build-c",
        "build-a",
    ]
    assert sorted(p.name for p in spool_dir(project).iterdir()) == ["build-bad.corrupt"]
    assert sync(project) == [], "a record moved aside is not retried"


def test_nbops_sync_exits_non_zero_when_a_record_was_skipped(
    project: Path, store_down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from nbops.cli import main

    (project / "pipeline.yaml").write_text("tasks: []\n")
    publish_or_spool(make_record(project, "build-ok", T0), root=project, quiet=True)
    publish_or_spool(make_record(project, "build-bad", T0 + 1), root=project, quiet=True)
    (spool_dir(project) / "build-bad" / "record.json").write_text("[]")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(project)

    result = CliRunner().invoke(main, ["sync"])

    assert result.exit_code == 1, result.output
    assert "Skipped 1 corrupt spooled record(s)" in result.output
    assert "Published the other 1 (build build-ok as run" in result.output


def test_messages_never_show_the_store_password(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"http://ada:store-pass-123@127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    publish_or_spool(make_record(project), root=project)
    with pytest.raises(TrackingError) as raised:
        sync(project)

    err = capsys.readouterr().err
    assert "is not available" in err and "http://ada:***REDACTED***@127.0.0.1" in err
    assert "store-pass-123" not in err and "store-pass-123" not in str(raised.value)


def test_a_malformed_store_uri_spools_the_record(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # urllib cannot parse this port: the record is kept, and the password not shown.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ada:pw-4711@127.0.0.1:notaport")

    result = publish_or_spool(make_record(project), root=project)

    assert (Path(result["spooled"]) / "record.json").is_file()
    err = capsys.readouterr().err
    assert "cannot be used" in err and "pw-4711" not in err
