"""Drift monitoring: honest when nothing changed, sharp when something did, never a crash."""

from __future__ import annotations

import functools
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from nbops.data.datasets import make_churn
from nbops.errors import ConfigError
from nbops.modeling.roles import infer_roles
from nbops.monitoring.drift import (
    ColumnDrift,
    DriftPolicy,
    DriftReport,
    Profile,
    WindowCounts,
    compare,
    compare_counts,
    count,
    profile,
)

#: independent (reference, window) pairs for the false-alarm measurements
PAIRS = 40
REFERENCE_ROWS = 5000
LARGE_WINDOW = 2000  # both sides above small_reference: distances (Wasserstein, Jensen–Shannon)
SMALL_WINDOW = 300  # p-value tests (Kolmogorov–Smirnov, chi-square)
#: every tested column of the churn table (customer_id is dropped, signup_date not tested)
TESTED = 13
SHIFTED = ("monthly_charges", "support_calls", "satisfaction_score")
UNSHIFTED = ("tenure_months", "region", "devices")


# -- shared data ------------------------------------------------------------------------
#
# make_churn draws whole 65,536-row blocks whatever the size asked, so one call per pair
# would spend most of the file's time generating rows. Its rows are i.i.d. draws, so
# disjoint slices of one long table are independent samples: references are slices of a
# seed-1 table, windows slices of a seed-2 table (a different seed, as a real window).


@pytest.fixture(scope="module")
def references() -> pd.DataFrame:
    return make_churn(PAIRS * REFERENCE_ROWS, seed=1)


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return make_churn(PAIRS * (LARGE_WINDOW + SMALL_WINDOW), seed=2)


@pytest.fixture(scope="module")
def roles(references: pd.DataFrame) -> dict[str, str]:
    return {r.column: r.role for r in infer_roles(references.iloc[:1000], target="churned")}


@pytest.fixture(scope="module")
def profiles(references: pd.DataFrame, roles: dict[str, str]) -> list[Profile]:
    return [
        profile(references.iloc[i * REFERENCE_ROWS : (i + 1) * REFERENCE_ROWS], roles)
        for i in range(PAIRS)
    ]


@pytest.fixture(scope="module")
def reference(references: pd.DataFrame) -> pd.DataFrame:
    """The first reference: the same rows as ``make_churn(5000, seed=1)``."""
    return references.iloc[:REFERENCE_ROWS]


@pytest.fixture(scope="module")
def churn_profile(profiles: list[Profile]) -> Profile:
    return profiles[0]


@pytest.fixture(scope="module")
def window(windows: pd.DataFrame) -> pd.DataFrame:
    """A large window from the reference world (drift 0)."""
    return windows.iloc[:LARGE_WINDOW]


@pytest.fixture(scope="module")
def drifted() -> dict[float, pd.DataFrame]:
    return {d: make_churn(LARGE_WINDOW, seed=5, drift=d) for d in (0.5, 1.0)}


def _by_column(report: DriftReport) -> dict[str, ColumnDrift]:
    return {c.column: c for c in report.columns}


def _one(reference: pd.DataFrame, current: pd.DataFrame, role: str, **kwargs) -> ColumnDrift:
    """Profile and compare a one-column frame."""
    (name,) = reference.columns
    (result,) = compare(profile(reference, {name: role}), current, **kwargs).columns
    return result


# -- 1. statistically honest --------------------------------------------------------


def _false_alarms(profiles: list[Profile], windows: pd.DataFrame, start: int, size: int):
    reports = [
        compare(p, windows.iloc[start + i * size : start + (i + 1) * size])
        for i, p in enumerate(profiles)
    ]
    tested = [c for r in reports for c in r.columns if c.drifted is not None]
    rate = sum(c.drifted for c in tested) / len(tested)
    return reports, tested, rate


