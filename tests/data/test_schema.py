"""The data contract: inferred, kept as YAML, and checked lazily with every failure reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops.data.datasets import make_churn
from nbops.data.schema import (
    MAX_ALLOWED_VALUES,
    infer_schema,
    load_schema,
    schema_to_yaml,
    validate,
)
from nbops.errors import SchemaError, SchemaViolationError


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return make_churn(500, seed=1)


@pytest.fixture(scope="module")
def schema_file(churn: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "churn.yaml"
    path.write_text(schema_to_yaml(infer_schema(churn, name="churn"), source="data/churn.csv"))
    return path


def test_yaml_round_trip_validates_the_same_data(churn: pd.DataFrame, schema_file: Path) -> None:
    schema = load_schema(schema_file)
    assert schema.name == "churn"
    assert list(schema.columns) == list(churn.columns)
    report = validate(churn, schema)
    assert report.ok
    assert report.summary() == "All 500 rows satisfy the schema."
    report.raise_if_failed()  # does nothing when the data is fine


def test_yaml_header_tells_the_reader_how_to_maintain_it(schema_file: Path) -> None:
    text = schema_file.read_text()
    assert text.startswith("# Data contract")
    assert "Drafted by `nbops schema infer data/churn.csv`" in text
    assert "edit by hand and review like code" in text


def test_new_data_of_the_same_kind_mostly_passes(schema_file: Path) -> None:
    # Same generator, other rows: categories and nullability still hold.
    report = validate(make_churn(200, seed=1), load_schema(schema_file))
    assert {f["check"].split("(")[0] for f in report.failures} <= {
        "greater_than_or_equal_to",
        "less_than_or_equal_to",
    }


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"c": pd.array(["a", None, "NA", "b"], dtype="string")}),
        pd.DataFrame({"c": pd.Series(["a", "b", None, "a"], dtype="str")}),
        pd.DataFrame({"c": pd.Series(["a", "b", "c", "a"], dtype=object)}),
        pd.DataFrame({"c": pd.Categorical(["x", "y", "x", None])}),
        pd.DataFrame({"c": pd.array([1, None, 3, 4], dtype="Int64")}),
        pd.DataFrame({"c": np.array([1, 2, 3, 4], dtype=np.uint8)}),
        pd.DataFrame({"c": [1.5, np.nan, -2.0, 0.0]}),
        pd.DataFrame({"c": pd.array([True, None, False, True], dtype="boolean")}),
        pd.DataFrame({"c": [True, False, False, True]}),
        pd.DataFrame({"c": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-02-01"])}),
        pd.DataFrame({"c": [f"v{i}" for i in range(MAX_ALLOWED_VALUES + 10)]}),
        pd.DataFrame({"c": pd.Series([None, None], dtype="string"), "d": [1, 2]}),
        pytest.param(
            pd.DataFrame({"c": pd.date_range("2024-01-01", periods=4, tz="UTC")}),
            id="datetime-tz",
        ),
        pytest.param(
            pd.DataFrame({"c": pd.Series([True, False, None, True], dtype=object)}),
            id="object-bools",
        ),
    ],
    ids=[
        "string",
        "str",
        "object",
        "category",
        "Int64",
        "uint8",
        "float",
        "boolean",
        "bool",
        "datetime",
        "many-strings",
        "empty-string",
        "datetime-tz",
        "object-bools",
    ],
)
def test_round_trip_per_dtype(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(schema_to_yaml(infer_schema(frame)))
    report = validate(frame, load_schema(path))
    assert report.ok, report.summary()


def test_low_cardinality_text_gets_an_isin_check(churn: pd.DataFrame) -> None:
    schema = infer_schema(churn)
    (check,) = schema.columns["plan"].checks
    assert check.name == "isin"
    assert sorted(check.statistics["allowed_values"]) == [
        "basic",
        "enterprise",
        "premium",
        "standard",
    ]
    # An ID has too many values to list.
    assert not any(c.name == "isin" for c in schema.columns["customer_id"].checks)


def test_many_distinct_values_get_no_isin_check() -> None:
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(MAX_ALLOWED_VALUES + 1)]})
    assert infer_schema(frame).columns["c"].checks == []
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(MAX_ALLOWED_VALUES)]})
    assert [c.name for c in infer_schema(frame).columns["c"].checks] == ["isin"]


@pytest.mark.parametrize(
    ("column", "nullable"),
    [
        ("payment_method", True),
        ("satisfaction_score", True),
        ("has_discount", True),
        ("total_charges", True),
        ("plan", False),
        ("monthly_charges", False),
        ("customer_id", False),
        ("churned", False),
    ],
)
def test_nullable_reflects_the_data(churn: pd.DataFrame, column: str, nullable: bool) -> None:
    assert infer_schema(churn).columns[column].nullable is nullable


@pytest.fixture
def broken(churn: pd.DataFrame) -> pd.DataFrame:
    bad = churn.copy()
    bad.loc[:4, "plan"] = "platinum"
    bad.loc[:2, "monthly_charges"] = -5.0
    bad.loc[:9, "region"] = None
    bad.loc[:1, "tenure_months"] = 10_000
    return bad


def test_validate_reports_every_failure_at_once(broken: pd.DataFrame, schema_file: Path) -> None:
    report = validate(broken, load_schema(schema_file))
    assert not report.ok
    found = {(f["column"], f["check"].split("(")[0]): f for f in report.failures}
    assert set(found) == {
        ("plan", "isin"),
        ("monthly_charges", "greater_than_or_equal_to"),
        ("region", "not_nullable"),
        ("tenure_months", "less_than_or_equal_to"),
    }
    assert found[("plan", "isin")]["failing_rows"] == 5
    assert found[("plan", "isin")]["examples"] == ["platinum"]
    assert found[("monthly_charges", "greater_than_or_equal_to")]["failing_rows"] == 3
    assert found[("monthly_charges", "greater_than_or_equal_to")]["examples"] == [-5.0]
    assert found[("region", "not_nullable")]["failing_rows"] == 10
    assert found[("tenure_months", "less_than_or_equal_to")]["examples"] == [10_000]
    assert report.to_dict()["ok"] is False
    assert list(report.to_frame().columns) == ["column", "check", "failing_rows", "examples"]
    assert len(report.to_frame()) == 4


def test_summary_names_every_failure_and_the_fix(broken: pd.DataFrame, schema_file: Path) -> None:
    summary = validate(broken, load_schema(schema_file)).summary()
    assert summary.startswith("The data breaks the schema in 4 place(s) (500 rows checked):")
    assert "column 'plan', check isin(" in summary
    assert "5 row(s), e.g. ['platinum']" in summary
    assert "edit the schema file" in summary


def test_missing_column_is_reported(churn: pd.DataFrame) -> None:
    report = validate(churn.drop(columns=["plan"]), infer_schema(churn))
    assert report.failures == [
        {
            "column": "plan",
            "check": "column_in_dataframe",
            "failing_rows": 1,
            "examples": ["plan"],
        }
    ]


def test_missing_column_is_reported_for_a_named_schema(
    churn: pd.DataFrame, schema_file: Path
) -> None:
    report = validate(churn.drop(columns=["plan"]), load_schema(schema_file))
    assert [(f["column"], f["examples"]) for f in report.failures] == [("plan", ["plan"])]


def test_raise_if_failed_names_the_columns(broken: pd.DataFrame, schema_file: Path) -> None:
    report = validate(broken, load_schema(schema_file))
    with pytest.raises(
        SchemaViolationError, match=r"(?s)breaks the schema in 4 place.*'plan'.*'region'"
    ) as caught:
        report.raise_if_failed()
    for column in ("plan", "monthly_charges", "region", "tenure_months"):
        assert f"'{column}'" in str(caught.value)
    assert caught.value.report is report
    assert isinstance(caught.value, SchemaError)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            None,
            r"Schema file '.*missing\.yaml' does not exist\. Create it from your data with `nbops schema infer DATA > .*missing\.yaml`",
        ),
        (
            "columns: [not: valid: yaml",
            r"could not be read as a pandera schema: .*`nbops schema infer DATA > ",
        ),
        (
            "just a string\n",
            r"could not be read as a pandera schema: Schema representation must be a mapping.*nbops schema infer",
        ),
        (
            "columns:\n  a:\n    dtype: notatype\n",
            r"data type 'notatype' not understood.*nbops schema infer",
        ),
        (b"\xff\xfe\x00 binary", r"could not be read as a pandera schema.*nbops schema infer"),
    ],
    ids=["missing", "broken-yaml", "not-a-mapping", "unknown-dtype", "binary"],
)
def test_unreadable_schema_file_is_a_schema_error(
    tmp_path: Path, content: str | bytes | None, match: str
) -> None:
    path = tmp_path / ("missing.yaml" if content is None else "schema.yaml")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SchemaError, match=match):
        load_schema(path)


def test_empty_schema_file_is_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("")
    with pytest.raises(SchemaError, match=r"nbops schema infer"):
        load_schema(path)


def _file_cases(churn: pd.DataFrame, schema_file: Path):
    import pandera.pandas as pa

    schema = load_schema(schema_file)
    bad = churn.copy()
    bad.loc[3, "tenure_months"] = -4
    bad.loc[5, "plan"] = "gold"
    bad.loc[9, "customer_id"] = bad.loc[8, "customer_id"]
    bad = bad.drop(columns=["devices"]).assign(extra=1)
    bad["auto_renew"] = bad["auto_renew"].astype(object)
    bad.loc[10, "auto_renew"] = None
    unique_id = pa.DataFrameSchema(
        {
            **schema.columns,
            "customer_id": pa.Column(
                **{**schema.columns["customer_id"].properties, "unique": True}
            ),
        },
        coerce=True,
    )
    return {
        "passes": (churn, schema),
        "broken": (bad, unique_id),
        "strict": (bad, pa.DataFrameSchema(schema.columns, coerce=True, strict=True)),
        "ordered": (
            churn[churn.columns[::-1]],
            pa.DataFrameSchema(schema.columns, coerce=True, ordered=True),
        ),
        "dataframe-check": (
            bad,
            pa.DataFrameSchema(
                schema.columns, checks=[pa.Check(lambda df: df["tenure_months"] >= 0)]
            ),
        ),
    }


@pytest.mark.parametrize("case", ["passes", "broken", "strict", "ordered", "dataframe-check"])
def test_validate_file_finds_what_validate_finds_on_the_whole_table(
    churn: pd.DataFrame, schema_file: Path, tmp_path: Path, case: str
) -> None:
    from nbops.data.schema import validate_file

    frame, schema = _file_cases(churn, schema_file)[case]
    frame.to_parquet(tmp_path / "snapshot.parquet", index=False)

    whole = validate(pd.read_parquet(tmp_path / "snapshot.parquet"), schema)
    by_column = validate_file(tmp_path / "snapshot.parquet", schema)

    key = lambda f: (f["column"], f["check"])  # noqa: E731
    assert by_column.rows == whole.rows == len(frame)
    assert sorted(by_column.failures, key=key) == sorted(whole.failures, key=key)
    assert by_column.ok == (case == "passes")
