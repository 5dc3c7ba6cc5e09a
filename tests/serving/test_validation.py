"""Request validation against the training contract: every field error at once."""

from __future__ import annotations

import pandas as pd
import pytest

from nbops.data.sources import clean_frame
from nbops.serving.model import Feature
from nbops.serving.validation import to_frame

FEATURES = [
    Feature("tenure", "numeric", nullable=False),
    Feature("charges", "numeric"),
    Feature("auto_renew", "boolean"),
    Feature("plan", "categorical", categories=("basic", "premium")),
    Feature("signup", "datetime"),
]
ROW = {"tenure": 3, "charges": None, "auto_renew": True, "plan": "basic", "signup": "2024-05-31"}


def errors(body, **kwargs):
    frame, problems = to_frame(body, FEATURES, max_rows=kwargs.pop("max_rows", 10), **kwargs)
    assert frame is None
    return {tuple(e.loc[3:] if len(e.loc) > 3 else e.loc): e.msg for e in problems}


def test_records_and_columns_give_the_same_typed_frame():
    a, _ = to_frame({"records": [ROW, ROW]}, FEATURES, max_rows=10)
    b, _ = to_frame({"columns": {k: [v, v] for k, v in ROW.items()}}, FEATURES, max_rows=10)
    pd.testing.assert_frame_equal(a, b)
    assert a["tenure"].dtype == float and a["charges"].isna().all()
    assert str(a["auto_renew"].dtype) == "boolean" and str(a["plan"].dtype).startswith("string")
    assert a["signup"].iloc[0] == pd.Timestamp("2024-05-31")


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({**ROW, "tenure": "3 months"}, "tenure", "expected a number (or a blank, NA or N/A"),
        ({**ROW, "tenure": None}, "tenure", "null is not allowed"),
        ({**ROW, "tenure": "N/A"}, "tenure", "null is not allowed"),
        ({**ROW, "tenure": True}, "tenure", "expected a number, got bool"),
        ({**ROW, "tenure": 10**400}, "tenure", "number too large"),
        ({**ROW, "charges": "inf"}, "charges", "expected a finite number"),
        ({**ROW, "auto_renew": "maybe"}, "auto_renew", "expected true or false"),
        ({**ROW, "auto_renew": 2}, "auto_renew", "expected true or false"),
        ({**ROW, "plan": 7}, "plan", "expected a string"),
        ({**ROW, "signup": "not a date"}, "signup", "expected a date such as 2024-05-31"),
        ({**ROW, "signup": 20240531}, "signup", "expected a date string"),
        ({**ROW, "signup": "0001-01-01T00:00:00+01:00"}, "signup", "outside the range"),
        ({**ROW, "signup": "9999-12-31T23:00:00-05:00"}, "signup", "outside the range"),
        ({k: v for k, v in ROW.items() if k != "charges"}, "charges", "missing column (numeric)"),
        ({**ROW, "colour": "red"}, "colour", "unexpected column"),
    ],
)
def test_each_bad_field_is_named(row, field, message):
    found = errors({"records": [row]})
    assert any(loc[-1] == field and message in msg for loc, msg in found.items()), found


@pytest.mark.parametrize(
    ("field", "raw", "typed"),
    [
        ("tenure", " 3 ", 3.0),
        ("tenure", "1e3", 1000.0),
        ("charges", "29.85", 29.85),
        ("charges", "", None),
        ("charges", "N/A", None),
        ("charges", "NA", None),
        ("charges", "?", None),
        ("auto_renew", "Yes", True),
        ("auto_renew", "no", False),
        ("auto_renew", "TRUE", True),
        ("auto_renew", "f", False),
        ("auto_renew", "1", True),
        ("auto_renew", "0", False),
        ("auto_renew", 1, True),
        ("auto_renew", "", None),
        ("plan", " basic ", "basic"),
        ("plan", "NA", "NA"),  # a category in a text column, as ingest keeps it
        ("plan", "", None),
        ("signup", "31/05/2024", pd.Timestamp("2024-05-31")),
        ("signup", "May 31, 2024", pd.Timestamp("2024-05-31")),
        ("signup", "2024-05-31T01:30:00+02:00", pd.Timestamp("2024-05-30T23:30")),  # UTC
        ("signup", "2024-05-31T12:00:00Z", pd.Timestamp("2024-05-31T12:00")),
        ("signup", "n/a", None),
    ],
)
def test_text_as_it_appears_in_the_training_file_is_typed_like_ingest(field, raw, typed):
    frame, problems = to_frame({"records": [{**ROW, field: raw}]}, FEATURES, max_rows=10)
    assert not problems, problems
    got = frame[field].iloc[0]
    assert (pd.isna(got) and typed is None) or got == typed, got
    # ingest's own conversion of a one-column file holding the same text (a file of
    # 1s and 0s is numbers to ingest; only the service knows the column is boolean; and
    # ingest does not take text with time zones for a date column)
    if field != "plan" and raw not in (1, "1", "0") and not str(raw).endswith(("Z", ":00")):
        column = pd.Series(
            [
                raw,
                *(
                    {
                        "tenure": ["7"],
                        "charges": ["7"],
                        "auto_renew": ["yes", "no"],
                        "signup": ["2024-01-01"],
                    }[field]
                ),
            ]
        )
        ingested = clean_frame(pd.DataFrame({field: column}))[0][field].iloc[0]
        assert (pd.isna(ingested) and pd.isna(got)) or ingested == got


