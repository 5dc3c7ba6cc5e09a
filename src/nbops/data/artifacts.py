"""Reading and writing the pipeline's small products: JSON files and fitted models.

Models are written with joblib next to their SHA-256; :func:`load_model` refuses a
file whose content no longer matches the recorded hash.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from nbops.errors import NbopsError
from nbops.hashing import file_sha256
from nbops.state import atomic_write

__all__ = ["file_sha256", "load_model", "read_json", "save_model", "write_json"]


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON; NaN becomes null so any JSON reader accepts it."""
    path = Path(path)
    # Atomic: the build hooks read these (metrics, decision) while a crash may strike.
    atomic_write(path, json.dumps(_clean(data), indent=2, default=str) + "\n")
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_model(model: Any, path: str | Path) -> dict[str, Any]:
    """Persist a fitted model; return its path, size and content hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def load_model(path: str | Path, *, sha256: str | None = None) -> Any:
    """Load a model saved by :func:`save_model`, checking its hash when one is given.

    joblib files are pickles: load only files this pipeline wrote, and pass the
    recorded hash so a swapped file is refused.
    """
    if sha256 is not None and file_sha256(path) != sha256:
        raise NbopsError(
            f"Model file '{path}' does not match its recorded hash {sha256}: it was changed after "
            "training. Rebuild the train task (ploomber build --force) instead of editing model files."
        )
    return joblib.load(path)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _clean(value.item())
        except (ValueError, AttributeError):
            return value
    return value
