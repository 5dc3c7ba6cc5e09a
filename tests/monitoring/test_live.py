"""Monitoring logic: windows, logged requests as rows, live metrics from feedback, alarms."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from nbops.errors import ConfigError
from nbops.monitoring.drift import ColumnDrift, DriftPolicy, DriftReport, compare, profile
from nbops.monitoring.live import (
    MonitorPolicy,
    breaches,
    labelled,
    live_metrics,
    metric_interval,
    requests_to_rows,
)

PREDICTION_COLUMNS = ["request_id", "row", "ts", "model_version", "route", "prediction", "score"]
DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def logged(*requests: dict) -> pd.DataFrame:
    """Rows as read from the prediction log: inputs and outputs are JSON text."""
    rows = [
        {
            "request_id": r.get("request_id", f"r{i}"),
            "ts": r.get("ts", T0 + i),
            "model_version": r.get("model_version", "3"),
            "route": r.get("route", "champion"),
            "inputs": json.dumps(r["inputs"]),
            "outputs": json.dumps(r["outputs"]),
        }
        for i, r in enumerate(requests)
    ]
    return pd.DataFrame(
        rows, columns=["request_id", "ts", "model_version", "route", "inputs", "outputs"]
    )


def feedback(*items: tuple[str, float, object]) -> pd.DataFrame:
    """Rows as read from the feedback table: (request_id, ts, labels)."""
    return pd.DataFrame(
        [{"request_id": r, "ts": ts, "labels": json.dumps(labels)} for r, ts, labels in items],
        columns=["request_id", "ts", "labels"],
    )


def predictions(*rows: tuple[str, int, object]) -> pd.DataFrame:
    """Predicted rows (request_id, row, prediction), as requests_to_rows gives them."""
    return pd.DataFrame(
        [
            {
                "request_id": r,
                "row": i,
                "ts": T0,
                "model_version": "3",
                "route": "champion",
                "prediction": p,
                "score": math.nan,
            }
            for r, i, p in rows
        ],
        columns=PREDICTION_COLUMNS,
    )


def binary_scored(n: int, *, seed: int = 0, separation: float = 1.0) -> pd.DataFrame:
    """Labelled predictions of a binary classifier ("yes" is positive) spread over 3 days."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    score = 1 / (1 + np.exp(-(separation * np.where(truth, 1.0, -1.0) + rng.normal(0, 1, n))))
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row": 0,
            "ts": T0 + np.linspace(0, 3 * DAY - 1, n),
            "model_version": "3",
            "route": "champion",
            "prediction": np.where(score >= 0.5, "yes", "no"),
            "score": score,
            "label": np.where(truth, "yes", "no"),
        }
    )


def regression_scored(n: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.normal(50, 10, n)
    predicted = truth + rng.normal(0, 3, n)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row": 0,
            "ts": T0 + np.linspace(0, 2 * DAY - 1, n),
            "prediction": predicted,
            "score": predicted,
            "label": truth,
        }
    )


# -- MonitorPolicy ----------------------------------------------------------------------


@pytest.mark.parametrize("config", [None, {}, {"drift": None, "alerts": None}])
def test_monitor_policy_defaults(config: dict | None) -> None:
    policy = MonitorPolicy.from_config(config)
    assert policy == MonitorPolicy()
    assert (policy.max_drift_share, policy.prediction_drift) == (0.3, True)
    assert (policy.max_metric_drop, policy.min_labels) == (0.05, 30)
    assert policy.drift == DriftPolicy()


def test_monitor_policy_takes_the_alerts_from_env_yaml() -> None:
    policy = MonitorPolicy.from_config(
        {"alerts": {"max_drift_share": 0.5, "prediction_drift": False, "min_labels": 100}}
    )
    assert policy.max_drift_share == 0.5
    assert policy.prediction_drift is False
    assert policy.min_labels == 100
    assert policy.max_metric_drop == 0.05  # not given: the default


def test_an_unknown_alert_key_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"monitor\.alerts: max_drift\b.*Known: max_drift_share"):
        MonitorPolicy.from_config({"alerts": {"max_drift": 0.2}})


