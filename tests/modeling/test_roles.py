"""Column roles: what each column is for, with the reason a reviewer reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbops.errors import ConfigError
from nbops.modeling.roles import ROLES, ColumnRole, infer_roles, roles_from_json, roles_to_json

N = 100
rng = np.random.default_rng(0)


def _role(column: pd.Series | list | np.ndarray, name: str = "col") -> ColumnRole:
    frame = pd.DataFrame({name: column, "y": np.arange(N) % 2})
    (role,) = infer_roles(frame, target="y")
    return role


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("customer_id", [f"C{i:05d}" for i in range(N)]),
        ("customerID", [f"X{i}" for i in range(N)]),
        ("id", np.arange(N)),
        ("ID", np.arange(1000, 1000 + N)),
        ("uuid", [f"{i:032x}" for i in range(N)]),
        ("order-key", np.arange(N)),
        ("row_number", np.arange(N)),
        ("index", np.arange(N)),
    ],
)
def test_identifiers_are_dropped_by_name_and_uniqueness(name: str, values: object) -> None:
    role = _role(values, name)
    assert role.role == "drop"
    assert role.reason.startswith("identifier: name looks like an ID and 100% of values are unique")


def test_an_id_named_column_with_repeats_is_a_feature() -> None:
    # e.g. a store_id with 5 stores is a category, not an identifier
    role = _role([f"S{i % 5}" for i in range(N)], "store_id")
    assert role.role == "categorical"


@pytest.mark.parametrize(
    ("values", "role", "reason"),
    [
        ([f"free text number {i}" for i in range(N)], "drop", "nearly unique text (100% distinct)"),
        (["k"] * N, "drop", "constant: always 'k'"),
        ([7] * N, "drop", "constant: always"),
        ([None] * N, "drop", "empty: every value is missing"),
        ([np.nan] * N, "drop", "empty: every value is missing"),
        (rng.random(N) < 0.5, "boolean", "true/false values"),
        (
            pd.array(np.where(rng.random(N) < 0.1, None, rng.random(N) < 0.5), dtype="boolean"),
            "boolean",
            "true/false values",
        ),
        (pd.date_range("2024-01-01", periods=N), "datetime", "dates"),
        (pd.date_range("2024-01-01", periods=N, tz="UTC"), "datetime", "dates"),
        (rng.normal(size=N), "numeric", "numbers (100 distinct values)"),
        (rng.integers(0, 5, N), "numeric", "numbers (5 distinct values)"),
        (
            pd.array(np.where(rng.random(N) < 0.2, None, rng.integers(0, 9, N)), dtype="Int64"),
            "numeric",
            "numbers",
        ),
        (
            pd.array(rng.choice(["a", "b", "c"], N), dtype="string"),
            "categorical",
            "3 categories: one-hot encoded",
        ),
        (pd.Series(rng.choice(["a", "b", "c"], N), dtype="str"), "categorical", "3 categories"),
        (
            pd.Series(list(rng.choice(["a", "b", "c"], N)), dtype=object),
            "categorical",
            "3 categories",
        ),
        (pd.Categorical(rng.choice(["a", "b", "c"], N)), "categorical", "3 categories"),
        ([f"v{i % 50}" for i in range(N)], "high_cardinality", "50 categories: target-encoded"),
    ],
    ids=[
        "nearly-unique-text",
        "constant-text",
        "constant-number",
        "empty-object",
        "empty-float",
        "bool",
        "nullable-boolean",
        "datetime",
        "datetime-tz",
        "float",
        "small-int",
        "nullable-int",
        "string",
        "str",
        "object",
        "category",
        "many-categories",
    ],
)
def test_roles_are_inferred_from_type_and_values(values: object, role: str, reason: str) -> None:
    inferred = _role(values)
    assert (inferred.column, inferred.role) == ("col", role)
    assert reason in inferred.reason


def test_small_tables_keep_unique_text() -> None:
    # With 20 rows or fewer, unique text is more likely a small category set than free text.
    frame = pd.DataFrame({"city": ["a", "b", "c", "d"], "y": [0, 1, 0, 1]})
    assert infer_roles(frame, target="y")[0].role == "categorical"


def test_every_column_but_the_target_gets_a_role_in_order() -> None:
    frame = pd.DataFrame({"b": [1.0, 2.0, 3.0], "y": [0, 1, 0], "a": ["x", "y", "x"]})
    roles = infer_roles(frame, target="y")
    assert [r.column for r in roles] == ["b", "a"]
    assert all(r.role in ROLES and r.reason for r in roles)


def test_overrides_win_over_inference() -> None:
    frame = pd.DataFrame(
        {
            "zip": rng.integers(10_000, 10_010, N),
            "customer_id": [f"C{i}" for i in range(N)],
            "score": rng.normal(size=N),
            "y": np.arange(N) % 2,
        }
    )
    roles = infer_roles(
        frame,
        target="y",
        overrides={"categorical": ["zip"], "high_cardinality": ["customer_id"], "drop": ["score"]},
    )
    assert [(r.column, r.role) for r in roles] == [
        ("zip", "categorical"),
        ("customer_id", "high_cardinality"),
        ("score", "drop"),
    ]
    assert all(r.reason == "set in env.yaml (features)" for r in roles)


def test_empty_override_lists_are_allowed() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    roles = infer_roles(frame, target="y", overrides={"categorical": None, "drop": []})
    assert [(r.column, r.role) for r in roles] == [("x", "numeric")]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"catgorical": ["x"]},
            r"Unknown feature role 'catgorical' in env\.yaml's features section\. Use one of: numeric, boolean",
        ),
        (
            {"numeric": ["nope"]},
            r"features\.numeric names column 'nope', which is not in the data\. .*columns are: x, label, y",
        ),
        (
            {"drop": ["y"]},
            r"features\.drop names the target column 'y'; the target cannot be a feature",
        ),
    ],
    ids=["unknown-role", "unknown-column", "target"],
)
def test_bad_overrides_are_config_errors(overrides: dict, match: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"], "y": [0, 1, 0]})
    with pytest.raises(ConfigError, match=match):
        infer_roles(frame, target="y", overrides=overrides)


def test_roles_round_trip_through_json() -> None:
    frame = pd.DataFrame(
        {
            "id": np.arange(N),
            "x": rng.normal(size=N),
            "kind": rng.choice(["a", "b"], N),
            "when": pd.date_range("2024-01-01", periods=N),
            "y": np.arange(N) % 2,
        }
    )
    roles = infer_roles(frame, target="y")
    text = json.dumps(roles_to_json(roles))
    assert roles_from_json(json.loads(text)) == roles
    assert json.loads(text)[0] == {"column": "id", "role": "drop", "reason": roles[0].reason}


@pytest.mark.parametrize("name", ["amount_paid", "valid", "prepaid"])
def test_words_ending_in_id_are_not_identifiers(name: str) -> None:
    assert _role(rng.permutation(np.arange(N) * 37), name).role == "numeric"


@pytest.mark.parametrize(
    ("values", "shown"), [([7] * N, "7"), ([2.5] * N, "2.5"), ([True] * N, "True")]
)
def test_constant_reason_shows_the_plain_value(values: list, shown: str) -> None:
    assert _role(values).reason == f"constant: always {shown}"


@pytest.mark.parametrize(
    ("name", "values", "why"),
    [
        ("Unnamed: 0", np.arange(N), "increasing with the rows"),
        ("n", np.arange(N, 0, -1), "increasing with the rows"),
        # the training share of a randomly split row number: 75 of 0..99, shuffled
        ("line", rng.permutation(134)[:N], "covering"),
    ],
    ids=["pandas-index", "countdown", "split-sample"],
)
def test_row_numbers_are_dropped_whatever_their_name(name: str, values, why: str) -> None:
    role = _role(values, name)
    assert role.role == "drop"
    assert role.reason.startswith("identifier: every value is a different whole number")
    assert why in role.reason
    assert f"keep it with features: {{numeric: [{name}]}}" in role.reason


@pytest.mark.parametrize(
    "values",
    [
        rng.choice(1_000_000, N, replace=False),  # unique, but spread like a measurement
        np.sort(rng.integers(0, 40, N)),  # sorted, with repeats
        np.arange(N) * 0.5,  # increasing, but not whole numbers
    ],
    ids=["spread-out", "repeats", "floats"],
)
def test_other_numbers_stay_features(values) -> None:
    assert _role(values, "amount").role == "numeric"


def test_an_override_keeps_a_row_number() -> None:
    frame = pd.DataFrame({"n": np.arange(N), "y": np.arange(N) % 2})
    (role,) = infer_roles(frame, target="y", overrides={"numeric": ["n"]})
    assert (role.role, role.reason) == ("numeric", "set in env.yaml (features)")
