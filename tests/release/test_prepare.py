"""What the gate notebook uses: both models' scores, slices, requirements, the model card,
and finding the champion in the registry."""

from __future__ import annotations

import html
import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from nbops.data.datasets import make_churn
from nbops.data.target import TargetInfo, prepare_target
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.release.gate import GatePolicy, decide, metric_value
from nbops.release.prepare import (
    GateScores,
    find_champion,
    gate_scores,
    model_card,
    release_requirements,
    slice_drops,
)
from tests.conftest import free_port

pytestmark = [
    pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


def fit(frame: pd.DataFrame, target: str, task: str, family: str = "linear") -> BaseEstimator:
    roles = infer_roles(frame, target=target)
    hyperparams = {"max_iter": 20} if family == "hgb" else {}
    model = make_model(family, task=task, roles=roles, hyperparams=hyperparams, seed=0)
    return model.fit(frame.drop(columns=target), frame[target])


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_churn(900)
    return frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)


# -- gate_scores ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "positive"),
    [
        (None, True),  # the bool target as generated: positive class True is classes_[1]
        ({True: "churned", False: "stayed"}, "churned"),  # the positive class is classes_[0]
    ],
)
def test_binary_scores_are_positive_class_probabilities(
    churn: tuple[pd.DataFrame, pd.DataFrame], labels: dict | None, positive: object
) -> None:
    train, test = churn
    if labels:
        train = train.assign(churned=train["churned"].map(labels).astype("string"))
        test = test.assign(churned=test["churned"].map(labels).astype("string"))
    train, target = prepare_target(train, "churned", "classification")
    assert target.positive_class == positive
    challenger = fit(train, "churned", "classification")
    champion = fit(train, "churned", "classification", "hgb")
    X, y = test.drop(columns="churned"), test["churned"]

    scores = gate_scores(challenger, champion, X, y, target, metric="roc_auc")

    column = list(challenger.classes_).index(positive)
    np.testing.assert_array_equal(scores.truth, (y == positive).astype(float))
    assert set(np.unique(scores.truth)) == {0.0, 1.0}
    np.testing.assert_allclose(scores.challenger_values, challenger.predict_proba(X)[:, column])
    np.testing.assert_allclose(scores.champion_values, champion.predict_proba(X)[:, column])
    # The gate's metric on these values is the metric the evaluation reports.
    for values, metrics in (
        (scores.challenger_values, scores.challenger_metrics),
        (scores.champion_values, scores.champion_metrics),
    ):
        assert metric_value("roc_auc", scores.truth, values) == pytest.approx(metrics["roc_auc"])
        assert metrics["roc_auc"] > 0.6
    assert scores.champion_error is None
    assert scores.latency_ms_per_row > 0


