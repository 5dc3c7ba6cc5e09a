"""Data snapshots: the exact table a build trained on, frozen as Parquet, plus its hash.

The content hash is computed from the snapshot's rows (pandas' per-row hashes,
streamed batch by batch) and its column names and dtypes, not from the file's bytes, so
the same data gives the same hash whatever wrote the file and however it was chunked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from nbops.data import datasets
from nbops.data.sources import BUNDLED, read_table
from nbops.data.tables import open_parquet
from nbops.state import atomic_write

__all__ = ["snapshot_hash", "write_snapshot"]

_HASH_BATCH_ROWS = 262_144


def snapshot_hash(path: str | Path) -> str:
    """Return ``sha256:<hex>`` of a Parquet snapshot's content, in bounded memory."""
    parquet = open_parquet(path)
    digest = hashlib.sha256()
    digest.update(json.dumps([[f.name, str(f.type)] for f in parquet.schema_arrow]).encode())
    for batch in parquet.iter_batches(batch_size=_HASH_BATCH_ROWS):
        rows = pd.util.hash_pandas_object(batch.to_pandas(), index=False)
        digest.update(rows.to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def write_snapshot(
    source: str,
    *,
    data_path: str | Path,
    meta_path: str | Path,
    rows: int = 5_000,
    seed: int = 42,
    drift: float = 0.0,
    target: str | None = None,
) -> dict[str, Any]:
    """Freeze ``source`` as a Parquet snapshot and describe it in a JSON file.

    Args:
        source: ``"bundled"`` for the generator, or the path of a CSV/Parquet file.
        data_path: where the Parquet snapshot goes.
        meta_path: where the JSON description goes (rows, columns, dtypes, hash, ...).
        rows, seed, drift: generator settings, used only for the bundled source.
        target: the label column of a file, whose yes/no text is kept as written.

    Returns:
        The description written to ``meta_path``.
    """
    data_path, meta_path = Path(data_path), Path(meta_path)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    conversions: list[dict[str, Any]] = []
    if str(source) == BUNDLED:
        datasets.write_churn(data_path, rows, seed=seed, drift=drift)
        origin: dict[str, Any] = {"kind": BUNDLED, "rows": rows, "seed": seed, "drift": drift}
    else:
        loaded = read_table(source, target=target)
        loaded.frame.to_parquet(data_path, index=False)
        conversions = [asdict(c) for c in loaded.conversions]
        origin = {"kind": "file", "path": str(Path(source).resolve())}

    parquet = pq.ParquetFile(data_path)
    schema = parquet.schema_arrow.empty_table().to_pandas()
    meta = {
        "source": origin,
        "rows": parquet.metadata.num_rows,
        "columns": len(schema.columns),
        "dtypes": {str(name): str(dtype) for name, dtype in schema.dtypes.items()},
        "content_hash": snapshot_hash(data_path),
        "conversions": conversions,
        "path": str(data_path),
    }
    atomic_write(meta_path, json.dumps(meta, indent=2, default=str))
    return meta