def test_the_drift_section_goes_to_the_drift_policy() -> None:
    policy = MonitorPolicy.from_config({"drift": {"numeric": "psi", "min_rows": 50}})
    assert policy.drift == DriftPolicy(numeric="psi", min_rows=50)
    with pytest.raises(ConfigError, match=r"monitor\.drift: ks_pvalues"):
        MonitorPolicy.from_config({"drift": {"ks_pvalues": 0.01}})


# -- requests_to_rows -----------------------------------------------------------------


def test_each_predicted_row_of_both_body_shapes_becomes_a_row() -> None:
    log = logged(
        {
            "request_id": "a",
            "ts": T0 + 1,
            "inputs": {"records": [{"x": 1, "c": "u"}, {"x": 2, "c": "v"}]},
            "outputs": {
                "predictions": ["yes", "no"],
                "probabilities": [{"no": 0.2, "yes": 0.8}, {"no": 0.9, "yes": 0.1}],
            },
        },
        {
            "request_id": "b",
            "ts": T0 + 2,
            "model_version": "4",
            "route": "challenger",
            "inputs": {"columns": {"x": [3], "c": ["w"]}},
            "outputs": {"predictions": ["yes"], "probabilities": [{"no": 0.35, "yes": 0.65}]},
        },
    )
    inputs, rows = requests_to_rows(log, positive_class="yes")
    pd.testing.assert_frame_equal(inputs, pd.DataFrame({"x": [1, 2, 3], "c": ["u", "v", "w"]}))
    assert list(rows.columns) == PREDICTION_COLUMNS
    assert rows.to_dict(orient="records") == [
        {
            "request_id": "a",
            "row": 0,
            "ts": T0 + 1,
            "model_version": "3",
            "route": "champion",
            "prediction": "yes",
            "score": 0.8,
        },
        {
            "request_id": "a",
            "row": 1,
            "ts": T0 + 1,
            "model_version": "3",
            "route": "champion",
            "prediction": "no",
            "score": 0.1,
        },
        {
            "request_id": "b",
            "row": 0,
            "ts": T0 + 2,
            "model_version": "4",
            "route": "challenger",
            "prediction": "yes",
            "score": 0.65,
        },
    ]


def test_the_score_of_integer_classes_is_found_by_their_text() -> None:
    # the server keys probabilities by str(class); positive_class may be given either way
    log = logged(
        {
            "inputs": {"records": [{"x": 1}]},
            "outputs": {"predictions": [1], "probabilities": [{"0": 0.3, "1": 0.7}]},
        }
    )
    assert requests_to_rows(log, positive_class="1")[1]["score"].tolist() == [0.7]
    assert requests_to_rows(log, positive_class=1)[1]["score"].tolist() == [0.7]  # type: ignore[arg-type]


def test_a_regressor_scores_its_predicted_value() -> None:
    log = logged(
        {"inputs": {"records": [{"x": 1}, {"x": 2}]}, "outputs": {"predictions": [1.5, 7]}}
    )
    _, rows = requests_to_rows(log)
    assert rows["prediction"].tolist() == [1.5, 7]
    assert rows["score"].tolist() == [1.5, 7.0]


@pytest.mark.parametrize(
    ("outputs", "positive_class"),
    [
        # multiclass: no single positive class
        ({"predictions": ["a"], "probabilities": [{"a": 0.5, "b": 0.3, "c": 0.2}]}, None),
        # a positive class the model does not have
        ({"predictions": ["yes"], "probabilities": [{"no": 0.4, "yes": 0.6}]}, "maybe"),
        # labels without probabilities are not scores, even booleans
        ({"predictions": [True]}, None),
        ({"predictions": ["yes"]}, "yes"),
    ],
)
def test_no_score_when_there_is_no_positive_class_probability(
    outputs: dict, positive_class: str | None
) -> None:
    _, rows = requests_to_rows(
        logged({"inputs": {"records": [{"x": 1}]}, "outputs": outputs}),
        positive_class=positive_class,
    )
    assert len(rows) == 1
    assert math.isnan(rows["score"].iloc[0])