def test_all_errors_are_reported_at_once():
    found = errors({"records": [{**ROW, "tenure": "x", "plan": 1}, {**ROW, "signup": 5}]})
    assert len(found) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([ROW], "expected a JSON object"),
        ({"rows": []}, 'missing "records"'),
        ({"records": []}, "no rows"),
        ({"records": [ROW] * 11}, "11 rows is more than the limit of 10"),
        ({"records": "x"}, "expected a list of objects"),
        ({"columns": {"a": [1], "b": [1, 2]}}, "different lengths"),
    ],
)
def test_malformed_bodies(body, message):
    assert any(message in m for m in errors(body).values())


def test_unseen_categories_follow_the_policy():
    assert to_frame({"records": [{**ROW, "plan": "gold"}]}, FEATURES, max_rows=10)[0] is not None
    assert (
        "unseen category 'gold'; known: basic, premium"
        in errors({"records": [{**ROW, "plan": "gold"}]}, reject_unseen=True)[("plan",)]
    )


def test_ignored_training_columns_are_accepted_and_dropped():
    frame, problems = to_frame(
        {"records": [{**ROW, "customer_id": "C1"}]},
        FEATURES,
        max_rows=10,
        ignore=frozenset({"customer_id"}),
    )
    assert not problems and "customer_id" not in frame.columns


def _file_chunk(categorical: bool) -> pd.DataFrame:
    """Rows of a file: typed columns, and text as a messy export writes it."""
    frame = pd.DataFrame(
        {
            "tenure": [3, 4, 5, 6],
            "charges": [" 29.85", "", "N/A", "abc"],
            "auto_renew": pd.array([True, None, False, True], dtype="boolean"),
            "plan": [" basic ", "premium", "", "gold"],
            "signup": pd.to_datetime(["2024-05-31", None, "2024-01-02", "2023-12-31"]),
        }
    )
    if categorical:
        frame["plan"] = frame["plan"].astype("category")
    return frame


@pytest.mark.parametrize("categorical", [False, True], ids=["text", "dictionary"])
def test_a_file_chunk_is_typed_as_the_same_rows_sent_as_a_request(categorical):
    from nbops.serving.validation import validate, validate_frame

    features = [*FEATURES[:3], Feature("plan", "categorical", nullable=False), FEATURES[4]]
    chunk = _file_chunk(categorical)
    batch, problems = validate_frame(chunk, features)

    assert sorted(problems) == [
        (
            2,
            "plan",
            "null is not allowed here: the model was trained without missing values in this column",
        ),
        (3, "charges", "expected a number (or a blank, NA or N/A for a missing value), got 'abc'"),
    ]
    good = [0, 1]
    request = {
        "records": [
            {
                "tenure": 3 + i,
                "charges": [" 29.85", ""][i],
                "auto_renew": [True, None][i],
                "plan": [" basic ", "premium"][i],
                "signup": ["2024-05-31", None][i],
            }
            for i in good
        ]
    }
    expected, errors = validate(request, features, max_rows=10)
    assert errors == [] and expected is not None
    got = batch.frame().iloc[good].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.frame())


