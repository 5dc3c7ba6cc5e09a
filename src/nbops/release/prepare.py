"""The release: what the gate notebook needs (the champion, both models' scores, slices,
the model card), and the release step that applies its decision once the build is recorded.

The statistics live in :mod:`nbops.release.gate`; the registry in :mod:`nbops.tracking.registry`. This
module joins them to the pipeline's data and keeps the notebook short. Recording a
build (:meth:`nbops.tracking.store.Store.publish`) and releasing its model
(:func:`release_build`) are separate calls: the release is a compare-and-set on the
champion the gate compared against, so a late release (a second build, a ``nbops
sync`` of an old record) holds the model as challenger instead of promoting it unseen.
"""

from __future__ import annotations

import html
import importlib.metadata
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.data.target import TargetInfo
from nbops.errors import ReleaseError
from nbops.project import project_root
from nbops.release.gate import Decision, ReleaseDecision, metric_value

if TYPE_CHECKING:
    from nbops.modeling.evaluation import Scores

__all__ = [
    "Champion",
    "GateScores",
    "find_champion",
    "gate_scores",
    "model_card",
    "release_build",
    "release_requirements",
    "slice_drops",
    "slice_metrics",
]

_REQUIREMENTS = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "mlflow", "nbops")


@dataclass
class Champion:
    version: str | None
    model: Any
    note: str
    #: True when the registry could not be asked: never promote blindly then.
    unknown: bool = False


def find_champion(name: str, *, root: Path | None = None) -> Champion:
    """The current champion of ``name`` (loaded with its hash checked), or why there is none."""
    from nbops.tracking.store import enabled, reachability_problem, tracking_uri

    root = root or project_root()
    if not enabled():
        return Champion(
            None,
            None,
            "Tracking is off (NBOPS_TRACKING=off), so there is no registry: nothing will be released.",
            unknown=True,
        )
    problem = reachability_problem(tracking_uri(root))
    if problem:
        return Champion(
            None,
            None,
            f"The registry is unreachable ({problem}); the challenger is judged on the floors only and held for approval.",
            unknown=True,
        )
    from nbops.tracking.registry import Registry

    try:
        version, model = Registry(root).load(name, "champion")
    except ReleaseError as exc:
        if "has no champion" in str(exc):
            return Champion(None, None, "There is no champion yet.")
        return Champion(
            None,
            None,
            f"The champion cannot be used ({exc}); the challenger is held for approval.",
            unknown=True,
        )
    return Champion(version.version, model, f"Champion: version {version.version}.")


#: Rows the challenger's scoring is timed on for the latency floor: enough that one
#: call's fixed cost (milliseconds of Python and pandas) is spread as over a real batch.
LATENCY_ROWS = 1_000
#: Timings taken; the best counts (a moment when the machine is busy is not the model).
LATENCY_REPEATS = 3


@dataclass
class GateScores:
    truth: np.ndarray
    challenger_values: np.ndarray
    champion_values: np.ndarray | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    latency_ms_per_row: float
    champion_error: str | None = None


def _values(scores: Scores, y: pd.Series, target: TargetInfo) -> tuple[np.ndarray, np.ndarray]:
    """(truth, values) for the gate's metric: the positive-class score for binary
    classification, predictions for regression, correctness (1/0) beyond two classes."""
    if target.task == "regression":
        return np.asarray(y, dtype=float), np.asarray(scores.predictions, dtype=float)
    if target.is_binary:
        proba = scores.probabilities[:, scores.classes.index(target.positive_class)]
        return (np.asarray(y) == target.positive_class).astype(float), proba
    correct = (np.asarray(scores.predictions) == np.asarray(y)).astype(float)
    return np.ones(len(y)), correct


def gate_scores(
    challenger: Any,
    champion: Any,
    X: pd.DataFrame,
    y: pd.Series,
    target: TargetInfo,
    *,
    metric: str,
) -> GateScores:
    """Score both models on the same rows, once each; time the challenger's predictions
    (:func:`latency_ms_per_row`)."""
    # Imported here: scikit-learn costs every build ~1 s, and the build hook imports this
    # module for the release step, which needs no scoring.
    from nbops.modeling.evaluation import score_model

    mine = score_model(challenger, X, y, target)
    truth, challenger_values = _values(mine, y, target)
    champion_values, champion_metrics, error = None, None, None
    if champion is not None:
        try:
            theirs = score_model(champion, X, y, target)
            _, champion_values = _values(theirs, y, target)
            champion_metrics = theirs.metrics
        except Exception as exc:  # a champion trained on other columns cannot score this data
            error = f"{type(exc).__name__}: {exc}"
    return GateScores(
        truth,
        challenger_values,
        champion_values,
        mine.metrics,
        champion_metrics,
        latency_ms_per_row(challenger, X, target),
        error,
    )


def latency_ms_per_row(
    model: Any,
    X: pd.DataFrame,
    target: TargetInfo,
    *,
    rows: int = LATENCY_ROWS,
    repeats: int = LATENCY_REPEATS,
) -> float:
    """Milliseconds per row of the model's scoring call (``predict_proba`` for a
    classifier, ``predict`` otherwise): the best of ``repeats`` timings on ``rows`` rows
    (the test rows, repeated or cut). Timing the one call on the test rows made a
    small test set (30 rows share a call's fixed cost) or a busy moment miss the floor."""
    if len(X) == 0:
        return 0.0
    batch = X.iloc[np.resize(np.arange(len(X)), rows)]
    score = model.predict_proba if target.task == "classification" else model.predict
    best = math.inf
    for _ in range(repeats):
        started = perf_counter()
        score(batch)
        best = min(best, perf_counter() - started)
    return best * 1000 / rows