@pytest.mark.parametrize(
    "body",
    [{}, [], None, "text", {"records": "x"}, {"records": []}, {"columns": {}}, {"columns": [1]}],
)
def test_a_malformed_or_empty_body_gives_no_rows(body: object) -> None:
    good = {"inputs": {"records": [{"x": 1}]}, "outputs": {"predictions": [0.5]}}
    bad = {"inputs": body, "outputs": {"predictions": [1.0]}}
    inputs, rows = requests_to_rows(logged(bad, good))
    assert inputs.to_dict(orient="records") == [{"x": 1}]
    assert rows["request_id"].tolist() == ["r1"]
    inputs, rows = requests_to_rows(logged(bad, {**bad, "outputs": {}}))
    assert inputs.empty and rows.empty
    assert list(rows.columns) == PREDICTION_COLUMNS


def test_an_empty_log_gives_empty_frames_with_the_prediction_columns() -> None:
    inputs, rows = requests_to_rows(logged(), positive_class="yes")
    assert inputs.empty and rows.empty
    assert list(rows.columns) == PREDICTION_COLUMNS


def test_more_rows_than_predictions_leaves_the_extra_rows_unpredicted() -> None:
    log = logged({"inputs": {"records": [{"x": 1}, {"x": 2}]}, "outputs": {"predictions": [4.0]}})
    _, rows = requests_to_rows(log)
    assert rows["prediction"].iloc[0] == 4.0 and pd.isna(rows["prediction"].iloc[1])
    assert rows["score"].iloc[0] == 4.0 and math.isnan(rows["score"].iloc[1])


def test_a_ragged_columns_body_gives_no_rows_rather_than_crashing() -> None:
    ragged = {"inputs": {"columns": {"x": [1, 2], "y": [1]}}, "outputs": {"predictions": [1.0]}}
    inputs, rows = requests_to_rows(logged(ragged))
    assert inputs.empty and rows.empty


# -- labelled -------------------------------------------------------------------------


def test_feedback_labels_join_the_predicted_rows_by_request_and_row() -> None:
    rows = predictions(("a", 0, "yes"), ("a", 1, "no"), ("b", 0, "no"), ("c", 0, "yes"))
    joined = labelled(
        rows,
        feedback(
            ("a", T0 + 10, ["no", "no"]),
            ("b", T0 + 20, ["no"]),
            ("zzz", T0 + 30, ["yes"]),  # a request outside the window
        ),
    )
    assert joined[["request_id", "row", "prediction", "label"]].values.tolist() == [
        ["a", 0, "yes", "no"],
        ["a", 1, "no", "no"],
        ["b", 0, "no", "no"],
    ]
    assert set(PREDICTION_COLUMNS) <= set(joined.columns)


def test_the_latest_feedback_for_a_request_wins() -> None:
    rows = predictions(("a", 0, "yes"), ("a", 1, "no"))
    # listed out of order: the timestamp decides, not the order of the rows
    later_first = feedback(("a", T0 + 50, ["no", "yes"]), ("a", T0 + 10, ["yes", "yes"]))
    assert labelled(rows, later_first)["label"].tolist() == ["no", "yes"]


def test_a_label_per_row_only_for_the_rows_it_covers() -> None:
    rows = predictions(("a", 0, 1.0), ("a", 1, 2.0), ("b", 0, 3.0))
    joined = labelled(rows, feedback(("a", T0, [1.5]), ("b", T0, 2.5)))  # short list; a scalar
    assert joined[["request_id", "row", "label"]].values.tolist() == [["a", 0, 1.5], ["b", 0, 2.5]]
    longer = labelled(rows, feedback(("b", T0, [2.5, 9, 9])))  # extra labels have no row
    assert longer[["request_id", "row", "label"]].values.tolist() == [["b", 0, 2.5]]


def test_no_feedback_or_no_predictions_give_an_empty_frame_with_a_label_column() -> None:
    rows = predictions(("a", 0, "yes"))
    for joined in (
        labelled(rows, feedback()),
        labelled(predictions(), feedback(("a", T0, ["yes"]))),
        labelled(predictions(), feedback()),
    ):
        assert joined.empty
        assert "label" in joined.columns
        assert set(PREDICTION_COLUMNS) <= set(joined.columns)


def test_empty_label_lists_label_nothing_rather_than_crashing() -> None:
    joined = labelled(predictions(("a", 0, "yes")), feedback(("a", T0, [])))
    assert joined.empty and "label" in joined.columns


def test_a_null_label_is_not_a_label() -> None:
    rows = predictions(("a", 0, "yes"), ("a", 1, "no"))
    joined = labelled(rows, feedback(("a", T0, ["yes", None])))
    assert joined[["request_id", "row", "label"]].values.tolist() == [["a", 0, "yes"]]


