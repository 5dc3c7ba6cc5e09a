"""Column roles: what each column of a table is *for*, decided from its type and values.

A role says how a column enters the model: ``numeric``, ``boolean``, ``categorical``,
``high_cardinality`` (many categories: target-encoded), ``datetime`` (split into parts),
or ``drop`` (IDs, row numbers, constants, empty or nearly-unique text). Each role comes with the
reason, so the features report shows a reviewer why a column was used or left out,
and env.yaml can override any decision.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from nbops.errors import ConfigError

__all__ = ["ROLES", "ColumnRole", "infer_roles", "roles_from_json", "roles_to_json"]

ROLES = ("numeric", "boolean", "categorical", "high_cardinality", "datetime", "drop")
#: Above this many distinct values a text column is target-encoded instead of one-hot.
MAX_ONE_HOT = 30
_ID_NAME = re.compile(
    r"(^|[_\s-])(id|uuid|guid|key)$|^id[_\s-]|^(index|row|record)[_\s-]?(no|num|number)?$",
    re.IGNORECASE,
)
_CAMEL_ID = re.compile(
    r"[a-z](ID|Id)$"
)  # customerID, userId: here case matters ("prepaid" is no ID)


@dataclass(frozen=True)
class ColumnRole:
    column: str
    role: str
    reason: str


def infer_roles(
    frame: pd.DataFrame,
    *,
    target: str,
    overrides: dict[str, list[str]] | None = None,
) -> list[ColumnRole]:
    """Decide a role for every column except the target.

    Args:
        frame: training data (a sample is enough).
        target: the target column, which gets no role.
        overrides: ``{role: [column, ...]}`` from env.yaml's ``features`` section; wins
            over inference. Unknown roles or columns raise :class:`ConfigError`.

    Examples:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
        >>> [(r.column, r.role) for r in infer_roles(df, target="y")]
        [('id', 'drop'), ('x', 'numeric')]
    """
    forced = _check_overrides(frame, target, overrides or {})
    roles = []
    for name in frame.columns:
        if name == target:
            continue
        if name in forced:
            roles.append(ColumnRole(str(name), forced[name], "set in env.yaml (features)"))
        else:
            roles.append(_infer_one(str(name), frame[name]))
    return roles


def _check_overrides(
    frame: pd.DataFrame, target: str, overrides: dict[str, list[str]]
) -> dict[str, str]:
    forced: dict[str, str] = {}
    for role, columns in overrides.items():
        if role not in ROLES:
            raise ConfigError(
                f"Unknown feature role '{role}' in env.yaml's features section. Use one of: {', '.join(ROLES)}."
            )
        for column in columns or []:
            if column not in frame.columns:
                raise ConfigError(
                    f"env.yaml's features.{role} names column '{column}', which is not in the data. "
                    f"Remove it or fix the spelling; columns are: {', '.join(map(str, frame.columns[:30]))}."
                )
            if column == target:
                raise ConfigError(
                    f"env.yaml's features.{role} names the target column '{column}'; the target cannot be a feature."
                )
            forced[column] = role
    return forced


def _infer_one(name: str, column: pd.Series) -> ColumnRole:
    n = len(column)
    present = column.dropna()
    if present.empty:
        return ColumnRole(name, "drop", "empty: every value is missing")
    distinct = present.nunique()
    if distinct == 1:
        value = present.iloc[0]
        return ColumnRole(
            name,
            "drop",
            f"constant: always {(value.item() if hasattr(value, 'item') else value)!r}",
        )
    unique_share = distinct / max(len(present), 1)
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnRole(name, "boolean", "true/false values")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ColumnRole(name, "datetime", "dates: used as year, month, weekday and elapsed days")
    is_text = (
        pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )
    looks_like_id = bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))
    if looks_like_id and unique_share > 0.95 and (is_text or pd.api.types.is_integer_dtype(dtype)):
        return ColumnRole(
            name,
            "drop",
            f"identifier: name looks like an ID and {unique_share:.0%} of values are unique",
        )
    if pd.api.types.is_integer_dtype(dtype) and _is_row_number(column):
        return ColumnRole(
            name,
            "drop",
            "identifier: every value is a different whole number, "
            + (
                "increasing with the rows"
                if column.is_monotonic_increasing or column.is_monotonic_decreasing
                else f"covering {present.min()}..{present.max()} densely"
            )
            + ": a row number or sequential ID, which predicts nothing on new rows"
            + f" (keep it with features: {{numeric: [{name}]}})",
        )
    if pd.api.types.is_numeric_dtype(dtype):
        return ColumnRole(name, "numeric", f"numbers ({distinct} distinct values)")
    if is_text:
        if n > 20 and unique_share > 0.9:
            return ColumnRole(
                name,
                "drop",
                f"nearly unique text ({unique_share:.0%} distinct): an identifier or free text",
            )
        if distinct <= MAX_ONE_HOT:
            return ColumnRole(name, "categorical", f"{distinct} categories: one-hot encoded")
        return ColumnRole(name, "high_cardinality", f"{distinct} categories: target-encoded")
    return ColumnRole(name, "drop", f"unsupported type {dtype}")


def _is_row_number(column: pd.Series, *, min_rows: int = 20) -> bool:
    """Whole numbers, all different, in row order or packed into a range barely wider
    than the rows (a split or a sample of 0..N keeps a share of it): a row number or a
    sequential ID. A real measurement repeats values or spreads them out."""
    if len(column) < min_rows or column.isna().any() or not column.is_unique:
        return False
    if column.is_monotonic_increasing or column.is_monotonic_decreasing:
        return True
    span = float(column.max()) - float(column.min()) + 1
    return span <= 2 * len(column)


def roles_to_json(roles: list[ColumnRole]) -> list[dict[str, Any]]:
    return [asdict(r) for r in roles]


def roles_from_json(items: list[dict[str, Any]]) -> list[ColumnRole]:
    return [ColumnRole(**item) for item in items]