def test_large_windows_without_drift_raise_no_alarms(
    profiles: list[Profile], windows: pd.DataFrame
) -> None:
    # Measured: 0 of 520 column tests (0.0%) flagged, no dataset alarm; the largest
    # distances were 0.089 (Wasserstein, total_charges) and 0.040 (Jensen–Shannon) against
    # thresholds of 0.1. Over 300 windows from another seed: 2 of 3,900 (0.05%).
    reports, tested, rate = _false_alarms(profiles, windows, 0, LARGE_WINDOW)
    assert len(tested) == PAIRS * TESTED
    assert {c.method for c in tested} == {"wasserstein", "jensenshannon"}
    assert not any(r.drifted for r in reports)
    assert rate <= 0.02


def test_small_windows_false_alarm_near_the_nominal_five_percent(
    profiles: list[Profile], windows: pd.DataFrame
) -> None:
    # Measured: 18 of 520 column tests (3.5%) flagged, no dataset alarm (at most 3 of 13
    # columns at once); over 1,000 windows: 3.8% (chi-square ~5%, KS on binned or discrete
    # data a little conservative), still no dataset alarm.
    reports, tested, rate = _false_alarms(profiles, windows, PAIRS * LARGE_WINDOW, SMALL_WINDOW)
    assert len(tested) == PAIRS * TESTED
    assert {c.method for c in tested} == {"ks", "chi2"}
    assert 0.01 <= rate <= 0.10  # p-value tests: alarms near their nominal 5%, not none
    assert sum(r.drifted for r in reports) <= 1


# -- 2. detection -------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [LARGE_WINDOW, SMALL_WINDOW])
def test_shifted_columns_are_flagged_and_stable_ones_are_not(
    churn_profile: Profile, drifted: dict[float, pd.DataFrame], rows: int
) -> None:
    columns = _by_column(compare(churn_profile, drifted[0.5].iloc[:rows]))
    for name in SHIFTED:
        assert columns[name].status == "drift", columns[name]
    for name in UNSHIFTED:
        assert columns[name].status == "ok", columns[name]


def test_a_strong_shift_drifts_the_dataset(
    churn_profile: Profile, drifted: dict[float, pd.DataFrame]
) -> None:
    report = compare(churn_profile, drifted[1.0])
    assert report.drifted
    assert report.share_drifted is not None and report.share_drifted >= 0.5
    assert set(SHIFTED) <= set(report.drifted_columns)
    assert not set(UNSHIFTED) & set(report.drifted_columns)
    assert report.metrics()["drift_detected"] == 1


# -- 3. agreement with scipy -------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.5, 1.0])
@pytest.mark.parametrize("column", ["monthly_charges", "total_charges", "avg_session_minutes"])
def test_wasserstein_matches_scipy_on_continuous_columns(
    reference: pd.DataFrame,
    churn_profile: Profile,
    drifted: dict[float, pd.DataFrame],
    column: str,
    drift: float,
) -> None:
    # 100 quantile bins: measured within 2.4% of the exact distance
    result = _by_column(compare(churn_profile, drifted[drift]))[column]
    ref = reference[column].dropna().to_numpy()
    cur = drifted[drift][column].dropna().to_numpy()
    assert result.method == "wasserstein"
    assert result.statistic == pytest.approx(wasserstein_distance(ref, cur) / np.std(ref), rel=0.05)


@pytest.mark.parametrize("shift", [0.2, 0.5, 1.0])
def test_wasserstein_matches_scipy_on_a_normal_shift(shift: float) -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(0, 1, 5000), rng.normal(shift, 1, 2000)
    result = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), "numeric")
    assert result.statistic == pytest.approx(wasserstein_distance(ref, cur) / np.std(ref), rel=0.05)


@pytest.mark.parametrize("column", ["tenure_months", "devices", "satisfaction_score"])
def test_wasserstein_is_exact_on_discrete_columns(
    reference: pd.DataFrame, churn_profile: Profile, drifted: dict[float, pd.DataFrame], column: str
) -> None:
    result = _by_column(compare(churn_profile, drifted[1.0]))[column]
    ref = reference[column].dropna().to_numpy()
    cur = drifted[1.0][column].dropna().to_numpy()
    expected = wasserstein_distance(ref, cur) / np.std(ref)
    assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_wasserstein_is_exact_on_integers_beyond_the_reference_range() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.integers(0, 10, 5000), rng.integers(3, 15, 2000)  # 10..14 never seen
    result = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), "numeric")
    expected = wasserstein_distance(ref, cur) / np.std(ref)
    assert result.statistic == pytest.approx(expected, rel=1e-9)