# -- live_metrics ---------------------------------------------------------------------


def test_live_classification_metrics_agree_with_scikit_learn() -> None:
    scored = binary_scored(300)
    live, by_day = live_metrics(scored, task="classification", positive_class="yes")
    truth = scored["label"] == "yes"
    assert live["accuracy"] == pytest.approx(
        skm.accuracy_score(scored["label"], scored["prediction"])
    )
    assert live["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, scored["score"]))
    assert live["log_loss"] == pytest.approx(skm.log_loss(truth, scored["score"]))
    assert live["rows"] == 300
    assert 0.6 < live["roc_auc"] < 1  # the data is what the test thinks it is

    assert by_day["period"].tolist() == list(pd.to_datetime([T0, T0 + DAY, T0 + 2 * DAY], unit="s"))
    assert by_day["rows"].sum() == 300
    first = scored[scored["ts"] < T0 + DAY]
    assert by_day["rows"].iloc[0] == len(first)
    assert by_day["roc_auc"].iloc[0] == pytest.approx(
        skm.roc_auc_score(first["label"] == "yes", first["score"])
    )


def test_labels_and_predictions_compare_as_text() -> None:
    # the window notebook stores both as text; feedback may send 1 for the class "1"
    scored = pd.DataFrame(
        {"ts": T0, "prediction": [1, 0, 1, 1], "label": ["1", "0", "0", "1"], "score": 0.5}
    )
    live, _ = live_metrics(scored, task="classification")
    assert live["accuracy"] == 0.75


def test_without_scores_only_accuracy_is_reported() -> None:
    scored = binary_scored(50).assign(score=math.nan)  # multiclass: no positive class score
    live, _ = live_metrics(scored, task="classification", positive_class="yes")
    assert set(live) == {"accuracy", "rows"}
    live, _ = live_metrics(binary_scored(50), task="classification")  # no positive class
    assert set(live) == {"accuracy", "rows"}


def test_a_window_with_one_class_only_has_no_roc_auc_rather_than_an_error() -> None:
    scored = binary_scored(100)
    scored = scored[scored["label"] == "no"]
    live, _ = live_metrics(scored, task="classification", positive_class="yes")
    assert set(live) == {"accuracy", "rows"}


def test_live_regression_metrics_agree_with_scikit_learn() -> None:
    scored = regression_scored(200)
    # the window notebook stores labels as text
    live, by_day = live_metrics(scored.astype({"label": str}), task="regression")
    assert live["rmse"] == pytest.approx(
        math.sqrt(skm.mean_squared_error(scored["label"], scored["prediction"]))
    )
    assert live["mae"] == pytest.approx(
        skm.mean_absolute_error(scored["label"], scored["prediction"])
    )
    assert live["rows"] == 200
    assert len(by_day) == 2 and by_day["rows"].sum() == 200
    assert {"period", "rows", "rmse", "mae"} <= set(by_day.columns)


def test_no_labelled_rows_give_no_metrics() -> None:
    live, by_day = live_metrics(binary_scored(0), task="classification", positive_class="yes")
    assert live == {}
    assert by_day.empty and list(by_day.columns) == ["period", "rows"]


# -- metric_interval ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "task", "scored"),
    [
        ("roc_auc", "classification", binary_scored(300)),
        ("log_loss", "classification", binary_scored(300)),
        ("accuracy", "classification", binary_scored(300)),
        ("rmse", "regression", regression_scored(300)),
        ("mae", "regression", regression_scored(300)),
    ],
)
def test_the_interval_contains_the_live_metric(metric: str, task: str, scored) -> None:
    live, _ = live_metrics(scored, task=task, positive_class="yes")
    interval = metric_interval(scored, metric, task=task, positive_class="yes", n=200)
    assert interval is not None
    low, high = interval
    assert low < live[metric] < high


def test_more_labelled_rows_give_a_narrower_interval() -> None:
    small = metric_interval(
        binary_scored(100), "roc_auc", task="classification", positive_class="yes", n=200
    )
    large = metric_interval(
        binary_scored(2000), "roc_auc", task="classification", positive_class="yes", n=200
    )
    assert small is not None and large is not None
    assert large[1] - large[0] < (small[1] - small[0]) / 2


