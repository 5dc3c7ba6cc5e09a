"""Request validation against the training contract: every field error at once."""

from __future__ import annotations

import pandas as pd
import pytest

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
        ({**ROW, "tenure": "3"}, "tenure", "expected a number, got str"),
        ({**ROW, "tenure": None}, "tenure", "null is not allowed"),
        ({**ROW, "tenure": True}, "tenure", "expected a number, got bool"),
        ({**ROW, "auto_renew": "yes"}, "auto_renew", "expected true or false"),
        ({**ROW, "plan": 7}, "plan", "expected a string"),
        ({**ROW, "signup": "31/05/2024"}, "signup", "expected an ISO 8601 date"),
        ({k: v for k, v in ROW.items() if k != "charges"}, "charges", "missing column (numeric)"),
        ({**ROW, "colour": "red"}, "colour", "unexpected column"),
    ],
)
def test_each_bad_field_is_named(row, field, message):
    found = errors({"records": [row]})
    assert any(loc[-1] == field and message in msg for loc, msg in found.items()), found


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