def _ks_d(result: ColumnDrift) -> float:
    return float(np.abs(np.cumsum(result.reference) - np.cumsum(result.current)).max())


@pytest.mark.parametrize(("shift", "drifts"), [(0.0, False), (0.7, True)])
def test_ks_agrees_with_scipy_on_small_continuous_samples(shift: float, drifts: bool) -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(0, 1, 800), rng.normal(shift, 1, 200)
    result = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), "numeric")
    scipy = ks_2samp(ref, cur)
    assert result.method == "ks"
    assert result.drifted is drifts
    assert bool(scipy.pvalue < 0.05) is drifts
    # D on 100 quantile bins (measured within 0.012 of the exact D over 200 random cases)
    assert _ks_d(result) == pytest.approx(scipy.statistic, abs=0.02)


@pytest.mark.parametrize(("low", "drifts"), [(0, False), (4, True)])
def test_ks_agrees_with_scipy_on_small_integer_samples(low: int, drifts: bool) -> None:
    rng = np.random.default_rng(8)
    ref, cur = rng.integers(0, 20, 800), rng.integers(low, 20, 200)
    result = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), "numeric")
    scipy = ks_2samp(ref, cur)
    assert result.method == "ks"
    assert result.drifted is drifts
    assert bool(scipy.pvalue < 0.05) is drifts
    assert _ks_d(result) == pytest.approx(scipy.statistic, abs=1e-12)  # one count per value


def _categories(rows: int, p: list[float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"c": rng.choice(["a", "b", "c", "d", "e"], rows, p=p)})


