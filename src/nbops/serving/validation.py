"""Request bodies → validated rows the model accepts, or every field error at once.

Accepted shapes: ``{"records": [{column: value, ...}, ...]}`` or
``{"columns": {column: [value, ...], ...}}``. :func:`validate` gives a :class:`Batch`:
coerced values per column (what the compiled model scores) and, on demand, the typed
DataFrame scikit-learn scores. :func:`validate_frame` does the same for a chunk of a
file (``nbops score``): every row is kept, and the problems are listed per row so the
bad ones can be set aside. Pure: no HTTP, no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from nbops.data import rawtext

__all__ = [
    "Batch",
    "Feature",
    "FieldError",
    "probe_batch",
    "to_frame",
    "validate",
    "validate_frame",
]


@dataclass(frozen=True)
class Feature:
    """One input column of the model's contract (from features.json and the data schema)."""

    name: str
    role: str  # numeric | boolean | categorical | high_cardinality | datetime
    nullable: bool = True
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    """Validated rows, one array per column: float64 for numbers and booleans (NaN for
    missing), datetime64[ns] in UTC for dates (NaT), a list of str or None for text (or,
    from a file, a ``pandas.Categorical`` of the stripped text: each distinct value is
    checked once)."""

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


_ABSENT = object()  # a column missing from a record (null is a value)
_NUMBER = (int, float)
_FAST = {
    # JSON types a column takes without conversion (bool is not an int here)
    "numeric": {int, float, type(None)},
    "boolean": {bool, type(None)},
}
_NULL_NOT_ALLOWED = (
    "null is not allowed here: the model was trained without missing values in this column"
)
_DATE_EXAMPLES = "such as 2024-05-31, 2024-05-31T12:00:00+02:00 or 31/05/2024"


