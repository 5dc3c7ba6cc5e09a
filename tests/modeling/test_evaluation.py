"""Scoring on held-out data: metrics, the best candidate, slices and importance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nbops.data.target import TargetInfo, prepare_target
from nbops.errors import ConfigError
from nbops.modeling.evaluation import (
    GREATER_IS_BETTER,
    Scores,
    classification_metrics,
    importance_scoring,
    importance_table,
    pick_best,
    regression_metrics,
    score_model,
    slice_table,
)
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles

CLASSIFICATION_KEYS = {"accuracy", "log_loss", "roc_auc", "pr_auc", "f1"}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    signal = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "group": pd.array(rng.choice(["a", "b", "c"], n), dtype="string"),
            "visits": rng.integers(0, 100, n),
            "seats": rng.integers(1, 4, n),
        }
    )
    frame.loc[::17, "group"] = pd.NA
    frame["label"] = np.where(signal + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    frame["amount"] = 3 * signal + 0.1 * rng.normal(size=n)
    return frame


@pytest.fixture(scope="module")
def classified(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, TargetInfo, Scores, object]:
    frame, info = prepare_target(table.drop(columns="amount"), "label", "classification")
    X, y = frame.drop(columns="label"), frame["label"]
    model = make_model("linear", task="classification", roles=infer_roles(frame, target="label"))
    model.fit(X, y)
    return X, y, info, score_model(model, X, y, info), model


@pytest.fixture(scope="module")
def regressed(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, TargetInfo, Scores, object]:
    frame, info = prepare_target(table.drop(columns="label"), "amount", "regression")
    X, y = frame.drop(columns="amount"), frame["amount"]
    model = make_model("linear", task="regression", roles=infer_roles(frame, target="amount"))
    model.fit(X, y)
    return X, y, info, score_model(model, X, y, info), model


@pytest.fixture(scope="module")
def multiclassed(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, TargetInfo, None, object]:
    frame = table.drop(columns="label").assign(
        label=pd.cut(
            table["signal"], [-np.inf, -0.5, 0.5, np.inf], labels=["low", "mid", "high"]
        ).astype(str)
    )
    frame, info = prepare_target(frame.drop(columns="amount"), "label", "classification")
    X, y = frame.drop(columns="label"), frame["label"]
    # Few boosting rounds: what is compared is the permutation, not the model (each round
    # of three-class boosting is predicted for every permutation of every feature).
    model = make_model(
        "hgb",
        task="classification",
        roles=infer_roles(frame, target="label"),
        hyperparams={"max_iter": 10},
    )
    model.fit(X, y)
    return X, y, info, None, model


def test_binary_metrics_on_a_hand_example() -> None:
    y = np.array(["no", "no", "yes", "yes"])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.35, 0.65], [0.2, 0.8]])
    metrics = classification_metrics(
        y, np.array(["no", "no", "yes", "yes"]), proba, classes=["no", "yes"], positive="yes"
    )
    assert set(metrics) == CLASSIFICATION_KEYS
    assert metrics["roc_auc"] == metrics["pr_auc"] == metrics["f1"] == metrics["accuracy"] == 1.0
    expected_log_loss = -np.mean(np.log([0.9, 0.6, 0.65, 0.8]))
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)


def test_binary_metrics_use_the_positive_class() -> None:
    # The model ranks "yes" perfectly but predicts "no" everywhere: f1 for "yes" is 0.
    y = np.array(["no", "no", "yes", "yes"])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    metrics = classification_metrics(
        y, np.array(["no"] * 4), proba, classes=["no", "yes"], positive="yes"
    )
    assert metrics["roc_auc"] == 1.0
    assert metrics["f1"] == 0.0
    assert metrics["accuracy"] == 0.5


def test_binary_metrics_with_one_class_in_test_are_nan_not_an_error() -> None:
    y = np.array([True, True, True])
    proba = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    metrics = classification_metrics(
        y, proba[:, 1] > 0.5, proba, classes=[False, True], positive=True
    )
    assert math.isnan(metrics["roc_auc"])
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_multiclass_metrics_have_the_same_keys_and_ranges() -> None:
    y = np.array(list("abcabcabc"))
    proba = np.random.default_rng(1).dirichlet([1, 1, 1], size=len(y))
    pred = np.array(["a", "b", "c"])[proba.argmax(axis=1)]
    metrics = classification_metrics(y, pred, proba, classes=["a", "b", "c"])
    assert set(metrics) == CLASSIFICATION_KEYS
    for name in ("accuracy", "roc_auc", "pr_auc", "f1"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["log_loss"] > 0


def test_regression_metrics_on_a_hand_example() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    # errors 0, 0, 0, 2: mse 1, mae 0.5; r2 = 1 - 4 / 5
    assert metrics == pytest.approx({"rmse": 1.0, "mae": 0.5, "r2": 0.2})


def test_score_model_for_classification(classified: tuple) -> None:
    X, y, info, scores, model = classified
    assert set(scores.metrics) == CLASSIFICATION_KEYS
    assert scores.metrics["roc_auc"] > 0.9
    assert scores.classes == ["no", "yes"]
    assert scores.probabilities is not None and scores.probabilities.shape == (len(X), 2)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize("fixture", ["classified", "regressed"])
def test_scoring_in_chunks_gives_the_same_scores(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fixture: str
) -> None:
    X, y, info, whole, model = request.getfixturevalue(fixture)
    monkeypatch.setattr("nbops.modeling.evaluation.SCORE_ROWS", 128)  # 600 rows: five chunks

    chunked = score_model(model, X, y, info)

    assert chunked.metrics == whole.metrics
    np.testing.assert_array_equal(chunked.predictions, whole.predictions)
    if whole.probabilities is not None:
        np.testing.assert_array_equal(chunked.probabilities, whole.probabilities)
    assert chunked.seconds > 0


def test_score_model_for_regression(regressed: tuple) -> None:
    _, _, _, scores, _ = regressed
    assert set(scores.metrics) == {"rmse", "mae", "r2"}
    assert scores.metrics["r2"] > 0.95
    assert scores.probabilities is None


@pytest.mark.parametrize(
    ("candidates", "primary", "best"),
    [
        ({"linear": {"rmse": 1.0}, "hgb": {"rmse": 0.5}}, "rmse", "hgb"),
        ({"linear": {"mae": 0.4}, "hgb": {"mae": 0.5}}, "mae", "linear"),
        ({"linear": {"log_loss": 0.3}, "hgb": {"log_loss": 0.5}}, "log_loss", "linear"),
        ({"linear": {"roc_auc": 0.7}, "hgb": {"roc_auc": 0.8}}, "roc_auc", "hgb"),
        ({"linear": {"r2": 0.9}, "hgb": {"r2": 0.8}}, "r2", "linear"),
        ({"linear": {"roc_auc": math.nan}, "hgb": {"roc_auc": 0.51}}, "roc_auc", "hgb"),
        ({"hgb": {"rmse": math.nan}, "linear": {"rmse": 99.0}}, "rmse", "linear"),
        ({"linear": {"rmse": 99.0}, "hgb": {"rmse": math.nan}}, "rmse", "linear"),
        ({"linear": {"roc_auc": None}, "hgb": {"roc_auc": 0.1}}, "roc_auc", "hgb"),
        ({"b": {"roc_auc": 0.7}, "a": {"roc_auc": 0.7}}, "roc_auc", "a"),
    ],
    ids=[
        "rmse-lower",
        "mae-lower",
        "log-loss-lower",
        "roc-auc-higher",
        "r2-higher",
        "nan-never-wins-higher",
        "nan-never-wins-lower",
        "nan-never-wins-lower-order",
        "none-never-wins",
        "tie-is-alphabetical",
    ],
)
def test_pick_best_respects_direction(candidates: dict, primary: str, best: str) -> None:
    assert pick_best(candidates, primary) == best


def test_every_reported_metric_has_a_direction() -> None:
    assert CLASSIFICATION_KEYS | {"rmse", "mae", "r2"} == set(GREATER_IS_BETTER)


@pytest.mark.parametrize(
    ("primary", "match"),
    [
        ("auc", r"evaluate\.primary_metric 'auc' is unknown\. Use one of: roc_auc, pr_auc"),
        (
            "rmse",
            r"evaluate\.primary_metric 'rmse' does not apply to this task; candidates report roc_auc, f1",
        ),
    ],
)
def test_pick_best_rejects_unusable_primary_metric(primary: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        pick_best({"linear": {"roc_auc": 0.7, "f1": 0.5}}, primary)


def test_pick_best_without_candidates_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.models|candidate"):
        pick_best({}, "rmse")


def test_slice_table_has_a_row_per_category(classified: tuple) -> None:
    X, y, info, scores, _ = classified
    table = slice_table(X, scores, y, info, "group")
    assert set(table["group"]) == {"a", "b", "c", "(missing)"}
    assert table["rows"].sum() == len(X)
    assert table["rows"].is_monotonic_decreasing
    counts = X["group"].astype("string").fillna("(missing)").value_counts()
    assert dict(zip(table["group"], table["rows"], strict=True)) == counts.to_dict()
    assert {"accuracy", "roc_auc", "positive_rate"} <= set(table.columns)
    assert table["positive_rate"].between(0, 1).all()


def test_slice_table_cuts_many_numbers_into_quartiles(classified: tuple) -> None:
    X, y, info, scores, _ = classified
    table = slice_table(X, scores, y, info, "visits")
    assert len(table) == 4
    assert table["rows"].sum() == len(X)
    assert table["rows"].between(0.2 * len(X), 0.3 * len(X)).all()
    assert all(str(label).startswith("(") and "," in str(label) for label in table["visits"])


def test_slice_table_keeps_few_numbers_as_values(classified: tuple) -> None:
    X, y, info, scores, _ = classified
    table = slice_table(X, scores, y, info, "seats")
    assert sorted(table["seats"]) == ["1", "2", "3"]


def test_slice_table_for_regression(regressed: tuple) -> None:
    X, y, info, scores, _ = regressed
    table = slice_table(X, scores, y, info, "group")
    assert {"rmse", "mae", "r2"} <= set(table.columns)
    assert table["rows"].sum() == len(X)


def test_slice_table_works_on_a_non_default_index(classified: tuple) -> None:
    X, y, info, scores, model = classified
    X_part, y_part = X.iloc[100:], y.iloc[100:]
    part_scores = score_model(model, X_part, y_part, info)
    table = slice_table(X_part, part_scores, y_part, info, "group")
    assert table["rows"].sum() == len(X_part)


@pytest.mark.parametrize("fixture", ["classified", "regressed"])
def test_importance_puts_the_informative_feature_first(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    X, y, info, _, model = request.getfixturevalue(fixture)
    table = importance_table(model, X, y, scoring=importance_scoring(info), n_repeats=3)
    assert list(table.columns) == ["feature", "importance", "std"]
    assert sorted(table["feature"]) == sorted(X.columns)
    assert table["feature"].iloc[0] == "signal"
    assert table["importance"].is_monotonic_decreasing
    assert table["importance"].iloc[0] > 10 * abs(table["importance"].iloc[1])


@pytest.mark.parametrize("fixture", ["classified", "regressed", "multiclassed"])
def test_importance_is_scikit_learns_permutation_importance_in_one_call(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    # The same permutations and scores as scikit-learn's, the model called once.
    from sklearn.inspection import permutation_importance

    X, y, info, _, model = request.getfixturevalue(fixture)
    scoring = importance_scoring(info)
    table = importance_table(model, X, y, scoring=scoring, n_repeats=3, seed=7)
    expected = permutation_importance(model, X, y, scoring=scoring, n_repeats=3, random_state=7)
    by_feature = table.set_index("feature").loc[list(X.columns)]
    np.testing.assert_allclose(by_feature["importance"], expected.importances_mean, atol=1e-12)
    np.testing.assert_allclose(by_feature["std"], expected.importances_std, atol=1e-12)


def test_importance_samples_large_test_sets(classified: tuple) -> None:
    X, y, info, _, model = classified
    X_part, y_part = X.iloc[50:], y.iloc[50:]
    table = importance_table(
        model, X_part, y_part, scoring=importance_scoring(info), n_repeats=2, max_rows=200
    )
    assert table["feature"].iloc[0] == "signal"


@pytest.mark.parametrize(
    ("info", "scoring"),
    [
        (TargetInfo("y", "regression"), "neg_root_mean_squared_error"),
        (TargetInfo("y", "classification", ["no", "yes"], "yes"), "roc_auc"),
        (TargetInfo("y", "classification", ["a", "b", "c"]), "roc_auc_ovr"),
    ],
)
def test_importance_scoring_per_task(info: TargetInfo, scoring: str) -> None:
    assert importance_scoring(info) == scoring