def _aligned_counts(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    labels = sorted(set(ref["c"]) | set(cur["c"]))
    r, c = ref["c"].value_counts(), cur["c"].value_counts()
    return (
        np.array([r.get(k, 0) for k in labels], dtype=float),
        np.array([c.get(k, 0) for k in labels], dtype=float),
    )


def test_jensen_shannon_matches_scipy() -> None:
    ref = _categories(5000, [0.4, 0.3, 0.2, 0.1, 0.0], seed=1)
    cur = _categories(2000, [0.25, 0.25, 0.2, 0.2, 0.1], seed=2)  # "e" is new
    result = _one(ref, cur, "categorical")
    r, c = _aligned_counts(ref, cur)
    assert result.method == "jensenshannon"
    assert result.statistic == pytest.approx(jensenshannon(r / r.sum(), c / c.sum()), abs=1e-12)
    assert result.drifted


@pytest.mark.parametrize("p", [[0.4, 0.3, 0.2, 0.1, 0.0], [0.25, 0.25, 0.2, 0.2, 0.1]])
def test_chi_square_matches_scipy(p: list[float]) -> None:
    ref = _categories(5000, [0.4, 0.3, 0.2, 0.1, 0.0], seed=1)
    cur = _categories(300, p, seed=3)
    result = _one(ref, cur, "categorical")
    table = np.vstack(_aligned_counts(ref, cur))
    table = table[:, table.sum(axis=0) > 0]
    expected = chi2_contingency(table, correction=False).pvalue
    assert result.method == "chi2"
    assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert result.drifted is bool(expected < 0.05)


def test_psi_on_categories_matches_a_hand_computation() -> None:
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pd.DataFrame({"c": ["a"] * 30 + ["b"] * 30 + ["c"] * 40})
    result = _one(ref, cur, "categorical", policy=DriftPolicy(categorical="psi"))
    # sum of (cur - ref) * ln(cur / ref): (-0.2)ln(0.6) + 0 + 0.2 ln(2) = 0.2 ln(10/3)
    assert result.method == "psi"
    assert result.statistic == pytest.approx(0.2 * math.log(10 / 3), rel=1e-9)
    assert result.drifted  # >= 0.2


def test_psi_on_numbers_uses_reference_deciles() -> None:
    ref = np.arange(1000.0)  # deciles of 100 values each
    cur = np.concatenate([np.arange(500.0)] * 3 + [np.arange(500.0, 1000.0)])
    result = _one(
        pd.DataFrame({"x": ref}),
        pd.DataFrame({"x": cur}),
        "numeric",
        policy=DriftPolicy(numeric="psi"),
    )
    # lower five deciles hold 0.15 each, upper five 0.05 each (reference: 0.1 everywhere)
    # 5 * 0.05 * ln(1.5) + 5 * (-0.05) * ln(0.5) = 0.25 ln(3)
    assert result.method == "psi"
    assert result.statistic == pytest.approx(0.25 * math.log(3), rel=1e-9)
    assert result.drifted


# -- 4. not computed, never drift, never a crash --------------------------------------------


def _not_computed(report: DriftReport) -> None:
    assert not report.drifted
    json.dumps(report.to_dict())  # and every view of it still renders
    report.table()
    report.metrics()


def test_an_empty_window_is_not_computed(churn_profile: Profile, windows: pd.DataFrame) -> None:
    report = compare(churn_profile, windows.iloc[:0])
    _not_computed(report)
    assert report.share_drifted is None
    assert report.n_current == 0
    for c in report.columns:
        assert c.drifted is None
        assert c.status.startswith("not computed" if c.kind != "datetime" else "not tested")


def test_a_window_without_any_columns_is_not_computed(churn_profile: Profile) -> None:
    report = compare(churn_profile, pd.DataFrame())
    _not_computed(report)
    assert {c.status for c in report.columns if c.kind != "datetime"} == {
        "not computed: the column is missing from the current data"
    }


def test_a_column_missing_from_the_window_is_not_computed(
    churn_profile: Profile, drifted: dict[float, pd.DataFrame]
) -> None:
    report = compare(churn_profile, drifted[1.0].drop(columns=["monthly_charges", "plan"]))
    columns = _by_column(report)
    for name in ("monthly_charges", "plan"):
        assert columns[name].drifted is None
        assert columns[name].method is None
        assert columns[name].status == "not computed: the column is missing from the current data"
    # the rest is still judged, and the missing columns do not count as tested
    assert columns["support_calls"].status == "drift"
    tested = [c for c in report.columns if c.drifted is not None]
    assert len(tested) == TESTED - 2
    assert report.share_drifted == pytest.approx(len(report.drifted_columns) / len(tested))


@pytest.mark.parametrize(("rows", "min_rows"), [(20, 30), (300, 500)])
def test_a_window_smaller_than_min_rows_is_not_computed(
    churn_profile: Profile, drifted: dict[float, pd.DataFrame], rows: int, min_rows: int
) -> None:
    policy = DriftPolicy.from_config({"min_rows": min_rows})
    report = compare(churn_profile, drifted[1.0].iloc[:rows], policy=policy)  # strongly drifted
    _not_computed(report)
    for c in report.columns:
        if c.kind != "datetime":
            assert c.drifted is None
            assert c.status.startswith("not computed: ")
            assert c.status.endswith(f"values in the window (at least {min_rows} needed)")


def test_an_all_missing_reference_column_is_not_computed(
    reference: pd.DataFrame, roles: dict[str, str], window: pd.DataFrame
) -> None:
    ref = reference.assign(satisfaction_score=np.nan, region=None)
    prof = Profile.from_dict(json.loads(json.dumps(profile(ref, roles).to_dict())))
    report = compare(prof, window)
    columns = _by_column(report)
    for name in ("satisfaction_score", "region"):
        assert columns[name].drifted is None
        assert columns[name].status == "not computed: the reference column has no values"
        assert columns[name].missing_reference == 1.0
    assert columns["monthly_charges"].status == "ok"
    _not_computed(report)


def test_dates_are_reported_as_not_tested(
    churn_profile: Profile, drifted: dict[float, pd.DataFrame]
) -> None:
    shifted = drifted[0.5].assign(signup_date=drifted[0.5]["signup_date"] + pd.Timedelta(days=3650))
    signup = _by_column(compare(churn_profile, shifted))["signup_date"]
    assert signup.kind == "datetime"
    assert signup.drifted is None
    assert signup.method is None
    assert signup.status.startswith("not tested")


# -- 5. missing values and unseen categories ---------------------------------------------------


def test_missing_values_are_reported_per_column(
    churn_profile: Profile, window: pd.DataFrame
) -> None:
    current = window.copy()
    current.loc[: LARGE_WINDOW // 2 - 1, "satisfaction_score"] = np.nan
    current["payment_method"] = pd.array([None] * LARGE_WINDOW, dtype="string")
    columns = _by_column(compare(churn_profile, current))

    satisfaction = columns["satisfaction_score"]
    assert satisfaction.missing_reference == pytest.approx(0.10, abs=0.02)  # the generator's 10%
    assert satisfaction.missing_current == pytest.approx(
        current["satisfaction_score"].isna().mean()
    )
    assert satisfaction.missing_current > 0.5
    assert satisfaction.n_current == current["satisfaction_score"].notna().sum()

    payment = columns["payment_method"]
    assert payment.missing_current == 1.0
    assert payment.drifted is None
    assert payment.status.startswith("not computed: 0 values in the window")


def test_an_unseen_category_is_reported(churn_profile: Profile, window: pd.DataFrame) -> None:
    current = window.copy()
    current["region"] = current["region"].astype(object)
    current.loc[:199, "region"] = "atlantis"  # 10% of the window, never seen in training
    region = _by_column(compare(churn_profile, current))["region"]
    assert region.unseen_share == pytest.approx(0.1)
    assert region.bins[-1] == "__unseen__"
    assert region.reference[-1] == 0.0
    assert region.current[-1] == pytest.approx(0.1)
    assert region.status == "drift"
    # and none where every category is known
    assert _by_column(compare(churn_profile, window))["region"].unseen_share == 0.0


# -- 6. the profile is stored and read back --------------------------------------------------


def test_a_profile_read_back_from_json_gives_the_same_report(
    reference: pd.DataFrame, roles: dict[str, str], drifted: dict[float, pd.DataFrame]
) -> None:
    rng = np.random.default_rng(0)
    prof = profile(reference, roles, predictions=rng.beta(2, 5, len(reference)))
    restored = Profile.from_dict(json.loads(json.dumps(prof.to_dict())))
    assert restored.to_dict() == prof.to_dict()

    current, scores = drifted[0.5], rng.beta(3, 4, LARGE_WINDOW)
    for policy in (DriftPolicy(), DriftPolicy(numeric="ks", categorical="psi")):
        before = compare(prof, current, policy=policy, predictions=scores)
        after = compare(restored, current, policy=policy, predictions=scores)
        assert after.to_dict() == before.to_dict()


# -- 7. the policy from env.yaml ---------------------------------------------------------------


def test_policy_defaults_when_not_configured() -> None:
    assert DriftPolicy.from_config(None) == DriftPolicy()
    assert DriftPolicy.from_config({}) == DriftPolicy()


def test_policy_rejects_an_unknown_key_by_name() -> None:
    with pytest.raises(ConfigError, match="wasserstien"):
        DriftPolicy.from_config({"wasserstien": 0.2})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"numeric": "t-test"}, r"monitor\.drift\.numeric is 't-test'"),
        ({"categorical": "ks"}, r"monitor\.drift\.categorical is 'ks'"),
    ],
)
def test_policy_rejects_an_unknown_method_by_name(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DriftPolicy.from_config(config)


def test_configured_methods_and_thresholds_are_honoured(
    churn_profile: Profile, window: pd.DataFrame
) -> None:
    policy = DriftPolicy.from_config({"numeric": "psi", "categorical": "chi2", "psi": 0.3})
    for c in compare(churn_profile, window, policy=policy).columns:
        if c.kind == "numeric":
            assert (c.method, c.threshold) == ("psi", 0.3)
        elif c.kind == "categorical":
            assert (c.method, c.threshold) == ("chi2", 0.05)
    # a stricter distance threshold turns the same small differences into alarms, unless
    # the significance guard sees them for the chance differences they are
    strict = DriftPolicy.from_config({"wasserstein": 0.001, "significance": False})
    assert _by_column(compare(churn_profile, window, policy=strict))["tenure_months"].drifted
    guarded = DriftPolicy.from_config({"wasserstein": 0.001})
    column = _by_column(compare(churn_profile, window, policy=guarded))["tenure_months"]
    assert column.statistic >= 0.001 and column.p_value >= 0.05 and not column.drifted


# -- 8. prediction drift ----------------------------------------------------------------------


def test_shifted_prediction_scores_are_flagged(
    reference: pd.DataFrame, roles: dict[str, str], window: pd.DataFrame
) -> None:
    rng = np.random.default_rng(1)
    prof = profile(reference, roles, predictions=rng.beta(2, 5, len(reference)))

    stable = compare(prof, window, predictions=rng.beta(2, 5, len(window)))
    assert stable.prediction is not None
    assert stable.prediction.kind == "numeric"
    assert stable.prediction.status == "ok"

    shifted = compare(prof, window, predictions=rng.beta(4, 3, len(window)))
    assert shifted.prediction is not None
    assert shifted.prediction.column == "prediction"
    assert shifted.prediction.method == "wasserstein"
    assert shifted.prediction.status == "drift"
    assert not shifted.drifted  # the inputs did not move: predictions are reported apart

    assert compare(prof, window).prediction is None  # no predictions given: nothing compared


def test_a_report_read_back_from_its_json_is_the_same_report(
    reference: pd.DataFrame, roles: dict[str, str], window: pd.DataFrame
) -> None:
    # The scoring report reads drift.json back to draw its tables and plots.
    rng = np.random.default_rng(2)
    prof = profile(reference, roles, predictions=rng.beta(2, 5, len(reference)))
    report = compare(prof, window, predictions=rng.beta(4, 3, len(window)))

    restored = DriftReport.from_dict(json.loads(json.dumps(report.to_dict())))

    assert restored.to_dict() == report.to_dict()
    assert restored.drifted_columns == report.drifted_columns
    pd.testing.assert_frame_equal(restored.table(), report.table())


def test_shifted_predicted_labels_are_flagged(
    reference: pd.DataFrame, roles: dict[str, str], window: pd.DataFrame
) -> None:
    rng = np.random.default_rng(2)
    prof = profile(reference, roles, predictions=rng.random(len(reference)) < 0.2)
    shifted = compare(prof, window, predictions=rng.random(len(window)) < 0.4)
    assert shifted.prediction is not None
    assert shifted.prediction.kind == "categorical"
    assert shifted.prediction.status == "drift"


# -- regressions: columns that used to fool the sketches --------------------------------


def _mostly_zero(rows: int, nonzero: float, rng: np.random.Generator) -> np.ndarray:
    values = np.zeros(rows)
    hit = rng.random(rows) < nonzero
    values[hit] = rng.uniform(1, 100, hit.sum()).round(2)
    return values


@pytest.mark.parametrize("rows", [SMALL_WINDOW, LARGE_WINDOW])
def test_a_shift_in_a_column_that_is_almost_always_zero_is_flagged(rows: int) -> None:
    rng = np.random.default_rng(0)
    ref = _mostly_zero(50_000, 0.005, rng)  # 0.5% non-zero: >101 distinct values
    cur = _mostly_zero(rows, 0.5, rng)  # half non-zero: scipy's KS p < 1e-50, W/std ~ 6
    result = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), "numeric")
    assert result.status == "drift"


