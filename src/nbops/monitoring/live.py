"""Monitoring logic: windows of served traffic, live metrics from feedback, and alarms.

The monitoring pipeline (``pipeline.monitor.yaml``, run by ``nbops monitor``) reads a
window of the prediction log, or a batch file, and compares it with the reference
profile registered with the serving model (see :mod:`nbops.monitoring.drift`). This module holds
the parts worth testing on their own: turning logged requests into rows, scoring labels
that came back through ``/feedback``, and deciding whether a threshold was crossed
(``parse_window``, named here too, lives in :mod:`nbops.monitoring.windows`).

Pure: pandas, numpy and scikit-learn metrics; the log is read by
:mod:`nbops.serving.log`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nbops.errors import ConfigError
from nbops.modeling.metrics import GREATER_IS_BETTER
from nbops.monitoring.drift import DriftPolicy, DriftReport
from nbops.monitoring.windows import parse_window

__all__ = [
    "MonitorPolicy",
    "breaches",
    "live_metrics",
    "metric_interval",
    "parse_window",
    "requests_to_rows",
]


@dataclass(frozen=True)
class MonitorPolicy:
    """When monitoring raises the alarm (env.yaml ``monitor``)."""

    drift: DriftPolicy = field(default_factory=DriftPolicy)
    #: alarm when at least this share of the tested input columns drifts
    max_drift_share: float = 0.3
    #: alarm when the distribution of predictions drifts
    prediction_drift: bool = True
    #: alarm when the live primary metric falls this far below the training evaluation
    max_metric_drop: float = 0.05
    #: live metrics need at least this many labelled rows
    min_labels: int = 30

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> MonitorPolicy:
        config = dict(config or {})
        alerts = dict(config.get("alerts") or {})
        known = {"max_drift_share", "prediction_drift", "max_metric_drop", "min_labels"}
        unknown = sorted(set(alerts) - known)
        if unknown:
            raise ConfigError(
                f"Unknown key(s) in env.yaml's monitor.alerts: {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        return cls(drift=DriftPolicy.from_config(config.get("drift")), **alerts)


# -- logged requests → rows ------------------------------------------------------------


def requests_to_rows(
    logged: pd.DataFrame, *, positive_class: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Logged requests (columns ``request_id, ts, model_version, route, inputs, outputs``,
    the last two JSON text) → (inputs, one row per predicted row; predictions with
    ``request_id, row, ts, model_version, route, prediction, score``).

    ``score`` is the probability of ``positive_class`` for binary classifiers, the
    predicted value for regressors, and NaN otherwise.
    """
    inputs: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    for request in logged.itertuples(index=False):
        body = json.loads(request.inputs)
        outputs = json.loads(request.outputs)
        outputs = outputs if isinstance(outputs, dict) else {}
        records = _records(body)
        labels = outputs.get("predictions") or []
        probabilities = outputs.get("probabilities") or []
        for i, record in enumerate(records):
            inputs.append(record)
            label = labels[i] if i < len(labels) else None
            if probabilities and positive_class is not None and i < len(probabilities):
                score = probabilities[i].get(str(positive_class), math.nan)
            elif (
                not probabilities
                and isinstance(label, (int, float))
                and not isinstance(label, bool)
            ):
                score = float(label)
            else:
                score = math.nan
            predictions.append(
                {
                    "request_id": request.request_id,
                    "row": i,
                    "ts": request.ts,
                    "model_version": request.model_version,
                    "route": request.route,
                    "prediction": label,
                    "score": score,
                }
            )
    return pd.DataFrame(inputs), pd.DataFrame(
        predictions,
        columns=["request_id", "row", "ts", "model_version", "route", "prediction", "score"],
    )


