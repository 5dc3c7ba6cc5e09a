"""Scoring models on held-out data: metrics, slices, importance, and picking the best.

Pure computation on arrays and frames: no files, no plots (see :mod:`nbops.modeling.plots`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance

from nbops.data.target import TargetInfo
from nbops.errors import ConfigError
from nbops.modeling.metrics import DEFAULT_PRIMARY, GREATER_IS_BETTER

# DEFAULT_PRIMARY and GREATER_IS_BETTER are defined in nbops.modeling.metrics; notebooks
# (0.1's too) import them from here.
__all__ = [
    "DEFAULT_PRIMARY",
    "GREATER_IS_BETTER",
    "Scores",
    "importance_scoring",
    "importance_table",
    "pick_best",
    "predict_in_chunks",
    "score_model",
    "slice_table",
]


#: Rows a model scores per call: bounds the feature matrix's memory at any test-set size.
SCORE_ROWS = 200_000


@dataclass
class Scores:
    """A model's predictions on the test set and the metrics computed from them."""

    metrics: dict[str, float]
    predictions: np.ndarray
    probabilities: np.ndarray | None = None  # (n, n_classes) for classifiers
    classes: list[Any] | None = None
    #: Seconds spent in the call a service makes (predict_proba, or predict for regression).
    seconds: float = 0.0


def predict_in_chunks(model: Any, X: pd.DataFrame, method: str = "predict") -> np.ndarray:
    """``model.<method>(X)``, called on at most :data:`SCORE_ROWS` rows at a time.

    Scikit-learn pipelines build the whole feature matrix first (2.5 million test rows
    make a 1 GB one); scoring in chunks gives the same numbers in bounded memory.
    """
    predict = getattr(model, method)
    if len(X) <= SCORE_ROWS:
        return predict(X)
    return np.concatenate(
        [predict(X.iloc[start : start + SCORE_ROWS]) for start in range(0, len(X), SCORE_ROWS)]
    )


