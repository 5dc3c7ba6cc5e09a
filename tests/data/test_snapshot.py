"""Data snapshots: Parquet plus a JSON description whose hash depends on content only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbops.data import snapshot
from nbops.data.datasets import make_churn, write_churn
from nbops.data.snapshot import snapshot_hash, write_snapshot

ROWS, SEED = 400, 3


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_churn(ROWS, seed=SEED)


@pytest.fixture(scope="module")
def bundled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundled snapshot written once for the module (read-only for tests)."""
    root = tmp_path_factory.mktemp("bundled")
    write_snapshot(
        "bundled",
        data_path=root / "data" / "snapshot.parquet",
        meta_path=root / "meta" / "snapshot.json",
        rows=ROWS,
        seed=SEED,
    )
    return root


@pytest.fixture
def bundled_meta(bundled_dir: Path) -> dict:
    return json.loads((bundled_dir / "meta" / "snapshot.json").read_text())


def test_bundled_snapshot_writes_parquet_and_meta(tmp_path: Path, frame: pd.DataFrame) -> None:
    data_path = tmp_path / "data" / "snapshot.parquet"
    returned = write_snapshot(
        "bundled",
        data_path=data_path,
        meta_path=tmp_path / "meta" / "snapshot.json",
        rows=ROWS,
        seed=SEED,
    )
    pd.testing.assert_frame_equal(pd.read_parquet(data_path), frame)
    on_disk = json.loads((tmp_path / "meta" / "snapshot.json").read_text())
    assert on_disk == json.loads(json.dumps(returned))
    assert on_disk["source"] == {"kind": "bundled", "rows": ROWS, "seed": SEED, "drift": 0.0}
    assert on_disk["rows"] == ROWS
    assert on_disk["columns"] == 16
    assert on_disk["dtypes"]["customer_id"] == "string"
    assert on_disk["dtypes"]["signup_date"].startswith("datetime64")
    assert on_disk["dtypes"]["monthly_charges"] == "float64"
    assert list(on_disk["dtypes"]) == list(frame.columns)
    assert on_disk["content_hash"].startswith("sha256:")
    assert len(on_disk["content_hash"]) == len("sha256:") + 64
    assert on_disk["content_hash"] == snapshot_hash(data_path)
    assert on_disk["conversions"] == []


def test_csv_snapshot_records_source_and_conversions(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text(
        "id,amount,region,when,active\n"
        "1,1.5,NA,2024-01-05,yes\n2,,EU,01/06/2024,no\n3,2.25,NA,2024-01-07,yes\n"
    )
    meta = write_snapshot(
        str(source), data_path=tmp_path / "s.parquet", meta_path=tmp_path / "s.json"
    )
    on_disk = json.loads((tmp_path / "s.json").read_text())
    assert on_disk["source"] == {"kind": "file", "path": str(source.resolve())}
    assert (on_disk["rows"], on_disk["columns"]) == (3, 5)
    assert on_disk["dtypes"]["amount"] == "float64"
    assert on_disk["dtypes"]["when"].startswith("datetime64")
    assert on_disk["dtypes"]["region"] == "string"
    assert {c["column"]: c["to"] for c in on_disk["conversions"]} == {
        "id": "int64",
        "amount": "float64",
        "when": "datetime",
        "active": "boolean",
    }
    assert meta["content_hash"] == on_disk["content_hash"] == snapshot_hash(tmp_path / "s.parquet")
    assert pd.read_parquet(tmp_path / "s.parquet")["region"].tolist() == ["NA", "EU", "NA"]


def _pandas(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _small_row_groups(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=37)


def _other_encoding(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", use_dictionary=False, data_page_size=512)


def _in_chunks(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pq.ParquetWriter(path, table.schema, compression="gzip") as writer:
        for start in range(0, len(table), 90):
            writer.write_table(table.slice(start, 90))


def _with_index(frame: pd.DataFrame, path: Path) -> None:
    # A snapshot describes rows, not pandas bookkeeping: a stored index must not count.
    frame.set_axis(range(1000, 1000 + len(frame))).to_parquet(path, index=False)


@pytest.mark.parametrize(
    "writer", [_pandas, _small_row_groups, _other_encoding, _in_chunks, _with_index]
)
def test_same_data_gives_same_hash_whatever_wrote_it(
    tmp_path: Path,
    bundled_meta: dict,
    frame: pd.DataFrame,
    writer: Callable[[pd.DataFrame, Path], None],
) -> None:
    path = tmp_path / "other.parquet"
    writer(frame, path)
    assert snapshot_hash(path) == bundled_meta["content_hash"]


def test_hash_does_not_depend_on_read_batch_size(
    bundled_dir: Path, bundled_meta: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "_HASH_BATCH_ROWS", 64)
    path = bundled_dir / "data" / "snapshot.parquet"
    assert snapshot_hash(path) == bundled_meta["content_hash"]


def test_same_data_from_csv_gives_same_hash_as_bundled(tmp_path: Path, bundled_meta: dict) -> None:
    csv = write_churn(tmp_path / "export.csv", ROWS, seed=SEED)
    meta = write_snapshot(str(csv), data_path=tmp_path / "c.parquet", meta_path=tmp_path / "c.json")
    assert meta["content_hash"] == bundled_meta["content_hash"]


def test_rebuilding_the_snapshot_gives_the_same_hash(tmp_path: Path, bundled_meta: dict) -> None:
    again = write_snapshot(
        "bundled",
        data_path=tmp_path / "again.parquet",
        meta_path=tmp_path / "again.json",
        rows=ROWS,
        seed=SEED,
    )
    assert again["content_hash"] == bundled_meta["content_hash"]


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(monthly_charges=f["monthly_charges"].where(f.index != 7, 0.01)),
        lambda f: f.drop(index=f.index[-1]),
        lambda f: f.rename(columns={"plan": "tier"}),
        lambda f: f.iloc[::-1].reset_index(drop=True),
        lambda f: f.assign(devices=f["devices"].astype("float64")),
        lambda f: make_churn(ROWS, seed=SEED + 1),
    ],
    ids=["one-value", "one-row-fewer", "renamed-column", "row-order", "dtype", "other-seed"],
)
def test_different_data_gives_a_different_hash(
    tmp_path: Path,
    bundled_meta: dict,
    frame: pd.DataFrame,
    change: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    change(frame).to_parquet(tmp_path / "changed.parquet", index=False)
    assert snapshot_hash(tmp_path / "changed.parquet") != bundled_meta["content_hash"]


def test_drift_changes_the_hash_and_is_recorded(tmp_path: Path, bundled_meta: dict) -> None:
    meta = write_snapshot(
        "bundled",
        data_path=tmp_path / "d.parquet",
        meta_path=tmp_path / "d.json",
        rows=ROWS,
        seed=SEED,
        drift=1.0,
    )
    assert meta["source"]["drift"] == 1.0
    assert meta["content_hash"] != bundled_meta["content_hash"]
