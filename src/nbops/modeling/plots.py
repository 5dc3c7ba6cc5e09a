"""Plots for the reports: every figure has a title and labelled axes.

Each function returns a matplotlib ``Figure`` built without pyplot, so nothing is
shown twice or leaks between cells: a notebook shows it with ``display(fig)`` (or as a
cell's last value) and a test can inspect it without a display.

Column names, categories, class labels and model names come from data: each goes
through :func:`_text` before it becomes a label, since matplotlib reads text between
two ``$`` as TeX (price tiers ``$``, ``$$``, ``$$$`` stopped the whole plot, and the
report with it; ``$5-$10`` was drawn as a formula).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as _MplFigure

# scikit-learn (and scipy.stats under it: about 1.5 s of CPU) is imported by the plots
# that compute with it, so a report drawing only drift plots (nbops score's) starts
# fast, and a build's first notebook does not wait for it in the kernel template.

__all__ = [
    "Figure",
    "bootstrap_plot",
    "calibration_plot",
    "confusion_plot",
    "distribution_plot",
    "drift_scores_plot",
    "importance_plot",
    "metric_over_time_plot",
    "missing_plot",
    "pr_plot",
    "residual_plot",
    "roc_plot",
    "traffic_plot",
]


def _text(value: Any) -> str:
    """``value`` as matplotlib draws it literally: every ``$`` escaped (no TeX)."""
    return str(value).replace("$", r"\$")


class Figure(_MplFigure):
    """A matplotlib Figure that renders itself as PNG wherever IPython displays it,
    without pyplot or an inline backend (papermill kernels, nbconvert, JupyterLab)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def missing_plot(frame: pd.DataFrame | pd.Series) -> Figure:
    """Share of missing values per column, highest first: of a frame, or from a Series of
    shares by column (see :func:`nbops.data.tables.column_summary`)."""
    share = (frame.isna().mean() if isinstance(frame, pd.DataFrame) else frame).sort_values()
    fig = Figure(figsize=(7, max(2.5, 0.28 * len(share))))
    ax = fig.subplots()
    ax.barh([_text(c) for c in share.index], share.to_numpy() * 100, color="#4c72b0")
    ax.set_title("Missing values per column")
    ax.set_xlabel("rows missing (%)")
    ax.set_ylabel("column")
    ax.set_xlim(0, max(5, float(share.max()) * 110))
    fig.tight_layout()
    return fig


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ROC curves, one per candidate: ``{name: (is_positive, score)}``."""
    from sklearn.metrics import auc, roc_curve

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, (truth, score) in curves.items():
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{_text(name)} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(title="ROC curve (test set)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Precision-recall curves, one per candidate, with the positive rate as baseline."""
    from sklearn.metrics import precision_recall_curve

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    base = None
    for name, (truth, score) in curves.items():
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision, label=_text(name))
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
    from sklearn.calibration import calibration_curve

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, (truth, score) in curves.items():
        observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=_text(name))
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
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    fig = Figure(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2.5))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [_text(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(ticks, [_text(x) for x in labels])
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
    names = [_text(f) for f in rows["feature"]]
    ax.barh(names, rows["importance"], xerr=rows["std"], color="#55a868")
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
        title=f"Paired bootstrap: {_text(metric)}, challenger − champion (better > 0)",
        xlabel=f"difference in {_text(metric)}",
        ylabel="resamples",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


# -- monitoring -----------------------------------------------------------------------


def drift_scores_plot(report: Any) -> Figure:
    """Each tested column's drift score as a multiple of its threshold, highest first
    (1 = the threshold; p-value tests on a log scale: -log10 p / -log10 alpha)."""
    rows = []
    for c in [*report.columns, *([report.prediction] if report.prediction else [])]:
        if c.statistic is None:
            continue
        if c.method in {"ks", "chi2"}:
            score = -np.log10(max(c.statistic, 1e-300)) / -np.log10(c.threshold)
        else:
            score = c.statistic / c.threshold
        rows.append((_text(c.column), score, bool(c.drifted)))
    rows.sort(key=lambda r: r[1])
    fig = Figure(figsize=(7, max(2.5, 0.3 * len(rows) + 1)))
    ax = fig.subplots()
    if rows:
        names, scores, drifted = zip(*rows, strict=True)
        ax.barh(list(names), list(scores), color=["#c44e52" if d else "#4c72b0" for d in drifted])
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_title("Drift per column (red: drifted)")
    ax.set_xlabel("drift score / threshold")
    ax.set_ylabel("column")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def distribution_plot(drifts: list[Any], *, columns: int = 2) -> Figure:
    """Reference and current distributions overlaid, one panel per column (from the
    report's bins: quantile bins for numbers, categories otherwise)."""
    drifts = [d for d in drifts if d.reference]
    rows = max(1, -(-len(drifts) // columns))
    fig = Figure(figsize=(5.5 * columns, 3.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, d in zip(axes, drifts, strict=False):
        bins = list(d.bins)
        if d.kind == "numeric" and len(bins) == len(d.reference) > 12:
            # many distinct values: draw them as a histogram, one step per value
            bins = [*bins, bins[-1] + (bins[-1] - bins[-2])]
        if d.kind == "numeric" and len(bins) == len(d.reference) + 1:
            edges, reference, current = _pooled(bins, d.reference, d.current, groups=20)
            widths = np.diff(edges)
            ax.stairs(
                reference / widths, edges, label="reference", color="#4c72b0", fill=True, alpha=0.4
            )
            ax.stairs(current / widths, edges, label="current", color="#c44e52", linewidth=1.5)
            ax.set_xlabel(_text(d.column))
            ax.set_ylabel("density")
        else:
            labels = [f"{b:g}" if isinstance(b, float) else _text(b) for b in d.bins]
            x = np.arange(len(labels))
            ax.bar(x - 0.2, d.reference, width=0.4, label="reference", color="#4c72b0")
            ax.bar(x + 0.2, d.current, width=0.4, label="current", color="#c44e52")
            ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
            ax.set_xlabel(_text(d.column))
            ax.set_ylabel("share of rows")
        ax.set_title(f"{_text(d.column)}: {d.status} ({d.method} {d.statistic:.3g})")
        ax.legend(fontsize=8)
    for ax in axes[len(drifts) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _pooled(
    bins: list[float], reference: list[float], current: list[float], *, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile bins pooled into about ``groups`` bins of equal reference share, so a
    few thousand current rows do not draw as noise."""
    edges, ref, cur = np.asarray(bins, float), np.asarray(reference), np.asarray(current)
    start = np.concatenate([[0.0], np.cumsum(ref)[:-1]])
    group = np.minimum((start * groups + 1e-9).astype(int), groups - 1)
    keep = np.flatnonzero(np.diff(group, prepend=-1))  # first bin of each group
    pooled_edges = np.append(edges[keep], edges[-1])
    return pooled_edges, np.add.reduceat(ref, keep), np.add.reduceat(cur, keep)


def metric_over_time_plot(table: pd.DataFrame, metric: str, *, training: float | None) -> Figure:
    """A live metric per period, with the training evaluation's value for reference."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    if not table.empty and metric in table:
        ax.plot(table["period"], table[metric], marker="o", label=f"live {_text(metric)}")
    if training is not None:
        ax.axhline(training, color="black", linestyle="--", linewidth=1, label="at training")
    ax.set_title(f"Live {_text(metric)} over time")
    ax.set_xlabel("period")
    ax.set_ylabel(_text(metric))
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def traffic_plot(predictions: pd.DataFrame, *, freq: str = "h") -> Figure:
    """Rows predicted per period and model version."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    if not predictions.empty:
        periods = pd.to_datetime(predictions["ts"], unit="s").dt.floor(freq)
        counts = predictions.groupby([periods, "model_version"]).size().unstack(fill_value=0)
        for version in counts.columns:
            ax.plot(counts.index, counts[version], marker=".", label=f"v{_text(version)}")
        ax.legend(title="model")
    ax.set_title("Rows predicted over time")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("rows")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
