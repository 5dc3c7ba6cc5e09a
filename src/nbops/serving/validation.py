"""Request bodies → validated rows the model accepts, or every field error at once.

Accepted shapes: ``{"records": [{column: value, ...}, ...]}`` or
``{"columns": {column: [value, ...], ...}}``. :func:`validate` gives a :class:`Batch`:
coerced values per column (what the compiled model scores) and, on demand, the typed
DataFrame scikit-learn scores. Pure: no HTTP, no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Batch", "Feature", "FieldError", "probe_batch", "to_frame", "validate"]


@dataclass(frozen=True)
class Feature:
    """One input column of the model's contract (from features.json and the data schema)."""

    name: str
    role: str  # numeric | boolean | categorical | high_cardinality | datetime
    nullable: bool = True
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    """Validated rows: coerced values per column (float, bool, datetime, str or None)."""

    columns: dict[str, list[Any]]
    features: list[Feature]
    n_rows: int

    def frame(self) -> pd.DataFrame:
        """The typed DataFrame the scikit-learn pipeline takes."""
        return _typed(self.columns, self.features)


@dataclass(frozen=True)
class FieldError:
    loc: list[Any]
    msg: str

    def to_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "msg": self.msg}


def _records(body: Any) -> tuple[list[dict[str, Any]] | None, list[FieldError]]:
    if not isinstance(body, dict):
        return None, [
            FieldError(
                ["body"], 'expected a JSON object: {"records": [{...}]} or {"columns": {...}}'
            )
        ]
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return None, [
                FieldError(["body", "records"], "expected a list of objects, one per row")
            ]
        return records, []
    if "columns" in body:
        columns = body["columns"]
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            return None, [
                FieldError(
                    ["body", "columns"], "expected an object of equal-length lists, one per column"
                )
            ]
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            return None, [
                FieldError(
                    ["body", "columns"], f"columns have different lengths: {sorted(lengths)}"
                )
            ]
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in columns.items()} for i in range(n)], []
    return None, [
        FieldError(["body"], 'missing "records" (a list of rows) or "columns" (lists per column)')
    ]


def to_frame(
    body: Any,
    features: list[Feature],
    *,
    max_rows: int,
    reject_unseen: bool = False,
    ignore: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame | None, list[FieldError]]:
    """:func:`validate`, returning the typed DataFrame instead of the batch."""
    batch, errors = validate(
        body, features, max_rows=max_rows, reject_unseen=reject_unseen, ignore=ignore
    )
    return (None if batch is None else batch.frame()), errors


def validate(
    body: Any,
    features: list[Feature],
    *,
    max_rows: int,
    reject_unseen: bool = False,
    ignore: frozenset[str] = frozenset(),
) -> tuple[Batch | None, list[FieldError]]:
    """Validate ``body`` against the model's features; return (batch, []) or (None, errors).

    Args:
        ignore: columns accepted and dropped (e.g. the training data's ID columns).
    """
    records, errors = _records(body)
    if errors:
        return None, errors
    assert records is not None
    if not records:
        return None, [FieldError(["body"], "no rows: send at least one")]
    if len(records) > max_rows:
        return None, [
            FieldError(
                ["body"],
                f"{len(records)} rows is more than the limit of {max_rows} per request; split the request",
            )
        ]
    known = {f.name for f in features}
    columns: dict[str, list[Any]] = {f.name: [] for f in features}
    for i, record in enumerate(records):
        unexpected = sorted(set(record) - known - ignore)
        if unexpected:
            errors += [
                FieldError(
                    ["body", "records", i, name], "unexpected column: the model does not know it"
                )
                for name in unexpected[:20]
            ]
        for feature in features:
            if feature.name not in record:
                errors.append(
                    FieldError(
                        ["body", "records", i, feature.name],
                        f"missing column ({feature.role}); send null if the value is unknown",
                    )
                )
                continue
            value, problem = _coerce(record[feature.name], feature, reject_unseen)
            if problem:
                errors.append(FieldError(["body", "records", i, feature.name], problem))
            columns[feature.name].append(value)
        if len(errors) > 100:
            break
    if errors:
        return None, errors[:100]
    return Batch(columns, features, len(records)), []


def _coerce(value: Any, feature: Feature, reject_unseen: bool) -> tuple[Any, str | None]:
    if value is None:
        return (
            None,
            None
            if feature.nullable
            else "null is not allowed here: the model was trained without missing values in this column",
        )
    role = feature.role
    if role == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"expected a number, got {type(value).__name__} {str(value)[:40]!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return None, "expected a finite number"
        return float(value), None
    if role == "boolean":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {str(value)[:40]!r}"
        return value, None
    if role == "datetime":
        if not isinstance(value, str):
            return None, f"expected an ISO 8601 date string, got {type(value).__name__}"
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")), None
        except ValueError:
            return (
                None,
                f"expected an ISO 8601 date such as 2024-05-31 or 2024-05-31T12:00:00, got {value[:40]!r}",
            )
    if not isinstance(value, str):
        return None, f"expected a string (a category), got {type(value).__name__}"
    if reject_unseen and feature.categories and value not in feature.categories:
        shown = ", ".join(feature.categories[:10])
        return None, f"unseen category {value[:40]!r}; known: {shown}"
    return value, None


def _typed(columns: dict[str, list[Any]], features: list[Feature]) -> pd.DataFrame:
    data = {}
    for feature in features:
        values = columns[feature.name]
        if feature.role == "numeric":
            data[feature.name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        elif feature.role == "boolean":
            data[feature.name] = pd.array(values, dtype="boolean")
        elif feature.role == "datetime":
            stamps = pd.to_datetime(values, utc=True, errors="coerce")
            data[feature.name] = stamps.tz_convert(None)
        else:
            data[feature.name] = pd.array(values, dtype="string")
    return pd.DataFrame(data)


def probe_batch(features: list[Feature], *, n_rows: int = 64, seed: int = 0) -> Batch:
    """Varied rows of the contract's types, missing values and unseen categories included:
    what a compiled model must score exactly like the scikit-learn pipeline."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for f in features:
        missing = rng.random(n_rows) < 0.15
        if f.role == "numeric":
            values: list[Any] = (
                rng.standard_normal(n_rows) * 10 ** rng.uniform(-1, 4, n_rows)
            ).tolist()
        elif f.role == "boolean":
            values = (rng.random(n_rows) < 0.5).tolist()
        elif f.role == "datetime":
            start, east = datetime(2015, 1, 1), timezone(timedelta(hours=5, minutes=30))
            values = [start + timedelta(days=float(d)) for d in rng.uniform(0, 6_000, n_rows)]
            values[::3] = [v.replace(tzinfo=east) for v in values[::3]]
        else:
            known = list(f.categories) or ["a", "b"]
            values = [str(v) for v in rng.choice(known + ["unseen-category"], n_rows)]
        columns[f.name] = [None if m else v for v, m in zip(values, missing, strict=True)]
    return Batch(columns, features, n_rows)