def test_the_interval_is_the_same_for_the_same_seed() -> None:
    scored = binary_scored(200)
    first = metric_interval(scored, "roc_auc", task="classification", positive_class="yes", n=100)
    again = metric_interval(scored, "roc_auc", task="classification", positive_class="yes", n=100)
    other = metric_interval(
        scored, "roc_auc", task="classification", positive_class="yes", n=100, seed=1
    )
    assert first == again
    assert other != first


@pytest.mark.parametrize(
    ("scored", "metric", "task", "positive_class"),
    [
        (binary_scored(0), "accuracy", "classification", "yes"),  # no labelled rows
        (binary_scored(50).assign(score=math.nan), "roc_auc", "classification", "yes"),
        (binary_scored(50), "roc_auc", "classification", None),  # no positive class
        (binary_scored(50), "f1", "classification", "yes"),  # not a live metric
        (regression_scored(50), "r2", "regression", None),
        (binary_scored(100).query("label == 'no'"), "roc_auc", "classification", "yes"),
    ],
)
def test_no_interval_when_the_metric_cannot_be_computed(
    scored: pd.DataFrame, metric: str, task: str, positive_class: str | None
) -> None:
    assert metric_interval(scored, metric, task=task, positive_class=positive_class, n=50) is None


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_the_interval_agrees_with_a_scikit_learn_bootstrap(metric: str) -> None:
    scored = binary_scored(400)
    scored["score"] = scored["score"].round(1)  # many ties: the rank formula must handle them
    n = 400
    interval = metric_interval(scored, metric, task="classification", positive_class="yes", n=n)
    assert interval is not None

    truth = (scored["label"] == "yes").to_numpy()
    score = scored["score"].to_numpy()
    rng = np.random.default_rng(12345)  # a different seed: the bounds agree up to noise
    values = []
    for _ in range(n):
        i = rng.integers(0, len(scored), len(scored))
        if metric == "roc_auc":
            values.append(skm.roc_auc_score(truth[i], score[i]))
        else:
            values.append(skm.log_loss(truth[i], score[i].clip(1e-15, 1 - 1e-15), labels=[0, 1]))
    expected = np.percentile(values, [2.5, 97.5])
    assert interval == pytest.approx(tuple(expected), abs=0.02)


# -- breaches -------------------------------------------------------------------------


def column(name: str, drifted: bool | None) -> ColumnDrift:
    if drifted is None:
        return ColumnDrift(name, "numeric", None, None, None, None, "not computed: 3 values")
    return ColumnDrift(
        name,
        "numeric",
        "ks",
        0.001 if drifted else 0.5,
        0.05,
        drifted,
        "drift" if drifted else "ok",
    )


def report(columns: list[ColumnDrift], prediction: ColumnDrift | None = None) -> DriftReport:
    tested = [c for c in columns if c.drifted is not None]
    share = sum(bool(c.drifted) for c in tested) / len(tested) if tested else None
    return DriftReport(
        columns, prediction, share, share is not None and share >= 0.5, 500, DriftPolicy()
    )


def test_a_drift_share_at_the_limit_raises_one_alarm_naming_the_columns() -> None:
    columns = [column(f"c{i}", i in (2, 5, 7)) for i in range(10)] + [column("late", None)]
    reasons = breaches(report(columns), policy=MonitorPolicy())
    assert len(reasons) == 1
    assert reasons[0].startswith("3 of 10 input columns drifted (30% ≥ 30%)")
    assert reasons[0].endswith(": c2, c5, c7")


def test_a_drift_share_below_the_limit_is_all_clear() -> None:
    columns = [column(f"c{i}", i in (2, 5)) for i in range(10)]
    assert breaches(report(columns), policy=MonitorPolicy()) == []
    assert breaches(report([column("late", None)]), policy=MonitorPolicy()) == []  # nothing tested


def test_drift_found_by_compare_on_real_frames_raises_the_alarm() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 500), "c": rng.choice(["a", "b"], 500)})
    current = pd.DataFrame({"x": rng.normal(3, 1, 200), "c": rng.choice(["a", "b"], 200)})
    found = compare(profile(reference, {"x": "numeric", "c": "categorical"}), current)
    assert found.drifted_columns == ["x"]
    reasons = breaches(found, policy=MonitorPolicy())
    assert len(reasons) == 1 and "1 of 2 input columns drifted" in reasons[0]
    assert reasons[0].endswith(": x")
    same = compare(profile(reference, {"x": "numeric", "c": "categorical"}), reference[:200])
    assert breaches(same, policy=MonitorPolicy()) == []