def slice_metrics(
    scores: GateScores,
    test: pd.DataFrame,
    target: TargetInfo,
    plan: dict[str, Any],
    *,
    metric: str,
    column: str | None = None,
    min_rows: int = 30,
) -> dict[str, tuple[float, float]]:
    """Per value of the slice column, ``(champion, challenger)`` in ``metric`` on that
    value's rows. Slices too small to score, and every slice when there is no
    champion, are left out."""
    if scores.champion_values is None:
        return {}
    if column is None:
        column = next((r["column"] for r in plan["roles"] if r["role"] == "categorical"), None)
    if column is None or column not in test.columns:
        return {}
    out = {}
    values = test[column].astype("string").fillna("(missing)")
    for value in values.unique():
        rows = np.asarray(values == value)
        if rows.sum() < min_rows:
            continue
        a = metric_value(metric, scores.truth[rows], scores.champion_values[rows])
        b = metric_value(metric, scores.truth[rows], scores.challenger_values[rows])
        if not (math.isnan(a) or math.isnan(b)):
            out[f"{column}={value}"] = (a, b)
    return out


def slice_drops(
    scores: GateScores,
    test: pd.DataFrame,
    target: TargetInfo,
    plan: dict[str, Any],
    *,
    metric: str,
    column: str | None = None,
    min_rows: int = 30,
) -> dict[str, float]:
    """Per value of the slice column, how much worse the challenger is than the champion
    (positive = worse) in ``metric``. Slices too small to score are left out."""
    from nbops.modeling.metrics import GREATER_IS_BETTER

    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    pairs = slice_metrics(
        scores, test, target, plan, metric=metric, column=column, min_rows=min_rows
    )
    return {name: sign * (a - b) for name, (a, b) in pairs.items()}


def release_requirements() -> list[str]:
    """Pinned requirements for the registered model, from the running environment
    (no requirement inference: that costs MLflow 7–11 s per model here)."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def model_card(
    name: str,
    *,
    card: dict[str, Any],
    plan: dict[str, Any],
    metrics: dict[str, float],
    decision: Decision,
    snapshot: dict[str, Any],
) -> str:
    """A one-page HTML model card: what the model is, the data it saw, how good it is."""
    e = html.escape

    def rows(items):
        return "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in items)  # noqa: E731

    roles = [(r["column"], f"{r['role']} — {r['reason']}") for r in plan["roles"]]
    checks = [(c.name, f"{'✔' if c.passed else '✘'} {c.detail}") for c in decision.checks]
    body = f"""<h1>Model card: {e(name)}</h1>
<p><b>Gate decision:</b> {e(decision.action)} — {e(decision.summary)}</p>
<h2>Model</h2><table>{rows([("family", card.get("model")), ("estimator", card.get("estimator")), ("hyperparameters", card.get("hyperparams")), ("file hash", card.get("file", {}).get("sha256"))])}</table>
<h2>Task and target</h2><table>{rows([("task", plan["target"]["task"]), ("target", plan["target"]["name"]), ("classes", plan["target"].get("classes")), ("positive class", plan["target"].get("positive_class"))])}</table>
<h2>Data</h2><table>{rows([("snapshot hash", snapshot.get("content_hash")), ("rows", snapshot.get("rows")), ("columns", snapshot.get("columns")), ("source", snapshot.get("source"))])}</table>
<h2>Test metrics</h2><table>{rows((k, f"{v:.4f}") for k, v in metrics.items())}</table>
<h2>Gate checks</h2><table>{rows(checks)}</table>
<h2>Features</h2><table>{rows(roles)}</table>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")} by nbops.</p>"""
    style = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:960px}th{text-align:left;padding-right:1rem;vertical-align:top}td,th{border-bottom:1px solid #ddd;padding:.3rem}"
    return f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Model card: {e(name)}</title><style>{style}</style></head><body>{body}</body></html>\n'


def release_build(record: Any, *, published: dict[str, Any], store: Any) -> dict[str, Any] | None:
    """Release the model of a recorded build as its gate decided; None when the build
    released nothing (no gate ran, or its task was not recorded).

    ``record`` is the :class:`~nbops.tracking.record.BuildRecord`, ``published`` what
    :meth:`~nbops.tracking.store.Store.publish` returned for it, ``store`` that store.
    Safe to repeat: a build's model is registered and released once.
    """
    from nbops.tracking.registry import Registry

    task = (record.release or {}).get("task")
    if task not in published.get("tasks", {}):
        return None
    decision = ReleaseDecision.from_dict(record.release["decision"])
    primary = decision.policy.primary_metric
    tags = {
        "nbops.build_run": published["run_id"],
        "nbops.data_hash": record.data.get("content_hash", ""),
        "nbops.git_commit": (record.git or {}).get("commit") or "",
        "nbops.primary_metric": primary,
        "nbops.metric": str(decision.metrics.get(primary, "")),
    }
    result = Registry(Path(record.root), store=store).release(
        decision.model_name,
        build_id=record.build_id,
        gate_run_id=published["tasks"][task],
        tags=tags,
        action=decision.action,
        summary=decision.summary,
        compared_with=decision.champion_version,
        run_id=published["run_id"],
    )
    name, version, action = result["name"], result["version"], result["action"]
    store.client.set_tag(published["run_id"], "nbops.release", f"{name} v{version}: {action}")
    gate = decision.action if action == decision.action else f"{decision.action}, {action}"
    changes = f" ({', '.join(result['changes'])})" if result["changes"] else ""
    note = f" {result['note']}" if result["note"] else ""
    print(
        f"nbops: registered {name} version {version}; gate: {gate}{changes}.{note}", file=sys.stderr
    )
    return result