def test_regression_scores_are_predictions(churn: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = churn
    train, target = prepare_target(train, "monthly_charges", "regression")
    challenger = fit(train, "monthly_charges", "regression")
    X, y = test.drop(columns="monthly_charges"), test["monthly_charges"]

    scores = gate_scores(challenger, None, X, y, target, metric="rmse")

    np.testing.assert_allclose(scores.truth, y.to_numpy(dtype=float))
    np.testing.assert_allclose(scores.challenger_values, challenger.predict(X))
    assert metric_value("rmse", scores.truth, scores.challenger_values) == pytest.approx(
        scores.challenger_metrics["rmse"]
    )
    assert scores.champion_values is None and scores.champion_metrics is None
    assert scores.champion_error is None


def test_a_champion_that_cannot_score_the_data_is_reported_not_raised(
    churn: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = churn
    train, target = prepare_target(train, "churned", "classification")
    challenger = fit(train, "churned", "classification")
    # Trained when the data had a column it no longer has.
    legacy = np.random.default_rng(0).normal(size=len(train))
    champion = fit(train.assign(legacy_score=legacy), "churned", "classification")

    scores = gate_scores(
        challenger,
        champion,
        test.drop(columns="churned"),
        test["churned"],
        target,
        metric="roc_auc",
    )

    assert scores.champion_error is not None
    assert "legacy_score" in scores.champion_error
    assert scores.champion_values is None and scores.champion_metrics is None
    assert scores.challenger_metrics["roc_auc"] > 0.6


# -- slice_drops ------------------------------------------------------------------------


@pytest.fixture
def sliced() -> tuple[GateScores, pd.DataFrame, dict]:
    """Champion and challenger equal on 'north', the challenger worse on 'south';
    'east' has too few rows to judge."""
    rng = np.random.default_rng(0)
    n = {"north": 200, "south": 200, "east": 10}
    region = np.repeat(list(n), list(n.values()))
    truth = rng.integers(0, 2, len(region)).astype(float)
    good = np.clip(truth * 0.6 + rng.uniform(0, 0.4, len(region)), 0, 1)
    noise = rng.uniform(0, 1, len(region))
    challenger = np.where(region == "north", good, noise)
    scores = GateScores(truth, challenger, good, {}, {}, 0.01)
    test = pd.DataFrame({"region": pd.array(region, dtype="string"), "x": 1.0})
    plan = {
        "roles": [{"column": "x", "role": "numeric"}, {"column": "region", "role": "categorical"}]
    }
    return scores, test, plan


def test_slice_drops_are_positive_where_the_challenger_is_worse(
    sliced: tuple[GateScores, pd.DataFrame, dict],
) -> None:
    scores, test, plan = sliced
    target = TargetInfo("churned", "classification", [False, True], True)

    drops = slice_drops(scores, test, target, plan, metric="roc_auc")

    assert set(drops) == {"region=north", "region=south"}  # east: 10 rows < 30
    assert drops["region=north"] == pytest.approx(0.0)
    assert drops["region=south"] > 0.3
    assert slice_drops(scores, test, target, plan, metric="roc_auc", min_rows=5).keys() == {
        "region=north",
        "region=south",
        "region=east",
    }


def test_slice_drops_for_a_lower_is_better_metric() -> None:
    truth = np.linspace(0, 10, 120)
    champion = truth + 0.1
    challenger = np.where(np.arange(120) < 60, truth + 0.1, truth + 2.0)
    scores = GateScores(truth, challenger, champion, {}, {}, 0.01)
    test = pd.DataFrame({"plan": ["basic"] * 60 + ["premium"] * 60})
    plan = {"roles": [{"column": "plan", "role": "categorical"}]}

    drops = slice_drops(
        scores, test, TargetInfo("charges", "regression"), plan, metric="rmse", min_rows=30
    )

    assert drops["plan=basic"] == pytest.approx(0.0)
    assert drops["plan=premium"] == pytest.approx(1.9)  # 1.9 worse in rmse: a positive drop


def test_no_slices_without_a_champion(sliced: tuple[GateScores, pd.DataFrame, dict]) -> None:
    scores, test, plan = sliced
    scores.champion_values = None
    target = TargetInfo("churned", "classification", [False, True], True)
    assert slice_drops(scores, test, target, plan, metric="roc_auc") == {}


# -- release_requirements ---------------------------------------------------------------


def test_release_requirements_pin_the_installed_versions() -> None:
    pins = dict(line.split("==") for line in release_requirements())
    for package in ("scikit-learn", "numpy", "pandas", "mlflow", "skops"):
        assert pins[package] == importlib.metadata.version(package)


# -- model_card -------------------------------------------------------------------------


def test_the_model_card_shows_the_decision_and_escapes_everything() -> None:
    evil = "<script>alert('x')</script>"
    decision = decide(GatePolicy(policy="manual"), challenger_metric=0.8123, interval=None)
    plan = {
        "target": {
            "task": "classification",
            "name": "churned",
            "classes": [False, True],
            "positive_class": True,
        },
        "roles": [
            {"column": "tenure_months", "role": "numeric", "reason": "numbers"},
            {"column": evil, "role": "categorical", "reason": "few distinct values"},
        ],
    }
    card = {
        "model": "linear",
        "estimator": "LogisticRegression",
        "hyperparams": {},
        "file": {"sha256": "sha256:0123abcd"},
    }

    page = model_card(
        "churn <prod>",
        card=card,
        plan=plan,
        metrics={"roc_auc": 0.81234, "log_loss": 0.4},
        decision=decision,
        snapshot={"content_hash": "sha256:feed", "rows": 600, "columns": 16},
    )

    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page
    assert html.escape(evil) in page
    assert "churn &lt;prod&gt;" in page
    assert f"hold — {html.escape(decision.summary)}" in page
    assert "<th>roc_auc</th><td>0.8123</td>" in page
    assert "<th>tenure_months</th><td>numeric — numbers</td>" in page
    assert "sha256:0123abcd" in page and "sha256:feed" in page


# -- find_champion ----------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory."""
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_champion_is_known_when_tracking_is_off(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_TRACKING", "off")
    champion = find_champion("churn")
    assert champion.unknown
    assert champion.version is None and champion.model is None
    assert "NBOPS_TRACKING=off" in champion.note
    assert not (project / ".nbops").exists()


def test_an_unreachable_registry_means_the_champion_is_unknown(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    champion = find_champion("churn")
    assert champion.unknown
    assert champion.version is None
    assert "registry is unreachable" in champion.note
    assert uri in champion.note


def test_an_empty_store_has_no_champion_yet(project: Path) -> None:
    champion = find_champion("churn")
    assert champion.version is None and champion.model is None
    assert not champion.unknown
    assert champion.note == "There is no champion yet."
    assert (project / ".nbops" / "mlflow.db").is_file()  # found the project from the cwd