def _table(
    body: Any, features: list[Feature], ignore: frozenset[str], max_rows: int
) -> tuple[dict[str, list[Any]], int, str, list[FieldError]]:
    """The body as one list of values per feature (``_ABSENT`` where a record lacks the
    column), the row count, the name of its shape, and errors of shape and columns."""
    if not isinstance(body, dict):
        return (
            {},
            0,
            "",
            [
                FieldError(
                    ["body"], 'expected a JSON object: {"records": [{...}]} or {"columns": {...}}'
                )
            ],
        )
    known = {f.name for f in features}
    errors: list[FieldError] = []
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not all(type(r) is dict for r in records):
            return (
                {},
                0,
                "",
                [FieldError(["body", "records"], "expected a list of objects, one per row")],
            )
        n = len(records)
        if not 0 < n <= max_rows:
            return {}, n, "records", []
        if set().union(*records) - known - ignore:
            for i, record in enumerate(records):
                unexpected = sorted(set(record) - known - ignore)
                errors += [
                    FieldError(
                        ["body", "records", i, name],
                        "unexpected column: the model does not know it",
                    )
                    for name in unexpected[:20]
                ]
                if len(errors) > 100:
                    break
        names = [f.name for f in features]
        try:  # every record has every column: one C-level transpose
            if len(names) == 1:  # itemgetter of one name gives values, not tuples
                raise KeyError(names[0])
            table = dict(
                zip(
                    names,
                    map(list, zip(*map(itemgetter(*names), records), strict=True)),
                    strict=True,
                )
            )
        except KeyError:
            table = {name: [r.get(name, _ABSENT) for r in records] for name in names}
        return table, n, "records", errors
    if "columns" in body:
        columns = body["columns"]
        if not isinstance(columns, dict) or not all(type(v) is list for v in columns.values()):
            return (
                {},
                0,
                "",
                [
                    FieldError(
                        ["body", "columns"],
                        "expected an object of equal-length lists, one per column",
                    )
                ],
            )
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            return (
                {},
                0,
                "",
                [
                    FieldError(
                        ["body", "columns"], f"columns have different lengths: {sorted(lengths)}"
                    )
                ],
            )
        n = lengths.pop() if lengths else 0
        if not 0 < n <= max_rows:
            return {}, n, "columns", []
        errors += [
            FieldError(["body", "columns", name], "unexpected column: the model does not know it")
            for name in sorted(set(columns) - known - ignore)[:20]
        ]
        return (
            {f.name: columns.get(f.name) or [_ABSENT] * n for f in features},
            n,
            "columns",
            errors,
        )
    return (
        {},
        0,
        "",
        [
            FieldError(
                ["body"], 'missing "records" (a list of rows) or "columns" (lists per column)'
            )
        ],
    )


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

    Each column is checked and typed at once (numpy and pandas over all its values).
    Values may be JSON-typed (numbers, true/false, ISO 8601 date strings) or text as it
    appears in the training file (``"29.85"``, ``""``, ``"N/A"``, ``"Yes"``,
    ``"31/05/2024"``), typed by :mod:`nbops.data.rawtext` exactly as ingest typed that file.

    Args:
        ignore: columns accepted and dropped (e.g. the training data's ID columns).
    """
    table, n, shape, errors = _table(body, features, ignore, max_rows)
    if errors:
        return None, errors[:100]
    if n == 0:
        return None, [FieldError(["body"], "no rows: send at least one")]
    if n > max_rows:
        return None, [
            FieldError(
                ["body"],
                f"{n} rows is more than the limit of {max_rows} per request; split the request",
            )
        ]
    columns: dict[str, Any] = {}
    kinds = {f.name: set(map(type, table[f.name])) for f in features}
    found = _json_typed(table, features, kinds)
    for feature in features:
        if feature.name in found:
            typed, problems = found[feature.name]
        else:
            typed, problems = _column(
                table[feature.name], feature, reject_unseen, kinds[feature.name]
            )
        columns[feature.name] = typed
        errors += [
            FieldError(
                ["body", "records", i, feature.name]
                if shape == "records"
                else ["body", "columns", feature.name, i],
                msg,
            )
            for i, msg in problems[:100]
        ]
        if len(errors) > 100:
            break
    if errors:
        errors.sort(
            key=lambda e: [str(part) if isinstance(part, str) else f"{part:09d}" for part in e.loc]
        )
        return None, errors[:100]
    return Batch(columns, features, n), []


def validate_frame(
    frame: pd.DataFrame, features: list[Feature], *, reject_unseen: bool = False
) -> tuple[Batch, list[tuple[int, str, str]]]:
    """Type every row of ``frame`` (a chunk of a CSV or Parquet file) with the service's
    rules; return the batch of all rows and the problems as ``(row, column, message)``.

    Columns already typed by the file (float, integer, boolean, dates) are taken as they
    are; text goes through the same conversion as a request's text (:func:`validate`),
    so a row of a messy CSV is typed as ingest typed the training file. A row with a
    problem holds a placeholder value (missing) in the batch: score only the rows
    without problems. Every column of ``features`` must be in ``frame``.
    """
    n = len(frame)
    columns: dict[str, Any] = {}
    problems: list[tuple[int, str, str]] = []
    for feature in features:
        typed, found = _frame_column(frame[feature.name], feature, reject_unseen)
        columns[feature.name] = typed
        problems += [(i, feature.name, msg) for i, msg in found]
    return Batch(columns, features, n), problems


def _frame_column(
    column: pd.Series, feature: Feature, reject_unseen: bool
) -> tuple[Any, list[tuple[int, str]]]:
    """One file column → (typed values, problems); typed columns without a Python loop."""
    dtype, role = column.dtype, feature.role
    typed: Any = None
    if role == "numeric" and pd.api.types.is_numeric_dtype(dtype) and not _is_bool(dtype):
        typed = column.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(typed)
        problems = [(int(i), "expected a finite number") for i in np.flatnonzero(np.isinf(typed))]
    elif role == "boolean" and _is_bool(dtype):
        typed = column.to_numpy(dtype=float, na_value=np.nan)
        missing, problems = np.isnan(typed), []
    elif role == "datetime" and pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = column.dt.tz_convert(None) if getattr(dtype, "tz", None) else column
        typed = stamps.to_numpy(dtype="datetime64[ns]")
        missing, problems = np.isnat(typed), []
    if typed is not None:
        if not feature.nullable and missing.any():
            problems += [(int(i), _NULL_NOT_ALLOWED) for i in np.flatnonzero(missing)]
        return typed, problems
    if role in ("categorical", "high_cardinality") and isinstance(dtype, pd.CategoricalDtype):
        return _categories(column, feature, reject_unseen)
    # Text (or a type the column was not trained with): value by value, as a request's.
    values = column.astype(object).where(column.notna(), None).tolist()
    return _column(values, feature, reject_unseen)


def _categories(
    column: pd.Series, feature: Feature, reject_unseen: bool
) -> tuple[pd.Categorical, list[tuple[int, str]]]:
    """A dictionary-encoded text column: its distinct values typed as a request's text
    values (:func:`_text`), then every row through its code, without a Python loop."""
    codes = column.cat.codes.to_numpy()
    anyway = Feature(feature.name, feature.role, True, feature.categories)
    typed, found = _column(list(column.cat.categories), anyway, reject_unseen)
    distinct = list(dict.fromkeys(v for v in typed if v is not None))
    position = {v: i for i, v in enumerate(distinct)}
    # The last entry is where missing rows (code -1) land.
    recode = np.array([-1 if v is None else position[v] for v in typed] + [-1], dtype=np.int64)
    new_codes = recode[codes]
    problems = [(int(i), msg) for j, msg in found for i in np.flatnonzero(codes == j)]
    if not feature.nullable:
        problems += [(int(i), _NULL_NOT_ALLOWED) for i in np.flatnonzero(new_codes < 0)]
    return pd.Categorical.from_codes(new_codes, categories=distinct), problems


def _is_bool(dtype: Any) -> bool:
    return pd.api.types.is_bool_dtype(dtype)


def _json_typed(
    table: dict[str, list[Any]], features: list[Feature], kinds: dict[str, set[type]]
) -> dict[str, tuple[np.ndarray, list[tuple[int, str]]]]:
    """The number and true/false columns holding only JSON numbers (or true/false) and
    nulls, typed together: one numpy conversion for all of them, not one per column
    (what most requests are; the rest goes through :func:`_column`)."""
    names = [f.name for f in features if f.role in _FAST and kinds[f.name] <= _FAST[f.role]]
    if not names:
        return {}
    try:
        block = np.array([table[name] for name in names], dtype=float)
    except OverflowError:  # an integer beyond float range: column by column
        return {}
    nullable = {f.name: f.nullable for f in features}
    found: dict[str, tuple[np.ndarray, list[tuple[int, str]]]] = {}
    for j, name in enumerate(names):
        typed, problems = block[j], []
        if not nullable[name] and type(None) in kinds[name]:
            problems = [(int(i), _NULL_NOT_ALLOWED) for i in np.flatnonzero(np.isnan(typed))]
        found[name] = typed, problems
    return found


def _column(
    values: list[Any], feature: Feature, reject_unseen: bool, kinds: set[type] | None = None
) -> tuple[Any, list[tuple[int, str]]]:
    """One feature's values → (typed values, [(row, problem), ...]); ``kinds``: the
    types among ``values`` when the caller has them."""
    role = feature.role
    if kinds is None:
        kinds = set(map(type, values))
    problems: list[tuple[int, str]] = []
    if object in kinds:  # the _ABSENT sentinel
        problems = [
            (i, f"missing column ({role}); send null if the value is unknown")
            for i, v in enumerate(values)
            if v is _ABSENT
        ]
        values = [None if v is _ABSENT else v for v in values]
        kinds = set(map(type, values))
    if role in _FAST and kinds <= _FAST[role]:
        try:  # JSON numbers (or true/false) and nulls: one numpy conversion
            typed, missing = np.array(values, dtype=float), None
        except OverflowError:  # an integer beyond float range: value by value below
            typed, missing, problems2 = _convert(values, role)
            problems += problems2
    elif role == "datetime" and kinds == {str}:  # what JSON clients send: no loop
        typed, missing, problems2 = _dates(values, np.arange(len(values)))
        problems += problems2
    elif role in ("numeric", "boolean", "datetime"):
        typed, missing, problems2 = _convert(values, role)
        problems += problems2
    else:
        typed, missing, problems2 = _text(values, feature, reject_unseen, kinds)
        problems += problems2
    if not feature.nullable and (missing is not None or type(None) in kinds):
        if missing is None and isinstance(typed, list):  # text without a null
            missing = np.zeros(0, dtype=bool)
        elif missing is None:
            missing = np.isnan(typed)
        elif isinstance(missing, list):
            missing = np.array(missing, dtype=bool)
        if missing.any():
            problems += [(int(i), _NULL_NOT_ALLOWED) for i in np.flatnonzero(missing)]
    return typed, problems


def _convert(values: list[Any], role: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Numbers, booleans or dates: JSON-typed values as they are, text through rawtext.

    Returns (typed values: float64 or datetime64[ns] with NaN/NaT for missing, the
    missing mask, problems)."""
    n = len(values)
    dates = role == "datetime"
    typed = (
        np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]") if dates else np.full(n, np.nan)
    )
    missing = np.zeros(n, dtype=bool)
    problems: list[tuple[int, str]] = []
    text_rows: list[int] = []
    for i, v in enumerate(values):
        if v is None:
            missing[i] = True
        elif isinstance(v, str):
            text_rows.append(i)
        elif dates:
            problems.append((i, f"expected a date string {_DATE_EXAMPLES}, got {type(v).__name__}"))
        elif role == "numeric" and isinstance(v, _NUMBER) and not isinstance(v, bool):
            try:
                typed[i] = float(v)
            except OverflowError:
                problems.append((i, f"number too large: {str(v)[:40]}"))
                continue
            if not math.isfinite(typed[i]):
                problems.append((i, "expected a finite number"))
        elif role == "boolean" and isinstance(v, int) and v in (0, 1):  # bools included
            typed[i] = v
        elif role == "boolean":
            problems.append((i, f"expected true or false (or yes/no, 1/0), got {str(v)[:40]!r}"))
        else:
            problems.append((i, f"expected a number, got {type(v).__name__} {str(v)[:40]!r}"))
    if not text_rows:
        return typed, missing, problems
    rows = np.asarray(text_rows, dtype=np.intp)
    if dates:
        parsed, text_missing, text_problems = _dates([values[i] for i in text_rows], rows)
        typed[rows] = parsed
        missing[rows] = text_missing
        return typed, missing, problems + text_problems
    text = rawtext.as_text([values[i] for i in text_rows])
    missing[rows] = rawtext.null_tokens(text)
    if role == "numeric":
        numbers, unreadable = rawtext.to_numbers(text)
        typed[rows] = numbers.to_numpy(dtype=float)
        infinite = np.isinf(typed[rows])
        problems += [
            (
                int(rows[j]),
                f"expected a number (or a blank, NA or N/A for a missing value), got {text.iloc[j][:40]!r}",
            )
            for j in np.flatnonzero(unreadable)
        ] + [(int(rows[j]), "expected a finite number") for j in np.flatnonzero(infinite)]
    else:
        flags, unreadable = rawtext.to_booleans(text, digits=True)
        typed[rows] = flags.to_numpy(dtype=float, na_value=np.nan)
        problems += [
            (int(rows[j]), f"expected true or false (or yes/no, 1/0), got {text.iloc[j][:40]!r}")
            for j in np.flatnonzero(unreadable)
        ]
    return typed, missing, problems


