"""The data contract: a pandera schema kept in the repository as reviewable YAML.

``nbops schema infer DATA > schema/NAME.yaml`` writes a first draft from the data;
a person then edits it (tighten ranges, list allowed categories, forbid nulls) and it is
reviewed like code. The validate step checks every snapshot against it lazily, so one
run reports *every* violation at once, grouped by column and check with examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from nbops.errors import SchemaError, SchemaViolationError

__all__ = [
    "ValidationReport",
    "infer_schema",
    "load_schema",
    "schema_to_yaml",
    "validate",
    "validate_file",
]

#: Text columns with at most this many distinct values get an ``isin`` check.
MAX_ALLOWED_VALUES = 30
_EXAMPLES = 5


def infer_schema(frame: pd.DataFrame, *, name: str | None = None) -> pa.DataFrameSchema:
    """Draft a schema from ``frame``: dtypes, nullability, numeric ranges, allowed categories.

    The draft is a starting point: ranges are the observed min and max, which new data
    will eventually exceed. Widen them to what the business allows.
    """
    draft = pa.infer_schema(frame)
    columns = {}
    for col_name, column in draft.columns.items():
        series = frame[col_name]
        checks = list(column.checks)
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            checks = []  # YAML cannot hold tz-aware bounds; add them by hand as strings
        is_text = pd.api.types.is_string_dtype(series.dtype) or pd.api.types.is_object_dtype(
            series.dtype
        )
        if is_text:
            values = series.dropna().unique()
            if 0 < len(values) <= MAX_ALLOWED_VALUES and all(isinstance(v, str) for v in values):
                checks = [pa.Check.isin(sorted(values))]
        columns[col_name] = _with(column, checks=checks, nullable=bool(series.isna().any()))
    return pa.DataFrameSchema(columns, coerce=True, strict=False, name=name)


def _with(column: pa.Column, **changes: Any) -> pa.Column:
    props = column.properties
    props.update(changes)
    return pa.Column(**props)


def schema_to_yaml(schema: pa.DataFrameSchema, *, source: str = "") -> str:
    """Serialise ``schema`` to YAML with a header telling the reader how to maintain it."""
    header = (
        "# Data contract checked by the pipeline's validate step (pandera schema, YAML).\n"
        f"# Drafted by `nbops schema infer{' ' + source if source else ''}`; edit by hand and review like code:\n"
        "# widen ranges to what the business allows, list allowed values, set nullable: false\n"
        "# where a value is required.\n"
    )
    return header + schema.to_yaml()


def load_schema(path: str | Path) -> pa.DataFrameSchema:
    """Read a schema YAML file.

    Raises:
        SchemaError: the file is missing or is not a pandera schema.
    """
    path = Path(path)
    if not path.exists():
        raise SchemaError(
            f"Schema file '{path}' does not exist. Create it from your data with "
            f"`nbops schema infer DATA > {path}`, review it, and commit it; or set schema: auto in env.yaml "
            "to infer one on every build (not recommended beyond a first try)."
        )
    if not path.read_bytes().strip():
        raise SchemaError(
            f"Schema file '{path}' is empty (a failed `nbops schema infer ... > {path}` leaves an empty file). "
            f"Draft it again with `nbops schema infer DATA > {path}` and review it."
        )
    try:
        return pa.DataFrameSchema.from_yaml(path)
    except Exception as exc:  # yaml and pandera raise many types for a bad file
        raise SchemaError(
            f"Schema file '{path}' could not be read as a pandera schema: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}. "
            f"Fix the YAML, or draft a new one with `nbops schema infer DATA > {path}`."
        ) from exc


@dataclass
class ValidationReport:
    """Every violation found, one row per (column, check)."""

    rows: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.failures, columns=["column", "check", "failing_rows", "examples"])

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "ok": self.ok, "failures": self.failures}

    def summary(self) -> str:
        if self.ok:
            return f"All {self.rows} rows satisfy the schema."
        lines = [
            f"The data breaks the schema in {len(self.failures)} place(s) ({self.rows} rows checked):"
        ]
        for f in self.failures:
            lines.append(
                f"  - column '{f['column']}', check {f['check']}: {f['failing_rows']} row(s), e.g. {f['examples']}"
            )
        lines.append(
            "Fix the data at its source, or, if the new values are legitimate, edit the schema file "
            "(widen the range, add the category, allow nulls) and commit the change for review."
        )
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise SchemaViolationError(self.summary(), report=self)


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> ValidationReport:
    """Check ``frame`` against ``schema`` lazily and collect every failure."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return ValidationReport(rows=len(frame), failures=_group(exc.failure_cases))
    return ValidationReport(rows=len(frame))


def validate_file(path: str | Path, schema: pa.DataFrameSchema) -> ValidationReport:
    """Check the Parquet file at ``path`` against ``schema``, one column at a time.

    The same failures as :func:`validate` on the whole table, in the memory of its
    largest column. Table-level rules (missing, extra or misordered columns) are checked
    on the file's header. A schema with rules that need whole rows (dataframe checks,
    unique column combinations, an index, regex columns, parsers) is checked whole.
    """
    from nbops.data.tables import empty_frame, read_columns, row_count

    if not _column_wise(schema):
        return validate(pd.read_parquet(path), schema)
    failures = [
        f for f in validate(empty_frame(path), schema).failures if f["check"] in _TABLE_CHECKS
    ]
    present = set(empty_frame(path).columns)
    for name, column in schema.columns.items():
        if name not in present:
            continue  # reported above (column_in_dataframe) when required
        one = pa.DataFrameSchema({name: column}, coerce=schema.coerce, name=schema.name)
        failures += validate(read_columns(path, [name]), one).failures
    return ValidationReport(rows=row_count(path), failures=failures)


#: Failures about the table's columns rather than their values.
_TABLE_CHECKS = {"column_in_dataframe", "column_in_schema", "column_ordered"}


def _column_wise(schema: pa.DataFrameSchema) -> bool:
    whole_rows = (
        schema.checks
        or schema.parsers
        or schema.unique
        or schema.index is not None
        or schema.dtype is not None
        or schema.add_missing_columns
        or schema.drop_invalid_rows
        or any(c.regex or c.parsers for c in schema.columns.values())
    )
    return not whole_rows


def _group(cases: pd.DataFrame) -> list[dict[str, Any]]:
    cases = cases.copy()
    # A missing column is reported against the schema (its name, or None) with the
    # column's name as the failure case: report it under the column itself.
    missing = cases["check"].astype(str) == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    cases["column"] = cases["column"].fillna("(table)").astype(str)
    cases["check"] = cases["check"].astype(str)
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        examples = group["failure_case"].drop_duplicates().head(_EXAMPLES).tolist()
        out.append(
            {
                "column": column,
                "check": check,
                "failing_rows": int(group["index"].nunique())
                if group["index"].notna().any()
                else len(group),
                "examples": [
                    None if pd.isna(e) else (e if isinstance(e, (int, float, bool)) else str(e))
                    for e in examples
                ],
            }
        )
    return out
