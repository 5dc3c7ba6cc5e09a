"""Report plots: titled, labelled figures that never touch pyplot's global state."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nbops.modeling import plots

rng = np.random.default_rng(0)
TRUTH = rng.random(300) < 0.3
SCORE = np.clip(0.35 * TRUTH + 0.65 * rng.random(300), 0, 1)
OTHER = rng.random(300)

FIGURES: dict[str, Callable[[], Figure]] = {
    "missing": lambda: plots.missing_plot(
        pd.DataFrame({"a": [1.0, None, 3.0, None], "b": [1, 2, 3, 4], "c": ["x", None, "y", "z"]})
    ),
    "roc": lambda: plots.roc_plot({"linear": (TRUTH, SCORE), "hgb": (TRUTH, OTHER)}),
    "pr": lambda: plots.pr_plot({"linear": (TRUTH, SCORE), "hgb": (TRUTH, OTHER)}),
    "calibration": lambda: plots.calibration_plot({"linear": (TRUTH, SCORE)}),
    "confusion": lambda: plots.confusion_plot(
        ["no", "yes", "no", "no"], ["no", "no", "no", "yes"], ["no", "yes"]
    ),
    "residual": lambda: plots.residual_plot(np.arange(20.0), np.arange(20.0) + rng.normal(size=20)),
    "importance": lambda: plots.importance_plot(
        pd.DataFrame(
            {"feature": ["tenure", "plan"], "importance": [0.12, 0.01], "std": [0.01, 0.005]}
        )
    ),
    "drift scores": lambda: plots.drift_scores_plot(_drift_report()),
    "distributions": lambda: plots.distribution_plot(
        [c for c in _drift_report().columns if c.statistic is not None]
    ),
    "metric over time": lambda: plots.metric_over_time_plot(
        pd.DataFrame(
            {
                "period": pd.date_range("2026-11-01", periods=3, freq="D"),
                "roc_auc": [0.7, 0.68, 0.6],
            }
        ),
        "roc_auc",
        training=0.71,
    ),
    "traffic": lambda: plots.traffic_plot(
        pd.DataFrame({"ts": 1.79e9 + np.arange(50) * 600.0, "model_version": ["1"] * 50})
    ),
}


def _drift_report():
    from nbops.monitoring.drift import compare, profile

    reference = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 3000),  # continuous: quantile bins
            "tenure": rng.integers(0, 60, 3000),  # many distinct values
            "calls": rng.integers(0, 4, 3000),  # few distinct values: bars
            "plan": rng.choice(["basic", "premium"], 3000),
        }
    )
    current = reference.assign(amount=reference["amount"] * 1.5)
    roles = {"amount": "numeric", "tenure": "numeric", "calls": "numeric", "plan": "categorical"}
    return compare(profile(reference, roles), current)


def test_drift_scores_mark_the_drifted_columns_against_the_threshold():
    fig = plots.drift_scores_plot(_drift_report())
    bars = {b.get_y(): b for b in fig.axes[0].patches}
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "amount", "the most drifted column on top"
    red = [b for b in bars.values() if b.get_facecolor()[0] > 0.7]
    assert len(red) == 1 and red[0].get_width() > 1, "only the drifted column crosses 1"


@pytest.fixture(autouse=True)
def _no_pyplot_figures() -> Iterator[None]:
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot function registered a figure with pyplot"


@pytest.mark.parametrize("name", FIGURES)
def test_every_axis_has_a_title_and_labels(name: str) -> None:
    fig = FIGURES[name]()
    assert isinstance(fig, Figure)
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_title().strip()
        assert ax.get_xlabel().strip()
        assert ax.get_ylabel().strip()


@pytest.mark.parametrize("name", FIGURES)
def test_figures_render_to_png(name: str) -> None:
    buffer = io.BytesIO()
    FIGURES[name]().savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_missing_plot_has_a_bar_per_column() -> None:
    ax = FIGURES["missing"]().axes[0]
    widths = sorted(round(bar.get_width()) for bar in ax.patches)
    assert widths == [0, 25, 50]  # percent of rows missing in b, c, a


def test_roc_plot_labels_each_candidate_with_its_auc() -> None:
    labels = [t.get_text() for t in FIGURES["roc"]().axes[0].get_legend().get_texts()]
    assert any(label.startswith("linear (AUC 0.") for label in labels)
    assert any(label.startswith("hgb (AUC ") for label in labels)
    assert "chance" in labels


def test_pr_plot_shows_the_positive_rate_baseline() -> None:
    labels = [t.get_text() for t in FIGURES["pr"]().axes[0].get_legend().get_texts()]
    assert f"positive rate {TRUTH.mean():.2f}" in labels


def test_confusion_plot_writes_the_counts() -> None:
    texts = sorted(t.get_text() for t in FIGURES["confusion"]().axes[0].texts)
    # true no -> predicted no twice, no->yes once, yes->no once, yes->yes never
    assert texts == ["0", "1", "1", "2"]


def test_residual_plot_has_two_panels() -> None:
    titles = [ax.get_title() for ax in FIGURES["residual"]().axes]
    assert titles == ["Predicted vs actual (test set)", "Residuals vs predicted"]


def test_importance_plot_shows_the_top_features() -> None:
    table = pd.DataFrame(
        {"feature": [f"f{i}" for i in range(30)], "importance": np.linspace(1, 0, 30), "std": 0.0}
    )
    ax = plots.importance_plot(table, top=5).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["f4", "f3", "f2", "f1", "f0"]


@pytest.mark.parametrize(
    "values", [["$", "$$", "$$$"], ["$5-$10", "$10-$20", "other"], ["$\\foo$", "a", "b"]]
)
def test_values_with_dollar_signs_are_drawn_as_written(values: list[str]) -> None:
    """matplotlib reads text between two ``$`` as TeX: price tiers stopped the plot (and
    the monitoring report with it), ``$5-$10`` was drawn as a formula."""
    from nbops.monitoring.drift import ColumnDrift

    drift = ColumnDrift(
        column="price $tier$",
        kind="categorical",
        method="jensenshannon",
        statistic=0.2,
        threshold=0.1,
        drifted=True,
        status="drift",
        bins=values,
        reference=[0.3, 0.3, 0.4],
        current=[0.2, 0.5, 0.3],
    )
    report = SimpleNamespace(columns=[drift], prediction=None)
    figures = [plots.distribution_plot([drift]), plots.drift_scores_plot(report)]
    for fig in figures:
        assert fig._repr_png_().startswith(b"\x89PNG")
    ax = figures[0].axes[0]
    drawn = [label._preprocess_math(label.get_text()) for label in ax.get_xticklabels()]
    assert drawn == [(v, False) for v in values], "each value as text, none as TeX"
    assert ax.xaxis.label._preprocess_math(ax.get_xlabel()) == ("price $tier$", False)