def _dates(
    text: list[str], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Date strings (those of ``rows``) → (datetime64[ns], missing mask, problems by row)."""
    parsed, unreadable = rawtext.to_datetimes(text)
    problems = [(int(rows[j]), _date_problem(text[j])) for j in np.flatnonzero(unreadable)]
    return parsed, np.isnat(parsed) & ~unreadable, problems


def _date_problem(value: str) -> str:
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return f"expected a date {_DATE_EXAMPLES}, got {value[:40]!r}"
    low, high = rawtext.DATE_RANGE
    return (
        f"date {value[:40]!r} is outside the range the model reads "
        f"({low:%Y-%m-%d} to {high:%Y-%m-%d}, in UTC)"
    )


def _text(
    values: list[Any], feature: Feature, reject_unseen: bool, kinds: set[type]
) -> tuple[list[Any], list[bool] | None, list[tuple[int, str]]]:
    """Categories: stripped like ingest's text columns, blank → missing, NA stays NA."""
    problems: list[tuple[int, str]] = []
    typed: list[Any]
    if kinds == {str}:
        typed = list(map(str.strip, values))
    else:
        typed = []
        for i, v in enumerate(values):
            if isinstance(v, str):
                typed.append(v.strip())
            else:
                typed.append(None)
                if v is not None:
                    problems.append((i, f"expected a string (a category), got {type(v).__name__}"))
    if "" in typed:
        typed = [v or None for v in typed]
    if reject_unseen and feature.categories and not set(typed) <= {*feature.categories, None}:
        known = set(feature.categories)
        for i, v in enumerate(typed):
            if v is not None and v not in known:
                shown = ", ".join(feature.categories[:10])
                problems.append((i, f"unseen category {v[:40]!r}; known: {shown}"))
    # The missing mask only when a null must be refused: most columns have none.
    missing = [v is None for v in typed] if not feature.nullable and None in typed else None
    return typed, missing, problems


def _typed(columns: dict[str, Any], features: list[Feature]) -> pd.DataFrame:
    data = {}
    for feature in features:
        values = columns[feature.name]
        if feature.role == "numeric":
            data[feature.name] = np.asarray(values, dtype=float)
        elif feature.role == "boolean":
            data[feature.name] = pd.array(np.asarray(values, dtype=float), dtype="boolean")
        elif feature.role == "datetime":
            data[feature.name] = _as_dates(values)
        else:
            data[feature.name] = pd.array(values, dtype="string")
    return pd.DataFrame(data)


def _as_dates(values: Any) -> np.ndarray:
    """datetime64[ns] naive UTC; also from python datetimes (probe rows, tests)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[ns]")
    stamps = pd.to_datetime(list(values), utc=True, errors="coerce")
    return stamps.tz_convert(None).to_numpy(dtype="datetime64[ns]")


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
        values = [None if m else v for v, m in zip(values, missing, strict=True)]
        if f.role in ("numeric", "boolean"):
            columns[f.name] = np.array(values, dtype=float)
        elif f.role == "datetime":
            columns[f.name] = _as_dates(values)
        else:
            columns[f.name] = values
    return Batch(columns, features, n_rows)