def _hundred_rows():
    """100 rows as a client sends them: JSON numbers, booleans and ISO dates."""
    return [
        {
            "tenure": i % 40,
            "charges": None if i % 7 == 0 else 20.5 + i,
            "auto_renew": i % 3 == 0,
            "plan": ["basic", "premium"][i % 2],
            "signup": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
        }
        for i in range(100)
    ]


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("tenure", "3 months", "expected a number (or a blank, NA or N/A"),
        ("tenure", None, "null is not allowed"),
        ("auto_renew", "maybe", "expected true or false"),
        ("plan", 7, "expected a string"),
        ("signup", "2024-02-30", "expected a date such as 2024-05-31"),
        ("signup", "2262-04-12", "outside the range"),
    ],
)
def test_one_bad_cell_in_a_hundred_rows_is_named_by_row_and_column(field, bad, message):
    rows = _hundred_rows()
    rows[57][field] = bad
    frame, problems = to_frame({"records": rows}, FEATURES, max_rows=100)
    assert frame is None
    assert [(e.loc, message in e.msg) for e in problems] == [
        (["body", "records", 57, field], True)
    ], problems
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    _, problems = to_frame({"columns": columns}, FEATURES, max_rows=100)
    assert [e.loc for e in problems] == [["body", "columns", field, 57]]


def test_a_hundred_rows_with_mixed_types_per_column_type_like_one_row_each():
    """Numbers as JSON or as text, booleans as true/false or yes/no/1/0, dates in
    several forms and nulls, mixed within each column: every row is typed as it
    would be alone."""
    rows = _hundred_rows()
    for i, row in enumerate(rows):
        kind = i % 5
        if kind == 1:
            row.update(tenure=f" {row['tenure']} ", charges="N/A", auto_renew="Yes")
        elif kind == 2:
            row.update(charges=f"{row['charges'] or 1.25}", auto_renew=0, signup="31/05/2024")
        elif kind == 3:
            row.update(tenure=float(row["tenure"]), auto_renew=None, plan=" premium ")
        elif kind == 4:
            row.update(charges="", signup="2024-05-31T01:30:00+02:00", plan="")
    whole, problems = to_frame({"records": rows}, FEATURES, max_rows=100)
    assert not problems, problems
    alone = pd.concat(
        [to_frame({"records": [row]}, FEATURES, max_rows=1)[0] for row in rows],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, alone)
    assert whole["tenure"].iloc[1] == 1.0 and pd.isna(whole["charges"].iloc[1])
    assert whole["auto_renew"].iloc[1] and not whole["auto_renew"].iloc[2]
    assert whole["signup"].iloc[4] == pd.Timestamp("2024-05-30T23:30")
    assert pd.isna(whole["plan"].iloc[4]) and whole["plan"].iloc[3] == "premium"


def test_a_column_missing_from_some_records_is_named_for_each_of_them():
    rows = _hundred_rows()
    for i in (3, 57, 99):
        del rows[i]["charges"]  # a nullable column: the key must still be sent
    rows[57].pop("plan")
    _, problems = to_frame({"records": rows}, FEATURES, max_rows=100)
    assert [(e.loc[2:], e.msg.split(";")[0]) for e in problems] == [
        ([3, "charges"], "missing column (numeric)"),
        ([57, "charges"], "missing column (numeric)"),
        ([57, "plan"], "missing column (categorical)"),
        ([99, "charges"], "missing column (numeric)"),
    ]


def test_numbers_beyond_float_range_in_a_batch_are_named_and_the_rest_typed():
    rows = _hundred_rows()
    rows[10]["charges"] = 10**400
    _, problems = to_frame({"records": rows}, FEATURES, max_rows=100)
    assert [(e.loc[2:], e.msg[:19]) for e in problems] == [([10, "charges"], "number too large: 1")]


@pytest.mark.parametrize(
    ("plans", "refused"),
    [
        (["basic", " premium ", "basic"], []),
        (["basic", None, "basic"], [1]),
        (["  ", "premium", ""], [0, 2]),  # a blank is a missing value
        ([7, "basic", None], [0, 2]),  # a number is refused as such and as a missing value
    ],
)
def test_a_category_the_model_needs_refuses_nulls_and_blanks_by_row(plans, refused):
    features = [FEATURES[0], Feature("plan", "categorical", nullable=False)]
    rows = [{"tenure": 1, "plan": p} for p in plans]
    frame, problems = to_frame({"records": rows}, features, max_rows=10)
    nulls = [e.loc[2] for e in problems if e.msg.startswith("null is not allowed")]
    assert nulls == refused
    if not refused:
        assert frame is not None and frame["plan"].tolist() == ["basic", "premium", "basic"]
