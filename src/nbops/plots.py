"""Plots for the reports: every figure has a title and labelled axes.

Each function returns a matplotlib ``Figure`` built without pyplot, so nothing is
shown twice or leaks between cells: a notebook shows it with ``display(fig)`` (or as a
cell's last value) and a test can inspect it without a display.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as _MplFigure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve

__all__ = [
    "Figure",
    "bootstrap_plot",
    "calibration_plot",
    "confusion_plot",
    "importance_plot",
    "missing_plot",
    "pr_plot",
    "residual_plot",
    "roc_plot",
]


class Figure(_MplFigure):
    """A matplotlib Figure that renders itself as PNG wherever IPython displays it,
    without pyplot or an inline backend (papermill kernels, nbconvert, JupyterLab)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def missing_plot(frame: pd.DataFrame) -> Figure:
    """Share of missing values per column, highest first."""
    share = frame.isna().mean().sort_values()
    fig = Figure(figsize=(7, max(2.5, 0.28 * len(share))))
    ax = fig.subplots()
    ax.barh(share.index.astype(str), share.to_numpy() * 100, color="#4c72b0")
    ax.set_title("Missing values per column")
    ax.set_xlabel("rows missing (%)")
    ax.set_ylabel("column")
    ax.set_xlim(0, max(5, float(share.max()) * 110))
    fig.tight_layout()
    return fig


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ROC curves, one per candidate: ``{name: (is_positive, score)}``."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, (truth, score) in curves.items():
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(title="ROC curve (test set)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Precision-recall curves, one per candidate, with the positive rate as baseline."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    base = None
    for name, (truth, score) in curves.items():
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision, label=name)
        base = float(np.mean(truth))
    if base is not None:
        ax.axhline(base, linestyle="--", color="grey", label=f"positive rate {base:.2f}")
    ax.set(
        title="Precision-recall curve (test set)",
        xlabel="recall",
        ylabel="precision",
        ylim=(0, 1.02),
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def calibration_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, bins: int = 10) -> Figure:
    """Predicted probability against observed frequency, per candidate."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, (truth, score) in curves.items():
        observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set(
        title="Calibration (test set)",
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def confusion_plot(y_true: Any, y_pred: Any, labels: list[Any]) -> Figure:
    """Confusion matrix with counts in each cell."""
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    fig = Figure(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2.5))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(x) for x in labels])
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    ax.set(title="Confusion matrix (test set)", xlabel="predicted class", ylabel="true class")
    fig.tight_layout()
    return fig


def residual_plot(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Predicted against actual, and residuals against predicted."""
    residuals = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    fig = Figure(figsize=(11, 4.5))
    left, right = fig.subplots(1, 2)
    left.scatter(y_true, y_pred, s=6, alpha=0.4)
    lo, hi = float(np.min(y_true)), float(np.max(y_true))
    left.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="perfect prediction")
    left.set(title="Predicted vs actual (test set)", xlabel="actual", ylabel="predicted")
    left.legend(loc="upper left")
    right.scatter(y_pred, residuals, s=6, alpha=0.4)
    right.axhline(0, linestyle="--", color="grey")
    right.set(title="Residuals vs predicted", xlabel="predicted", ylabel="actual − predicted")
    fig.tight_layout()
    return fig


def importance_plot(table: pd.DataFrame, *, top: int = 15) -> Figure:
    """Permutation importance with its spread over repeats."""
    rows = table.head(top).iloc[::-1]
    fig = Figure(figsize=(7, max(2.5, 0.32 * len(rows))))
    ax = fig.subplots()
    ax.barh(rows["feature"].astype(str), rows["importance"], xerr=rows["std"], color="#55a868")
    ax.set(
        title="Permutation importance (test set)",
        xlabel="drop in score when shuffled",
        ylabel="input column",
    )
    fig.tight_layout()
    return fig


def bootstrap_plot(
    samples: list[float], low: float, high: float, *, metric: str, threshold: float = 0.0
) -> Figure:
    """Distribution of the bootstrapped difference (challenger − champion) with its interval."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.hist(samples, bins=40, color="#8172b3", alpha=0.8)
    ax.axvline(low, color="black", linestyle="--", label=f"interval [{low:+.4f}, {high:+.4f}]")
    ax.axvline(high, color="black", linestyle="--")
    ax.axvline(threshold, color="#c44e52", label=f"required improvement {threshold:+.4f}")
    ax.set(
        title=f"Paired bootstrap: {metric}, challenger − champion (better > 0)",
        xlabel=f"difference in {metric}",
        ylabel="resamples",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
