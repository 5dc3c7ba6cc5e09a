"""The promotion gate's statistics: paired bootstrap, metrics, and the decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from nbops.errors import ConfigError
from nbops.release.gate import (
    DEFAULT_FLOORS,
    GatePolicy,
    Interval,
    decide,
    metric_value,
    paired_bootstrap,
)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.array([0, 1] * 200)


@pytest.fixture(scope="module")
def weak(labels: np.ndarray) -> np.ndarray:
    """Positive-class scores of a mediocre model (ROC AUC about 0.7)."""
    return np.where(labels == 1, 0.6, 0.4) + np.random.default_rng(0).normal(0, 0.3, len(labels))


@pytest.fixture(scope="module")
def strong(labels: np.ndarray) -> np.ndarray:
    """Positive-class scores of a clearly better model (ROC AUC about 0.9)."""
    return np.where(labels == 1, 0.8, 0.2) + np.random.default_rng(1).normal(0, 0.3, len(labels))


def interval(point: float, low: float, high: float) -> Interval:
    return Interval(point=point, low=low, high=high, confidence=0.95, n=1000)


# -- paired_bootstrap -------------------------------------------------------------------


def test_a_clearly_better_challenger_gets_an_interval_above_zero(
    labels: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> None:
    ci = paired_bootstrap(labels, weak, strong, metric="roc_auc", n=300, seed=0)
    expected = metric_value("roc_auc", labels, strong) - metric_value("roc_auc", labels, weak)
    assert 0 < ci.low < ci.point < ci.high
    assert ci.point == pytest.approx(expected)
    assert ci.confidence == 0.95


def test_the_same_scores_give_no_difference(labels: np.ndarray, weak: np.ndarray) -> None:
    ci = paired_bootstrap(labels, weak, weak.copy(), metric="roc_auc", n=200, seed=0)
    assert ci.point == 0
    assert ci.low <= 0 <= ci.high


def test_a_worse_challenger_gets_an_interval_below_zero(
    labels: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> None:
    ci = paired_bootstrap(labels, strong, weak, metric="roc_auc", n=300, seed=0)
    assert ci.low < ci.high < 0


def test_lower_is_better_metrics_are_signed_so_positive_means_challenger_better() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 400)
    champion = y + rng.normal(0, 1.0, 400)
    challenger = y + rng.normal(0, 0.3, 400)  # smaller errors: better on rmse
    ci = paired_bootstrap(y, champion, challenger, metric="rmse", n=300, seed=0)
    rmse_gain = metric_value("rmse", y, champion) - metric_value("rmse", y, challenger)
    assert 0 < ci.low <= ci.high
    assert ci.point == pytest.approx(rmse_gain)
    # The other way round the challenger is worse: negative.
    reverse = paired_bootstrap(y, challenger, champion, metric="rmse", n=300, seed=0)
    assert reverse.high < 0


def test_the_same_seed_gives_the_same_interval(
    labels: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> None:
    first = paired_bootstrap(labels, weak, strong, metric="roc_auc", n=200, seed=7)
    again = paired_bootstrap(labels, weak, strong, metric="roc_auc", n=200, seed=7)
    other = paired_bootstrap(labels, weak, strong, metric="roc_auc", n=200, seed=8)
    assert (again.low, again.high, again.samples) == (first.low, first.high, first.samples)
    assert other.samples != first.samples


def test_arrays_of_different_lengths_are_refused(labels: np.ndarray, weak: np.ndarray) -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(labels, weak, weak[:-1], metric="roc_auc", n=100)


def test_samples_are_kept_for_the_plot_but_not_written_to_the_decision(
    labels: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> None:
    ci = paired_bootstrap(labels, weak, strong, metric="roc_auc", n=250, seed=0)
    assert ci.n == 250
    assert len(ci.samples) == ci.n
    assert min(ci.samples) <= ci.low <= ci.high <= max(ci.samples)

    data = decide(GatePolicy(), challenger_metric=0.9, interval=ci).to_dict()
    assert "samples" not in data["interval"]
    assert data["interval"]["low"] == ci.low
    assert json.loads(json.dumps(data))["action"] == "promote"
    assert ci.samples  # the Interval itself still has them


# -- metric_value -----------------------------------------------------------------------

RNG = np.random.default_rng(11)
Y_CLASS = RNG.integers(0, 2, 300)
# Rounded to two decimals: ties, which the rank-based ROC AUC must handle like sklearn.
P_CLASS = np.round(RNG.uniform(0.01, 0.99, 300), 2)
Y_REG = RNG.normal(50, 10, 300)
P_REG = Y_REG + RNG.normal(0, 4, 300)


@pytest.mark.parametrize(
    ("metric", "y", "pred", "expected"),
    [
        ("roc_auc", Y_CLASS, P_CLASS, skm.roc_auc_score(Y_CLASS, P_CLASS)),
        ("pr_auc", Y_CLASS, P_CLASS, skm.average_precision_score(Y_CLASS, P_CLASS)),
        ("f1", Y_CLASS, P_CLASS, skm.f1_score(Y_CLASS, P_CLASS >= 0.5)),
        ("accuracy", Y_CLASS, P_CLASS, skm.accuracy_score(Y_CLASS, P_CLASS >= 0.5)),
        ("log_loss", Y_CLASS, P_CLASS, skm.log_loss(Y_CLASS, P_CLASS)),
        ("rmse", Y_REG, P_REG, skm.root_mean_squared_error(Y_REG, P_REG)),
        ("mae", Y_REG, P_REG, skm.mean_absolute_error(Y_REG, P_REG)),
        ("r2", Y_REG, P_REG, skm.r2_score(Y_REG, P_REG)),
    ],
)
def test_metric_values_agree_with_sklearn(
    metric: str, y: np.ndarray, pred: np.ndarray, expected: float
) -> None:
    assert metric_value(metric, y.astype(float), pred) == pytest.approx(expected, rel=1e-9)


def test_an_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot compute 'auc'.*roc_auc"):
        metric_value("auc", Y_CLASS, P_CLASS)


# -- decide -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "action", "words"),
    [
        ("auto", "promote", "Promote to champion: there is no champion yet"),
        ("manual", "hold", "Approve with `nbops promote`"),
    ],
)
def test_the_first_model_takes_the_role_by_policy(policy: str, action: str, words: str) -> None:
    decision = decide(GatePolicy(policy=policy), challenger_metric=0.8, interval=None)
    assert decision.action == action
    assert words in decision.summary
    assert decision.interval is None
    assert [c.name for c in decision.checks] == ["champion"]


@pytest.mark.parametrize(
    ("policy", "action", "words"),
    [
        ("auto", "promote", "Promote to champion: the challenger is better with 95% confidence"),
        ("manual", "hold", "Hold as challenger for approval (release.policy: manual)"),
    ],
)
def test_a_challenger_that_beats_the_champion(policy: str, action: str, words: str) -> None:
    ci = interval(0.05, 0.03, 0.07)
    decision = decide(
        GatePolicy(policy=policy, min_improvement=0.01), challenger_metric=0.85, interval=ci
    )
    assert decision.action == action
    assert decision.summary.startswith(words)
    assert "CI [+0.0300, +0.0700]" in decision.summary
    assert decision.interval is ci


def test_a_win_below_the_required_improvement_keeps_the_champion() -> None:
    decision = decide(
        GatePolicy(min_improvement=0.05),
        challenger_metric=0.85,
        interval=interval(0.05, 0.03, 0.07),
    )
    assert decision.action == "reject"
    assert "does not clear +0.0500" in decision.summary


def test_an_interval_straddling_zero_keeps_the_champion() -> None:
    decision = decide(GatePolicy(), challenger_metric=0.81, interval=interval(0.012, -0.021, 0.043))
    assert decision.action == "reject"
    assert decision.summary.startswith("Champion kept:")
    assert "+0.0120, 95% CI [-0.0210, +0.0430]" in decision.summary
    assert "does not clear +0.0000" in decision.summary


def test_identical_models_are_not_promoted(labels: np.ndarray, weak: np.ndarray) -> None:
    ci = paired_bootstrap(labels, weak, weak.copy(), metric="roc_auc", n=200)
    decision = decide(GatePolicy(), challenger_metric=0.7, interval=ci)
    assert decision.action == "reject"
    assert "CI [+0.0000, +0.0000]" in decision.summary


@pytest.mark.parametrize(
    ("metric", "floor", "value", "passed", "detail"),
    [
        ("roc_auc", 0.8, 0.85, True, "roc_auc 0.8500 ≥ required 0.8"),
        ("roc_auc", 0.8, 0.8, True, "roc_auc 0.8000 ≥ required 0.8"),
        ("roc_auc", 0.8, 0.75, False, "roc_auc 0.7500 misses the floor 0.8"),
        ("rmse", 5.0, 4.2, True, "rmse 4.2000 ≤ required 5.0"),
        ("rmse", 5.0, 5.3, False, "rmse 5.3000 misses the floor 5.0"),
    ],
)
def test_the_metric_floor_follows_the_metric_direction(
    metric: str, floor: float, value: float, passed: bool, detail: str
) -> None:
    decision = decide(
        GatePolicy(primary_metric=metric, min_metric=floor), challenger_metric=value, interval=None
    )
    assert decision.action == ("promote" if passed else "reject")
    assert decision.checks[0].detail == detail
    if not passed:
        assert decision.summary == f"Not released: {detail}."


def test_the_slice_floor_names_the_worst_slice() -> None:
    drops = {"plan=basic": 0.01, "plan=premium": 0.08, "plan=standard": -0.02}
    rejected = decide(
        GatePolicy(max_slice_drop=0.05), challenger_metric=0.8, interval=None, slice_drops=drops
    )
    assert rejected.action == "reject"
    assert "largest drop on a slice: +0.0800 on 'plan=premium' (allowed 0.05)" in rejected.summary

    allowed = decide(
        GatePolicy(max_slice_drop=0.1), challenger_metric=0.8, interval=None, slice_drops=drops
    )
    assert allowed.action == "promote"
    assert allowed.checks[0].passed


def test_the_latency_budget() -> None:
    slow = decide(
        GatePolicy(max_latency_ms_per_row=0.5),
        challenger_metric=0.8,
        interval=None,
        latency_ms_per_row=1.25,
    )
    assert slow.action == "reject"
    assert "1.250 ms per row (budget 0.5 ms)" in slow.summary

    fast = decide(
        GatePolicy(max_latency_ms_per_row=0.5),
        challenger_metric=0.8,
        interval=None,
        latency_ms_per_row=0.1,
    )
    assert fast.action == "promote"


def test_a_failing_floor_vetoes_a_winning_challenger_and_still_shows_the_interval() -> None:
    decision = decide(
        GatePolicy(min_metric=0.9, max_latency_ms_per_row=10),
        challenger_metric=0.85,
        interval=interval(0.05, 0.03, 0.07),
        latency_ms_per_row=0.2,
    )
    assert decision.action == "reject"
    assert decision.summary.startswith("Champion kept: roc_auc 0.8500 misses the floor 0.9;")
    assert "CI [+0.0300, +0.0700] clears +0.0000" in decision.summary
    assert "ms per row" not in decision.summary  # passed floors are not listed as reasons
    assert {c.name: c.passed for c in decision.checks} == {
        "floor": False,
        "latency": True,
        "comparison": True,
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"policy": "yolo"}, r"release.policy 'yolo' is unknown. Use auto .* or manual"),
        ({"primary_metric": "auc"}, r"release.primary_metric 'auc' is unknown.*roc_auc"),
        ({"confidence": 1.2}, r"release.confidence must be between 0.5 and 1.*got 1.2"),
        ({"n_bootstrap": 10}, r"release.n_bootstrap must be at least 100.*got 10"),
    ],
)
def test_invalid_release_settings_name_the_setting(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GatePolicy(**settings)


@pytest.mark.parametrize("ties", [False, True])
def test_the_bootstrap_auc_from_counts_equals_the_auc_of_the_materialised_resample(ties) -> None:
    from nbops.release.gate import _auc, _CountedAuc

    rng = np.random.default_rng(3)
    y = (rng.random(5_000) < 0.2).astype(float)
    score = rng.random(5_000) + 0.3 * y
    if ties:
        score = np.round(score, 2)  # many tied scores, as a tree model gives
    counted = _CountedAuc(y, score)

    for _ in range(25):
        rows = rng.integers(0, len(y), len(y))
        assert counted(np.bincount(rows, minlength=len(y))) == _auc(y[rows], score[rows])


def test_paired_bootstrap_on_auc_gives_the_interval_of_resampling_row_by_row() -> None:
    from nbops.release.gate import _auc

    rng = np.random.default_rng(4)
    y = (rng.random(2_000) < 0.3).astype(float)
    champion, challenger = rng.random(2_000) + 0.2 * y, np.round(rng.random(2_000) + 0.3 * y, 2)

    interval = paired_bootstrap(y, champion, challenger, metric="roc_auc", n=200, seed=9)

    draws = np.random.default_rng(9)
    expected = []
    for _ in range(200):
        rows = draws.integers(0, len(y), len(y))
        expected.append(_auc(y[rows], challenger[rows]) - _auc(y[rows], champion[rows]))
    assert interval.samples == expected


# -- task-aware floors ------------------------------------------------------------------


def regression_rules(**overrides) -> GatePolicy:
    floors = {**DEFAULT_FLOORS["regression"], **overrides}
    return GatePolicy(primary_metric="rmse", task="regression", **floors)


def test_a_good_regression_model_is_released_with_the_default_floors() -> None:
    # The first build of a house-price project: RMSE in dollars, no champion yet.
    decision = decide(
        regression_rules(),
        challenger_metric=28661.613,
        interval=None,
        baseline_metric=79415.2,
        r2=0.87,
        latency_ms_per_row=0.01,
    )
    assert decision.action == "promote", decision.summary
    details = {c.name: c.detail for c in decision.checks}
    assert details["baseline"] == (
        "rmse 28661.6130 is 63.9% below the naive baseline's 79415.2000 (the training mean "
        "for every row) (required: at least 10% below)"
    )
    assert details["r2"].startswith("R² 0.8700 > required 0.0: the model explains 87.0%")
    assert "floor" not in details  # no absolute metric floor for regression


@pytest.mark.parametrize(
    ("rmse", "r2", "failed", "words"),
    [
        (75000.0, 0.1, "baseline", "rmse 75000.0000 is 5.6% below the naive baseline's"),
        (81000.0, -0.04, "baseline", "is 2.0% above the naive baseline's"),
        (
            60000.0,
            -0.01,
            "r2",
            "R² -0.0100 ≤ required 0.0: the model is no better than predicting the training mean",
        ),
    ],
)
def test_a_regression_model_close_to_its_baseline_is_not_released(
    rmse: float, r2: float, failed: str, words: str
) -> None:
    decision = decide(
        regression_rules(), challenger_metric=rmse, interval=None, baseline_metric=79415.2, r2=r2
    )
    assert decision.action == "reject"
    assert [c.name for c in decision.checks if not c.passed][0] == failed
    assert decision.summary.startswith("Not released:")
    assert words in decision.summary


def test_classification_gain_is_the_share_of_the_gap_to_a_perfect_score_closed() -> None:
    rules = GatePolicy(**DEFAULT_FLOORS["classification"])
    passed = decide(rules, challenger_metric=0.83, interval=None, baseline_metric=0.5)
    assert passed.action == "promote"
    assert [c.detail for c in passed.checks if c.name == "baseline"] == [
        "roc_auc 0.8300 closes 66.0% of the gap from the naive baseline's 0.5000 (the training "
        "class shares for every row) to a perfect 1 (required: at least 10%)"
    ]
    # Accuracy on an imbalanced table: 0.905 looks good, but always answering the
    # majority class already scores 0.90.
    accuracy = GatePolicy(primary_metric="accuracy", min_gain_over_baseline=0.1)
    rejected = decide(accuracy, challenger_metric=0.905, interval=None, baseline_metric=0.9)
    assert rejected.action == "reject"
    assert "accuracy 0.9050 closes 5.0% of the gap from the naive baseline's 0.9000" in (
        rejected.summary
    )


def test_the_slice_floor_is_a_share_of_the_champions_metric_on_the_slice() -> None:
    slices = {
        "region=north": (0.80, 0.79),  # 1.25% worse
        "region=south": (0.70, 0.63),  # 10% worse
        "region=east": (0.75, 0.80),
    }
    rejected = decide(
        GatePolicy(max_slice_drop_share=0.05),
        challenger_metric=0.8,
        interval=interval(0.01, 0.005, 0.02),
        slices=slices,
    )
    assert rejected.action == "reject"
    assert (
        "worst slice 'region=south': roc_auc 0.6300 vs the champion's 0.7000 there, "
        "10.0% worse (allowed: 5% worse)" in rejected.summary
    )
    # For RMSE in a target's units, worse is higher: 5% of 2000 dollars is 100.
    rmse = regression_rules(min_gain_over_baseline=None, min_r2=None)
    kept = decide(
        rmse,
        challenger_metric=1900.0,
        interval=interval(20.0, 5.0, 40.0),
        slices={"city=a": (2000.0, 2090.0), "city=b": (1500.0, 1400.0)},
    )
    assert kept.action == "promote", kept.summary
    assert "city=a': rmse 2090.0000 vs the champion's 2000.0000 there, 4.5% worse" in (
        kept.checks[0].detail
    )


def test_a_roc_auc_floor_left_in_a_regression_project_says_how_to_migrate() -> None:
    decision = decide(regression_rules(min_metric=0.6), challenger_metric=28661.613, interval=None)
    assert decision.action == "reject"
    assert "rmse 28661.6130 misses the floor 0.6 (release.floors.min_metric is a ceiling" in (
        decision.summary
    )
    assert "set it to null and let min_gain_over_baseline and min_r2 judge" in decision.summary


@pytest.mark.parametrize("key", ["min_gain_over_baseline", "max_slice_drop_share"])
def test_relative_floors_are_shares(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"release.floors.{key} is a share between 0 and 1"):
        GatePolicy(**{key: 5})
