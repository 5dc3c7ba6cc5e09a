"""The build record as plain data, and the spool that keeps it when the store is away."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nbops.tracking.record import (
    EXECUTED,
    SKIPPED,
    BuildRecord,
    TaskRecord,
    load_spooled,
    spooled_records,
)


@pytest.fixture
def products(tmp_path: Path) -> Path:
    """A build's outputs: an executed notebook, its report and a data snapshot."""
    folder = tmp_path / "project" / "products"
    (folder / "data").mkdir(parents=True)
    (folder / "evaluate.ipynb").write_text('{"cells": [], "note": "executed"}')
    (folder / "evaluate.html").write_text("<html>report</html>")
    (folder / "index.html").write_text("<html>build summary</html>")
    (folder / "data" / "snapshot.parquet").write_bytes(b"PAR1\x00\x01binary")
    (folder / "data" / "snapshot.json").write_text('{"content_hash": "sha256:abc"}')
    return folder


def make_record(products: Path, *, build_id: str = "b1", started_at: float = 1000.0) -> BuildRecord:
    return BuildRecord(
        build_id=build_id,
        project="churn",
        root=str(products.parent),
        command=["ploomber", "build"],
        trigger="manual",
        started_at=started_at,
        ended_at=started_at + 12.5,
        status="FINISHED",
        git={"commit": "3f2a9c1", "branch": "main", "dirty": False, "diff": None, "untracked": []},
        sources={"pipeline.yaml": "sha256:123"},
        env={"data": {"rows": 1500}},
        python={"python": "3.11.7"},
        packages=["pandas==2.2.2"],
        data={
            "content_hash": "sha256:abc",
            "data": str(products / "data" / "snapshot.parquet"),
            "meta": str(products / "data" / "snapshot.json"),
            "rows": 1500,
            "columns": 12,
        },
        metrics={"roc_auc": 0.83},
        files={"summary.html": str(products / "index.html")},
        tasks=[
            TaskRecord(
                name="evaluate",
                status=EXECUTED,
                params={"primary_metric": "roc_auc"},
                duration_s=3.2,
                metrics={"roc_auc": 0.83},
                files={
                    "reports/evaluate.ipynb": str(products / "evaluate.ipynb"),
                    "reports/evaluate.html": str(products / "evaluate.html"),
                },
                products={"nb": str(products / "evaluate.ipynb")},
            ),
            TaskRecord(name="ingest", status=SKIPPED, produced_by={"build_id": "b0"}),
        ],
    )


def test_round_trip_through_json(products: Path) -> None:
    record = make_record(products)

    again = BuildRecord.from_dict(json.loads(json.dumps(record.to_dict())))

    assert again == record
    assert isinstance(again.tasks[0], TaskRecord)
    assert again.task("ingest").produced_by == {"build_id": "b0"}
    assert again.task("missing") is None


def test_spool_copies_every_referenced_file(products: Path, tmp_path: Path) -> None:
    record = make_record(products)
    spool_root = tmp_path / "spool"

    folder = record.spool(spool_root)

    assert folder == spool_root / "b1"
    stored = json.loads((folder / "record.json").read_text())
    task_files = stored["tasks"][0]["files"]
    assert task_files == {
        "reports/evaluate.ipynb": "files/evaluate/reports/evaluate.ipynb",
        "reports/evaluate.html": "files/evaluate/reports/evaluate.html",
    }
    assert stored["data"]["data"] == "files/_data/snapshot.parquet"
    assert stored["data"]["meta"] == "files/_data/snapshot.json"
    assert stored["files"] == {"summary.html": "files/_build/summary.html"}
    for relative in [
        *task_files.values(),
        stored["data"]["data"],
        stored["data"]["meta"],
        stored["files"]["summary.html"],
    ]:
        assert (folder / relative).is_file()
    # The record in memory still points at the originals.
    assert record.tasks[0].files["reports/evaluate.ipynb"] == str(products / "evaluate.ipynb")


def test_spooled_record_survives_the_next_build(products: Path, tmp_path: Path) -> None:
    record = make_record(products)
    originals = {
        "reports/evaluate.ipynb": (products / "evaluate.ipynb").read_bytes(),
        "reports/evaluate.html": (products / "evaluate.html").read_bytes(),
    }
    data, meta = (
        (products / "data" / "snapshot.parquet").read_bytes(),
        (products / "data" / "snapshot.json").read_bytes(),
    )
    folder = record.spool(tmp_path / "spool")
    shutil.rmtree(products)  # the next build overwrites products/

    loaded = load_spooled(folder)

    files = loaded.task("evaluate").files
    assert set(files) == set(originals)
    for artifact, content in originals.items():
        assert Path(files[artifact]).is_absolute()
        assert Path(files[artifact]).read_bytes() == content
    assert Path(loaded.data["data"]).read_bytes() == data
    assert Path(loaded.data["meta"]).read_bytes() == meta
    assert Path(loaded.files["summary.html"]).read_text() == "<html>build summary</html>"
    assert loaded.build_id == record.build_id
    assert loaded.env == record.env
    assert loaded.task("ingest") == record.task("ingest")


def test_missing_files_are_left_as_given(products: Path, tmp_path: Path) -> None:
    record = make_record(products)
    gone = str(products / "never-written.html")
    record.tasks[0].files["reports/never-written.html"] = gone
    record.data["data"] = str(products / "data" / "gone.parquet")

    folder = record.spool(tmp_path / "spool")
    loaded = load_spooled(folder)

    assert loaded.task("evaluate").files["reports/never-written.html"] == gone
    assert loaded.data["data"] == str(products / "data" / "gone.parquet")
    assert not (folder / "files" / "evaluate" / "reports" / "never-written.html").exists()


def test_spooled_records_oldest_first(products: Path, tmp_path: Path) -> None:
    spool_root = tmp_path / "spool"
    make_record(products, build_id="late", started_at=3000.0).spool(spool_root)
    make_record(products, build_id="early", started_at=1000.0).spool(spool_root)
    make_record(products, build_id="middle", started_at=2000.0).spool(spool_root)
    (spool_root / "half-written").mkdir()  # a copy interrupted before record.json

    assert [p.name for p in spooled_records(spool_root)] == ["early", "middle", "late"]


def test_no_spool_folder_means_nothing_spooled(tmp_path: Path) -> None:
    assert spooled_records(tmp_path / "spool") == []