def test_integer_coded_categories_still_match_when_the_window_has_a_missing_value() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"store": rng.integers(1, 6, 5000)})
    cur = pd.DataFrame({"store": rng.integers(1, 6, 2000).astype(float)})
    cur.loc[0, "store"] = np.nan  # what read_csv / a JSON batch gives with one gap
    result = _one(ref, cur, "categorical")
    assert result.unseen_share == 0.0
    assert result.status == "ok"


def test_a_stable_high_cardinality_column_is_not_flagged() -> None:
    rng = np.random.default_rng(0)
    cities = np.array([f"city{i}" for i in range(200)])
    ref = pd.DataFrame({"city": rng.choice(cities, 5000)})
    cur = pd.DataFrame({"city": rng.choice(cities, 2000)})  # the very same distribution
    result = _one(ref, cur, "high_cardinality")
    assert result.status == "ok"


# -- 8. a window counted in parts ----------------------------------------------------------------


def test_counts_of_parts_merge_into_the_report_of_the_whole(
    reference: pd.DataFrame, roles: dict[str, str], drifted: dict[float, pd.DataFrame]
) -> None:
    """What a file counted a part at a time (on a cluster or in chunks) is judged on."""
    rng = np.random.default_rng(3)
    prof = profile(reference, roles, predictions=rng.beta(2, 5, len(reference)))
    current, scores = drifted[1.0], rng.beta(3, 4, LARGE_WINDOW)
    whole = compare(prof, current, predictions=scores).to_dict()
    cuts = [0, 1, 300, 301, 1200, LARGE_WINDOW]  # an empty part, a single row, uneven parts
    parts = [
        count(prof, current.iloc[a:b], predictions=scores[a:b]) for a, b in itertools.pairwise(cuts)
    ]
    merged = functools.reduce(WindowCounts.merge, parts)
    # through JSON, as the monitoring pipeline hands the counts from step to step
    merged = WindowCounts.from_dict(json.loads(json.dumps(merged.to_dict())))
    in_parts = compare_counts(prof, merged).to_dict()

    assert merged.rows == LARGE_WINDOW and in_parts["drifted"] and whole["drifted"]
    for a, b in zip(
        whole["columns"] + [whole["prediction"]],
        in_parts["columns"] + [in_parts["prediction"]],
        strict=True,
    ):
        # counts add exactly; only the Wasserstein tail sums are added in another order
        assert (a["status"], a["method"], a["n_current"], a["current"]) == (
            b["status"],
            b["method"],
            b["n_current"],
            b["current"],
        )
        if a["statistic"] is None:  # dates: not tested
            assert b["statistic"] is None
        else:
            assert b["statistic"] == pytest.approx(a["statistic"], rel=1e-12, abs=1e-15)
    again = functools.reduce(WindowCounts.merge, parts)
    assert compare_counts(prof, again).to_dict() == compare_counts(prof, merged).to_dict()