def _records(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return body["records"]
    if isinstance(body, dict) and isinstance(body.get("columns"), dict):
        columns = body["columns"]
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths:
            return []  # not what /predict accepts: nothing to monitor in it
        return [{k: v[i] for k, v in columns.items()} for i in range(lengths.pop())]
    return []


def labelled(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Predictions joined with the labels sent to ``/feedback`` (one list per request,
    one label per row; the latest feedback for a request wins)."""
    if feedback.empty or predictions.empty:
        return predictions.assign(label=pd.Series(dtype=object)).iloc[0:0]
    rows = []
    latest = feedback.sort_values("ts").drop_duplicates("request_id", keep="last")
    for item in latest.itertuples(index=False):
        labels = json.loads(item.labels)
        labels = labels if isinstance(labels, list) else [labels]
        # a null is an outcome not known yet, not a label
        rows += [
            {"request_id": item.request_id, "row": i, "label": v}
            for i, v in enumerate(labels)
            if v is not None
        ]
    known = pd.DataFrame(rows, columns=["request_id", "row", "label"])
    return predictions.merge(known, on=["request_id", "row"], how="inner")


# -- live metrics ---------------------------------------------------------------------


def live_metrics(
    scored: pd.DataFrame, *, task: str, positive_class: Any = None, freq: str = "D"
) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics of labelled predictions overall and per period (``ts`` in seconds).

    Classification: accuracy, and ROC AUC and log loss where scores exist (binary);
    regression: RMSE and MAE. Returns (overall, per-period table with ``rows``).
    """
    if scored.empty:
        return {}, pd.DataFrame(columns=["period", "rows"])
    periods = pd.to_datetime(scored["ts"], unit="s").dt.floor(freq)
    table = [
        {"period": period, "rows": len(group), **_metrics(group, task, positive_class)}
        for period, group in scored.groupby(periods)
    ]
    return _metrics(scored, task, positive_class) | {"rows": float(len(scored))}, pd.DataFrame(
        table
    )


def metric_interval(
    scored: pd.DataFrame,
    metric: str,
    *,
    task: str,
    positive_class: Any = None,
    n: int = 400,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a live metric over the labelled rows: how far
    the live figure can be from the truth by the luck of which rows got labels."""
    if scored.empty:
        return None
    score = _resampled_metric(scored, metric, task=task, positive_class=positive_class)
    if score is None:
        return None
    rng = np.random.default_rng(seed)
    values = [score(rng.integers(0, len(scored), len(scored))) for _ in range(n)]
    values = [v for v in values if np.isfinite(v)]
    if len(values) < n // 2:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_metric(scored: pd.DataFrame, metric: str, *, task: str, positive_class: Any) -> Any:
    """``metric`` as a function of resampled row indices, in numpy (the bootstrap calls
    it hundreds of times)."""
    from scipy.stats import rankdata

    if task == "regression":
        error = (
            scored["label"].astype(float).to_numpy() - scored["prediction"].astype(float).to_numpy()
        )
        if metric == "rmse":
            return lambda i: float(np.sqrt(np.mean(error[i] ** 2)))
        if metric == "mae":
            return lambda i: float(np.mean(np.abs(error[i])))
        return None
    truth = scored["label"].astype(str).to_numpy()
    if metric == "accuracy":
        correct = truth == scored["prediction"].astype(str).to_numpy()
        return lambda i: float(correct[i].mean())
    scores = scored["score"].astype(float).to_numpy()
    if positive_class is None or np.isnan(scores).any():
        return None
    positive = truth == str(positive_class)
    if metric == "roc_auc":

        def auc(i: np.ndarray) -> float:
            y, s = positive[i], scores[i]
            n_pos = int(y.sum())
            n_neg = len(y) - n_pos
            if n_pos == 0 or n_neg == 0:
                return math.nan
            return float((rankdata(s)[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

        return auc
    if metric == "log_loss":
        p = np.clip(scores, 1e-15, 1 - 1e-15)
        loss = -(positive * np.log(p) + (~positive) * np.log(1 - p))
        return lambda i: float(loss[i].mean())
    return None


def _metrics(frame: pd.DataFrame, task: str, positive_class: Any) -> dict[str, float]:
    from sklearn import metrics as m

    if task == "regression":
        truth = frame["label"].astype(float).to_numpy()
        predicted = frame["prediction"].astype(float).to_numpy()
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(truth, predicted))),
            "mae": float(m.mean_absolute_error(truth, predicted)),
        }
    truth = frame["label"].astype(str).to_numpy()
    out = {"accuracy": float((truth == frame["prediction"].astype(str).to_numpy()).mean())}
    scores = frame["score"].astype(float)
    if positive_class is not None and scores.notna().all():
        positive = truth == str(positive_class)
        if 0 < positive.sum() < len(positive):
            out["roc_auc"] = float(m.roc_auc_score(positive, scores))
            out["log_loss"] = float(
                m.log_loss(positive, scores.clip(1e-15, 1 - 1e-15), labels=[False, True])
            )
    return out


# -- the alarm ------------------------------------------------------------------------


def breaches(
    report: DriftReport,
    *,
    policy: MonitorPolicy,
    live: Mapping[str, float] | None = None,
    training: Mapping[str, float] | None = None,
    primary_metric: str | None = None,
    interval: tuple[float, float] | None = None,
) -> list[str]:
    """Why the alarm goes off (empty: all clear), one sentence per crossed threshold.

    The live metric alarms only when it is worse than at training by more than
    ``max_metric_drop`` beyond sampling noise: the whole bootstrap ``interval`` of the
    live metric must lie past the limit (a few hundred labels give intervals several
    hundredths wide, so a raw comparison would cry wolf)."""
    reasons = []
    if report.share_drifted is not None and report.share_drifted >= policy.max_drift_share:
        reasons.append(
            f"{len(report.drifted_columns)} of {sum(c.drifted is not None for c in report.columns)} input columns drifted "
            f"({report.share_drifted:.0%} ≥ {policy.max_drift_share:.0%}): {', '.join(report.drifted_columns)}"
        )
    if policy.prediction_drift and report.prediction is not None and report.prediction.drifted:
        reasons.append(
            f"the predictions drifted ({report.prediction.method} {report.prediction.statistic:.3g})"
        )
    comparable = bool(
        live
        and training
        and primary_metric
        and primary_metric in live
        and primary_metric in training
        and live.get("rows", 0) >= policy.min_labels
    )
    if comparable:
        assert live is not None and training is not None and primary_metric is not None
        now, then = live[primary_metric], training[primary_metric]
        lower_is_better = not GREATER_IS_BETTER.get(primary_metric, True)
        limit = then + policy.max_metric_drop if lower_is_better else then - policy.max_metric_drop
        # no interval (too few usable resamples): the evidence is too thin to alarm on
        low, high = interval if interval is not None else (math.nan, math.nan)
        if (low > limit) if lower_is_better else (high < limit):
            reasons.append(
                f"live {primary_metric} {now:.4f} (95% interval {low:.4f}–{high:.4f}) is worse than "
                f"{limit:.4f}, the training value {then:.4f} with the allowed drop of {policy.max_metric_drop}"
            )
    return reasons
