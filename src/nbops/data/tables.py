"""Parquet tables in bounded memory: some columns, or some rows, at a time.

The pipeline's steps pass data as Parquet files. Reading a whole file into pandas costs
about twice its in-memory size at the peak (Arrow's copy plus pandas'), which at 10
million rows is most of a 4 GB budget. These helpers read only what a step needs — a
column for a profile, the sampled rows for a fit — and stream the rest in batches.
Every frame they return has the dtypes :func:`pandas.read_parquet` would give.

Example:
    >>> from nbops.data.tables import read_rows, row_count  # doctest: +SKIP
    >>> keep = np.zeros(row_count("train.parquet"), dtype=bool); keep[:10] = True
    >>> read_rows("train.parquet", keep)  # the first ten rows, every column
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "BATCH_ROWS",
    "FrameWriter",
    "column_names",
    "column_summary",
    "empty_frame",
    "iter_frames",
    "open_parquet",
    "read_columns",
    "read_rows",
    "row_count",
    "write_frames",
]

#: Rows per streamed batch: big enough for vectorised work, small enough to not matter.
BATCH_ROWS = 262_144


def open_parquet(path: str | Path, **options: object) -> pq.ParquetFile:
    """A Parquet file to stream in batches (``iter_batches``), without pre-buffering.

    With pre-buffering (pyarrow's default) the reader keeps every row group's bytes it
    has read until it is closed (apache/arrow#39808): memory then grows with the file,
    about 23 MB per million rows of a 16-column table, instead of staying one batch.
    Reading a local file without it costs nothing measurable."""
    return pq.ParquetFile(path, pre_buffer=False, **options)


def row_count(path: str | Path) -> int:
    """Rows in a Parquet file, from its footer (nothing is read)."""
    return pq.ParquetFile(path).metadata.num_rows


def column_names(path: str | Path) -> list[str]:
    """Column names of a Parquet file, from its footer."""
    return list(pq.ParquetFile(path).schema_arrow.names)


def empty_frame(path: str | Path) -> pd.DataFrame:
    """A frame with the file's columns and dtypes and no rows."""
    return pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()


def read_columns(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Only ``columns`` of the file (every row)."""
    return pd.read_parquet(path, columns=list(columns))


def iter_frames(
    path: str | Path, *, columns: Sequence[str] | None = None, batch_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """The file as consecutive DataFrames of at most ``batch_rows`` rows (default
    :data:`BATCH_ROWS`), in file order."""
    parquet = open_parquet(path)
    wanted = None if columns is None else list(columns)
    for batch in parquet.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=wanted):
        yield batch.to_pandas()


def read_rows(
    path: str | Path, keep: np.ndarray, *, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows where the boolean mask ``keep`` (one value per row) is true, in file order,
    with a fresh 0..n-1 index. Peak memory is the kept rows plus one batch."""
    parquet = open_parquet(path)
    keep = np.asarray(keep, dtype=bool)
    if len(keep) != parquet.metadata.num_rows:
        raise ValueError(
            f"The row mask has {len(keep):,} values but '{path}' has {parquet.metadata.num_rows:,} rows."
        )
    wanted = None if columns is None else list(columns)
    kept, start = [], 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
        part = keep[start : start + batch.num_rows]
        start += batch.num_rows
        if part.any():
            kept.append(batch.filter(pa.array(part)))
    schema = parquet.schema_arrow if wanted is None else _select(parquet.schema_arrow, wanted)
    table = pa.Table.from_batches(kept, schema=schema)
    del kept
    return table.to_pandas(self_destruct=True, split_blocks=True)


def _select(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    return pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)


class FrameWriter:
    """Append DataFrames of one schema to one Parquet file (``with FrameWriter(path) as w:
    w.write(frame)``). The first frame fixes the schema; later frames are cast to it, so
    a batch whose optional column happens to be all missing does not change the file's
    types. The file is written when the first frame arrives, even an empty one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_frames(frames: Iterable[pd.DataFrame], path: str | Path) -> Path:
    """Write DataFrames of one schema to one Parquet file, a frame at a time (see
    :class:`FrameWriter`)."""
    with FrameWriter(path) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def column_summary(path: str | Path) -> pd.DataFrame:
    """One row per column: dtype, share missing, distinct values and an example value,
    computed one column at a time (the same figures pandas gives on the whole frame)."""
    rows = []
    for name in column_names(path):
        column = read_columns(path, [name])[name]
        present = column.dropna()
        rows.append(
            {
                "column": name,
                "dtype": str(column.dtype),
                "missing": float(column.isna().mean()) if len(column) else 0.0,
                "distinct": int(present.nunique()),
                "example": present.iloc[0] if len(present) else None,
            }
        )
        del column, present
    return pd.DataFrame(
        rows, columns=["column", "dtype", "missing", "distinct", "example"]
    ).set_index("column")
