"""Features from roles: one ColumnTransformer that turns any table into a finite matrix."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from nbops.errors import DataError
from nbops.modeling.features import DatetimeFeatures, build_preprocessor, columns_by_role
from nbops.modeling.roles import ColumnRole, infer_roles

TEXT_DTYPES = ["string", "str", "object", "category"]

# The deprecation itself is pinned down by test_fitting_raises_no_deprecation_warning.
pytestmark = pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning")


def _text(values: np.ndarray, dtype: str) -> pd.Series:
    if dtype == "category":
        return pd.Series(pd.Categorical(values))
    if dtype == "object":
        return pd.Series(list(values), dtype=object)
    return pd.Series(values, dtype=dtype)


def _frame(n: int, *, seed: int, cats: list[str], text_dtype: str = "string") -> pd.DataFrame:
    """A table with a column for every role, and missing values wherever they can be."""
    rng = np.random.default_rng(seed)
    holes = lambda: rng.random(n) < 0.1  # noqa: E731
    category = np.where(holes(), None, rng.choice(cats, n)).astype(object)
    return pd.DataFrame(
        {
            "id": [f"C{seed}-{i}" for i in range(n)],
            "amount": np.where(holes(), np.nan, rng.normal(50, 10, n)),
            "count": pd.array(np.where(holes(), None, rng.integers(0, 5, n)), dtype="Int64"),
            "flag": pd.array(np.where(holes(), None, rng.random(n) < 0.5), dtype="boolean"),
            "renew": rng.random(n) < 0.5,
            "signup": pd.Series(pd.date_range("2023-01-01", periods=n, freq="D")).where(~holes()),
            "plan": _text(category, text_dtype),
            "city": pd.Series([f"city{i}" for i in rng.integers(0, 60, n)], dtype="str"),
            "constant": "same",
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _frame(300, seed=0, cats=["basic", "pro", "team"])


@pytest.fixture(scope="module")
def roles(train: pd.DataFrame) -> list[ColumnRole]:
    return infer_roles(train, target="y")


def test_fixture_covers_every_role(roles: list[ColumnRole]) -> None:
    assert set(columns_by_role(roles)) == {
        "drop",
        "numeric",
        "boolean",
        "datetime",
        "categorical",
        "high_cardinality",
    }


@pytest.mark.parametrize("text_dtype", TEXT_DTYPES)
def test_fit_and_transform_give_a_finite_matrix(text_dtype: str) -> None:
    train = _frame(300, seed=0, cats=["basic", "pro", "team"], text_dtype=text_dtype)
    roles = infer_roles(train, target="y")
    assert dict((r.column, r.role) for r in roles)["plan"] == "categorical"
    pre = build_preprocessor(roles, seed=0)
    fitted = pre.fit_transform(train.drop(columns="y"), train["y"])
    # Unseen categories, an unseen high-cardinality value, and a column of holes at
    # prediction time: the model must still get numbers.
    test = _frame(80, seed=1, cats=["basic", "enterprise", "free"], text_dtype=text_dtype)
    test["city"] = "a city never seen"
    test.loc[:9, ["amount", "signup"]] = np.nan
    out = pre.transform(test.drop(columns="y"))
    assert fitted.dtype.kind == "f" and out.dtype.kind == "f"
    assert np.isfinite(fitted).all()
    assert np.isfinite(out).all()
    assert out.shape == (80, fitted.shape[1])


def test_feature_names_name_the_input_columns(train: pd.DataFrame, roles: list[ColumnRole]) -> None:
    pre = build_preprocessor(roles).fit(train.drop(columns="y"), train["y"])
    names = list(pre.get_feature_names_out())
    assert len(names) == pre.transform(train.drop(columns="y")).shape[1]
    for expected in [
        "numeric__amount",
        "numeric__count",
        "boolean__flag",
        "categorical__plan_basic",
        "high_cardinality__city",
        "datetime__signup_year",
        "datetime__signup_days",
    ]:
        assert expected in names
    # Dropped columns never reach the model.
    assert not any("__id" in n or "constant" in n for n in names)


def test_same_seed_gives_same_features(train: pd.DataFrame, roles: list[ColumnRole]) -> None:
    X, y = train.drop(columns="y"), train["y"]
    a = build_preprocessor(roles, seed=3).fit_transform(X, y)
    b = build_preprocessor(roles, seed=3).fit_transform(X, y)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "roles",
    [[], [ColumnRole("id", "drop", "identifier"), ColumnRole("c", "drop", "constant")]],
    ids=["no-columns", "all-dropped"],
)
def test_no_usable_column_is_a_data_error(roles: list[ColumnRole]) -> None:
    with pytest.raises(
        DataError, match=r"No column is usable as a feature.*features: \{categorical"
    ):
        build_preprocessor(roles)


def test_columns_by_role_keeps_column_order() -> None:
    roles = [
        ColumnRole("b", "numeric", ""),
        ColumnRole("a", "drop", ""),
        ColumnRole("c", "numeric", ""),
    ]
    assert columns_by_role(roles) == {"numeric": ["b", "c"], "drop": ["a"]}


def _dates() -> pd.DataFrame:
    return pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-03-15", None])})


def test_datetime_features_split_dates_into_parts() -> None:
    out = DatetimeFeatures().fit(_dates()).transform(_dates())
    # year, month, weekday (Monday=0), day of year, days since the earliest training date
    np.testing.assert_array_equal(out[0], [2024, 1, 0, 1, 0])
    np.testing.assert_array_equal(out[1], [2024, 3, 4, 75, 74])
    assert np.isnan(out[2]).all()


def test_datetime_features_measure_days_from_the_training_origin() -> None:
    transformer = DatetimeFeatures().fit(_dates())
    later = pd.DataFrame({"d": pd.to_datetime(["2024-01-11"])})
    assert transformer.transform(later)[0, 4] == 10


def test_datetime_features_parse_text_dates() -> None:
    text = pd.DataFrame({"d": ["2024-01-01", "not a date", "2024-03-15"]})
    out = DatetimeFeatures().fit(text).transform(text)
    assert out[0, 1] == 1 and out[2, 1] == 3
    assert np.isnan(out[1]).all()


def test_datetime_features_follow_the_scikit_learn_contract() -> None:
    transformer = DatetimeFeatures()
    with pytest.raises(NotFittedError):
        transformer.transform(_dates())
    with pytest.raises(NotFittedError):
        transformer.get_feature_names_out()
    assert transformer.fit(_dates()) is transformer
    assert transformer.n_features_in_ == 1
    assert list(transformer.feature_names_in_) == ["d"]
    assert list(transformer.get_feature_names_out()) == [
        "d_year",
        "d_month",
        "d_weekday",
        "d_dayofyear",
        "d_days",
    ]
    unfitted = clone(transformer)
    assert not hasattr(unfitted, "origin_")
    assert transformer.get_params() == {}


def test_datetime_features_of_an_all_missing_column_are_missing() -> None:
    empty = pd.DataFrame({"d": pd.to_datetime([None, None])})
    out = DatetimeFeatures().fit(empty).transform(empty)
    assert out.shape == (2, 5)
    assert np.isnan(out).all()


def test_fitting_raises_no_deprecation_warning(
    train: pd.DataFrame, roles: list[ColumnRole]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        build_preprocessor(roles).fit(train.drop(columns="y"), train["y"])