def score_model(model: Any, X: pd.DataFrame, y: pd.Series, target: TargetInfo) -> Scores:
    """Predict ``X`` with a fitted model and compute the task's metrics against ``y``."""
    started = time.perf_counter()
    predictions = predict_in_chunks(model, X)
    if target.task == "regression":
        y_true = np.asarray(y, dtype=float)
        return Scores(
            metrics=regression_metrics(y_true, np.asarray(predictions, dtype=float)),
            predictions=predictions,
            seconds=time.perf_counter() - started,
        )
    started = time.perf_counter()
    proba = predict_in_chunks(model, X, "predict_proba")
    seconds = time.perf_counter() - started
    classes = list(model.classes_)
    return Scores(
        metrics=classification_metrics(
            np.asarray(y), predictions, proba, classes=classes, positive=target.positive_class
        ),
        predictions=predictions,
        probabilities=proba,
        classes=classes,
        seconds=seconds,
    )


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    *,
    classes: list[Any],
    positive: Any = None,
) -> dict[str, float]:
    """ROC AUC, PR AUC, F1, accuracy and log loss; one-vs-rest macro averages beyond two classes."""
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=classes)),
    }
    if len(classes) == 2:
        pos = positive if positive in classes else classes[1]
        p = proba[:, classes.index(pos)]
        is_pos = y_true == pos
        out["roc_auc"] = (
            float(skm.roc_auc_score(is_pos, p)) if 0 < is_pos.sum() < len(is_pos) else math.nan
        )
        out["pr_auc"] = float(skm.average_precision_score(is_pos, p)) if is_pos.any() else math.nan
        out["f1"] = float(skm.f1_score(is_pos, y_pred == pos))
    else:
        present = set(np.unique(y_true))
        try:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
            )
        except ValueError:  # a class absent from the test rows
            out["roc_auc"] = math.nan
        onehot = np.column_stack([y_true == c for c in classes])
        out["pr_auc"] = float(
            np.mean(
                [
                    skm.average_precision_score(onehot[:, i], proba[:, i])
                    for i, c in enumerate(classes)
                    if c in present
                ]
            )
        )
        out["f1"] = float(skm.f1_score(y_true, y_pred, average="macro"))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R²."""
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def pick_best(candidates: dict[str, dict[str, float]], primary: str) -> str:
    """Return the candidate with the best ``primary`` metric (NaN never wins).

    Raises:
        ConfigError: ``primary`` is not a metric nbops computes for these candidates.
    """
    if not candidates:
        raise ConfigError(
            "No candidate model to evaluate: train.models in env.yaml is empty. List at least one model family."
        )
    if primary not in GREATER_IS_BETTER:
        raise ConfigError(
            f"evaluate.primary_metric '{primary}' is unknown. Use one of: {', '.join(GREATER_IS_BETTER)}."
        )
    sign = 1 if GREATER_IS_BETTER[primary] else -1

    def key(name: str) -> float:
        value = candidates[name].get(primary, math.nan)
        if value is None or math.isnan(value):
            return -math.inf
        return sign * value

    available = [n for n in candidates if primary in candidates[n]]
    if not available:
        raise ConfigError(
            f"evaluate.primary_metric '{primary}' does not apply to this task; candidates report {', '.join(next(iter(candidates.values())))}."
        )
    return max(sorted(available), key=key)


def slice_table(
    frame: pd.DataFrame,
    scores: Scores,
    y: pd.Series,
    target: TargetInfo,
    column: str,
    *,
    max_slices: int = 20,
) -> pd.DataFrame:
    """Metrics per value of ``column`` (numbers are cut into quartiles), largest slices first."""
    values = frame[column]
    if (
        pd.api.types.is_numeric_dtype(values.dtype)
        and not pd.api.types.is_bool_dtype(values.dtype)
        and values.nunique() > max_slices
    ):
        values = pd.qcut(values, 4, duplicates="drop").astype("string")
    values = values.astype("string").fillna("(missing)")
    rows = []
    for value, idx in values.groupby(values, sort=False).groups.items():
        positions = values.index.get_indexer(idx)
        row: dict[str, Any] = {column: value, "rows": len(positions)}
        y_slice = np.asarray(y)[positions]
        if target.task == "regression":
            row.update(
                regression_metrics(
                    y_slice.astype(float), np.asarray(scores.predictions, dtype=float)[positions]
                )
            )
        else:
            pred = np.asarray(scores.predictions)[positions]
            row["accuracy"] = float(skm.accuracy_score(y_slice, pred))
            if target.is_binary and scores.probabilities is not None and scores.classes is not None:
                is_pos = y_slice == target.positive_class
                p = scores.probabilities[positions, scores.classes.index(target.positive_class)]
                row["roc_auc"] = (
                    float(skm.roc_auc_score(is_pos, p))
                    if 0 < is_pos.sum() < len(is_pos)
                    else math.nan
                )
                row["positive_rate"] = float(is_pos.mean())
        rows.append(row)
    return (
        pd.DataFrame(rows)
        .sort_values("rows", ascending=False)
        .head(max_slices)
        .reset_index(drop=True)
    )


def importance_table(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    scoring: str,
    seed: int = 0,
    n_repeats: int = 5,
    max_rows: int = 2_000,
) -> pd.DataFrame:
    """Permutation importance of each input column on (a sample of) the test set.

    The same permutations and scores as scikit-learn's ``permutation_importance`` (same
    seed, same answer), but the model scores every permuted copy in one call instead of
    one call per column and repeat: at test sizes a model's fixed cost per call (the
    column transformer's pandas work) was most of the evaluate step.
    """
    if len(X) > max_rows:
        X = X.sample(max_rows, random_state=seed)
        y = y.loc[X.index]
    score = _BATCH_SCORERS.get(scoring)
    if score is None:
        result = permutation_importance(
            model, X, y, scoring=scoring, n_repeats=n_repeats, random_state=seed, n_jobs=1
        )
        mean, std = result.importances_mean, result.importances_std
    else:
        orders = _permutation_orders(len(X), n_repeats, seed)
        copies = [X]
        for column in X.columns:
            values = X[column].to_numpy()
            copies += [X.assign(**{column: values[order]}) for order in orders]
        output = _response(model, pd.concat(copies, ignore_index=True), scoring)
        y_values = y.to_numpy()
        scores = np.array(
            [score(model, y_values, block) for block in np.split(output, len(copies))]
        )
        drops = scores[0] - scores[1:].reshape(len(X.columns), n_repeats)
        mean, std = drops.mean(axis=1), drops.std(axis=1)
    return (
        pd.DataFrame({"feature": X.columns, "importance": mean, "std": std})
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )


def _permutation_orders(rows: int, n_repeats: int, seed: int) -> list[np.ndarray]:
    """The row order of each repeat's permuted column, as scikit-learn draws them: one
    seed for every column, each repeat shuffling the previous repeat's column."""
    random_state = np.random.RandomState(
        np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    )
    shuffling, order, orders = np.arange(rows), np.arange(rows), []
    for _ in range(n_repeats):
        random_state.shuffle(shuffling)
        order = order[shuffling]
        orders.append(order)
    return orders


def _response(model: Any, X: pd.DataFrame, scoring: str) -> np.ndarray:
    if scoring == "neg_root_mean_squared_error":
        return np.asarray(model.predict(X))
    return np.asarray(model.predict_proba(X))


def _binary_auc(model: Any, y: np.ndarray, proba: np.ndarray) -> float:
    return float(skm.roc_auc_score(y == model.classes_[1], proba[:, 1]))


def _ovr_auc(model: Any, y: np.ndarray, proba: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=model.classes_))


def _neg_rmse(model: Any, y: np.ndarray, predicted: np.ndarray) -> float:
    return -float(skm.root_mean_squared_error(y, predicted))


#: The scorers of :func:`importance_scoring`, computed from one batch of model output.
_BATCH_SCORERS = {
    "roc_auc": _binary_auc,
    "roc_auc_ovr": _ovr_auc,
    "neg_root_mean_squared_error": _neg_rmse,
}


def importance_scoring(target: TargetInfo) -> str:
    """The scikit-learn scorer used for permutation importance, valid for any label type."""
    if target.task == "regression":
        return "neg_root_mean_squared_error"
    return "roc_auc" if target.is_binary else "roc_auc_ovr"