def test_a_column_missing_from_a_part_is_missing_from_the_window(
    churn_profile: Profile, window: pd.DataFrame
) -> None:
    first = count(churn_profile, window.iloc[:1000])
    second = count(churn_profile, window.iloc[1000:].drop(columns="region"))
    report = compare_counts(churn_profile, first.merge(second))
    assert _by_column(report)["region"].status == (
        "not computed: the column is missing from the current data"
    )


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([50, 30, 20], [48, 33, 19]),
        ([1_000_000, 3, 0, 70], [999_000, 0, 5, 80]),
        ([7, 0], [0, 9]),
        ([10, 20, 30, 40], [20, 40, 60, 80]),  # the same shares: p = 1
        ([5], [6]),  # one category: nothing to test
    ],
)
def test_the_p_values_are_scipy_stats_own(ref, cur):
    """The drift's tests take their p-values from scipy.special (scipy.stats costs half
    a second to import): the same floats as scipy.stats' chi2_contingency and kstwobign."""
    from scipy.stats import kstwobign

    from nbops.monitoring.drift import _chi2_pvalue, _ks_pvalue

    ref, cur = np.array(ref, dtype=float), np.array(cur, dtype=float)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    expected = (
        1.0 if table.shape[1] < 2 else float(chi2_contingency(table, correction=False).pvalue)
    )
    assert _chi2_pvalue(ref, cur) == expected
    for d, n, m in [(0.0, 10, 10), (0.03, 5_000, 100_000), (0.4, 40, 60), (1.0, 3, 3)]:
        assert _ks_pvalue(d, n, m) == float(kstwobign.sf(d * np.sqrt(n * m / (n + m))))
