"""Parquet in bounded memory: only the columns or rows asked for, with pandas' dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops.data.tables import (
    column_names,
    column_summary,
    empty_frame,
    iter_frames,
    read_columns,
    read_rows,
    row_count,
    write_frames,
)

N = 1_000


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every kind of column a snapshot can hold, streamed in batches of 64 rows."""
    monkeypatch.setattr("nbops.data.tables.BATCH_ROWS", 64)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "text": rng.choice(["a", "b", None], N),
            "string": pd.array(rng.choice(["x", "y", None], N), dtype="string"),
            "flag": rng.random(N) < 0.5,
            "maybe": pd.array(rng.choice([True, False, None], N), dtype="boolean"),
            "count": pd.array(rng.choice([1, 2, None], N), dtype="Int64"),
            "when": pd.to_datetime(rng.integers(1.6e9, 1.7e9, N), unit="s", utc=True),
            "kind": pd.Categorical(rng.choice(["u", "v"], N)),
            "value": np.where(rng.random(N) < 0.1, np.nan, rng.normal(size=N)),
        }
    )
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_read_rows_returns_what_read_parquet_would_for_those_rows(table: Path) -> None:
    keep = np.random.default_rng(1).random(N) < 0.3
    whole = pd.read_parquet(table)

    rows = read_rows(table, keep)

    pd.testing.assert_frame_equal(rows, whole[keep].reset_index(drop=True))
    pd.testing.assert_frame_equal(
        read_rows(table, keep, columns=["value", "text"]),
        whole.loc[keep, ["value", "text"]].reset_index(drop=True),
    )
    assert len(read_rows(table, np.zeros(N, dtype=bool))) == 0
    assert (
        read_rows(table, np.zeros(N, dtype=bool))
        .dtypes.astype(str)
        .equals(whole.dtypes.astype(str))
    )


def test_read_rows_refuses_a_mask_of_the_wrong_length(table: Path) -> None:
    with pytest.raises(
        ValueError, match=r"The row mask has 10 values but '.*table.parquet' has 1,000 rows"
    ):
        read_rows(table, np.ones(10, dtype=bool))


def test_columns_batches_and_footer_match_the_whole_file(table: Path) -> None:
    whole = pd.read_parquet(table)

    assert row_count(table) == N
    assert column_names(table) == list(whole.columns)
    assert empty_frame(table).dtypes.astype(str).equals(whole.dtypes.astype(str))
    pd.testing.assert_frame_equal(read_columns(table, ["when"]), whole[["when"]])
    batches = list(iter_frames(table))
    assert [len(b) for b in batches] == [64] * 15 + [40]
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole)


def test_column_summary_gives_the_whole_frame_figures(table: Path) -> None:
    whole = pd.read_parquet(table)

    summary = column_summary(table)

    assert summary.index.tolist() == list(whole.columns)
    assert summary["dtype"].tolist() == whole.dtypes.astype(str).tolist()
    assert summary["missing"].tolist() == pytest.approx(whole.isna().mean().tolist())
    assert summary["distinct"].tolist() == whole.nunique().tolist()
    assert summary.loc["text", "example"] == whole["text"].dropna().iloc[0]


def test_write_frames_keeps_the_first_frame_types_when_a_later_one_is_all_missing(
    tmp_path: Path,
) -> None:
    first = pd.DataFrame({"note": ["a", "b"], "score": [1.0, 2.0]})
    empty_notes = pd.DataFrame({"note": [None, None], "score": [3.0, np.nan]})

    write_frames([first, empty_notes], tmp_path / "out.parquet")

    back = pd.read_parquet(tmp_path / "out.parquet")
    assert back["note"].tolist()[:2] == ["a", "b"]
    assert back["note"].isna().tolist() == [False, False, True, True]
    assert back.dtypes.equals(first.dtypes)


def test_streaming_a_file_holds_one_batch_not_the_whole_file(tmp_path: Path) -> None:
    """The reader keeps no bytes of the row groups it has passed (Arrow's pre-buffering
    kept them: memory grew with the file, apache/arrow#39808)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "long.parquet"
    rng = np.random.default_rng(0)
    rows = 600_000  # 38 MB of numbers that do not compress, in row groups of 65,536 rows
    table = pa.table({f"x{i}": rng.random(rows) for i in range(8)})
    pq.write_table(table, path, row_group_size=65_536)
    del table
    held = []
    for frame in iter_frames(path, batch_rows=65_536):
        held.append(pa.total_allocated_bytes())
        del frame
    growth = max(held) - held[0]
    assert growth < 4 * 2**20, f"Arrow memory grew by {growth / 2**20:.1f} MB over the file"