def test_prediction_drift_alarms_only_when_the_policy_asks() -> None:
    drifted = report([column("c0", False)], prediction=column("prediction", True))
    reasons = breaches(drifted, policy=MonitorPolicy())
    assert reasons == ["the predictions drifted (ks 0.001)"]
    assert breaches(drifted, policy=MonitorPolicy(prediction_drift=False)) == []
    steady = report([column("c0", False)], prediction=column("prediction", False))
    assert breaches(steady, policy=MonitorPolicy()) == []


def metric_alarm(
    metric: str, training: float, live: float, interval: tuple[float, float], rows: int = 100
) -> list[str]:
    return breaches(
        report([column("c0", False)]),
        policy=MonitorPolicy(),  # max_metric_drop 0.05, min_labels 30
        live={metric: live, "rows": float(rows)},
        training={metric: training},
        primary_metric=metric,
        interval=interval,
    )


def test_a_metric_alarm_needs_the_whole_interval_below_the_limit() -> None:
    # training roc_auc 0.80, allowed drop 0.05: the limit is 0.75
    reasons = metric_alarm("roc_auc", 0.80, 0.70, (0.65, 0.74))
    assert len(reasons) == 1
    assert reasons[0].startswith("live roc_auc 0.7000 (95% interval 0.6500–0.7400) is worse than")
    assert "0.7500, the training value 0.8000" in reasons[0]
    # the same point estimate with an interval reaching the limit: sampling noise, no alarm
    assert metric_alarm("roc_auc", 0.80, 0.70, (0.62, 0.76)) == []
    assert metric_alarm("accuracy", 0.90, 0.88, (0.86, 0.90)) == []  # within the allowed drop


@pytest.mark.parametrize("metric", ["rmse", "mae", "log_loss"])
def test_for_errors_the_alarm_needs_the_whole_interval_above_the_limit(metric: str) -> None:
    # training 0.40, allowed rise 0.05: the limit is 0.45
    reasons = metric_alarm(metric, 0.40, 0.50, (0.46, 0.55))
    assert len(reasons) == 1 and reasons[0].startswith(f"live {metric} 0.5000")
    assert metric_alarm(metric, 0.40, 0.50, (0.44, 0.55)) == []  # reaches below the limit
    assert metric_alarm(metric, 0.40, 0.30, (0.25, 0.35)) == []  # better than at training


def test_too_few_labels_raise_no_metric_alarm() -> None:
    assert metric_alarm("roc_auc", 0.80, 0.50, (0.40, 0.60), rows=29) == []
    assert len(metric_alarm("roc_auc", 0.80, 0.50, (0.40, 0.60), rows=30)) == 1


def test_no_metric_alarm_without_a_comparable_metric() -> None:
    quiet = report([column("c0", False)])
    policy = MonitorPolicy()
    live = {"roc_auc": 0.5, "rows": 100.0}
    for kwargs in (
        {"live": live, "training": {"accuracy": 0.9}, "primary_metric": "roc_auc"},
        {"live": live, "training": {"roc_auc": 0.9}, "primary_metric": "pr_auc"},
        {"live": live, "training": {"roc_auc": 0.9}, "primary_metric": None},
        {"live": {}, "training": {"roc_auc": 0.9}, "primary_metric": "roc_auc"},
        {"live": None, "training": None, "primary_metric": "roc_auc"},
    ):
        assert breaches(quiet, policy=policy, interval=(0.4, 0.6), **kwargs) == []


def test_every_crossed_threshold_gives_its_own_reason() -> None:
    columns = [column("a", True), column("b", False)]
    reasons = breaches(
        report(columns, prediction=column("prediction", True)),
        policy=MonitorPolicy(),
        live={"roc_auc": 0.6, "rows": 500.0},
        training={"roc_auc": 0.85},
        primary_metric="roc_auc",
        interval=(0.55, 0.65),
    )
    assert [r.split(" ")[0:2] for r in reasons] == [
        ["1", "of"],
        ["the", "predictions"],
        ["live", "roc_auc"],
    ]
