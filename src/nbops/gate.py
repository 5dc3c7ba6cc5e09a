"""The promotion gate: decide with statistics whether a challenger model replaces the champion.

Pure computation on arrays: no MLflow, no files. Both models are scored on the *same*
held-out rows; a paired bootstrap (resampling rows, scoring both models on each
resample) gives a confidence interval for the difference of the primary metric. The
challenger wins only if the whole interval clears ``min_improvement``; hard floors
(minimum metric, largest drop on any slice, latency per row) can veto any promotion.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1] * 200)
    >>> champion = np.where(y == 1, 0.6, 0.4) + np.random.default_rng(0).normal(0, 0.3, 400)
    >>> challenger = np.where(y == 1, 0.8, 0.2) + np.random.default_rng(1).normal(0, 0.3, 400)
    >>> ci = paired_bootstrap(y, champion, challenger, metric="roc_auc", n=300, seed=0)
    >>> ci.low > 0
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from nbops.errors import ConfigError, ReleaseError
from nbops.evaluation import GREATER_IS_BETTER

__all__ = [
    "Check",
    "Decision",
    "GatePolicy",
    "Interval",
    "ReleaseDecision",
    "decide",
    "paired_bootstrap",
]

POLICIES = ("auto", "manual")


@dataclass(frozen=True)
class GatePolicy:
    """The release rules, from env.yaml's ``release`` section."""

    policy: str = "auto"
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    min_metric: float | None = None
    max_slice_drop: float | None = None
    max_latency_ms_per_row: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(
                f"release.policy '{self.policy}' is unknown. Use auto (promote a winning challenger) or manual (hold it for `nbops promote`)."
            )
        if self.primary_metric not in GREATER_IS_BETTER:
            raise ConfigError(
                f"release.primary_metric '{self.primary_metric}' is unknown. Use one of: {', '.join(GREATER_IS_BETTER)}."
            )
        if not 0.5 < self.confidence < 1:
            raise ConfigError(
                f"release.confidence must be between 0.5 and 1 (e.g. 0.95), got {self.confidence}."
            )
        if self.n_bootstrap < 100:
            raise ConfigError(
                f"release.n_bootstrap must be at least 100 for a usable interval, got {self.n_bootstrap}."
            )


@dataclass(frozen=True)
class Interval:
    """Bootstrap estimate of ``challenger - champion`` (signed so that > 0 is better)."""

    point: float
    low: float
    high: float
    confidence: float
    n: int
    samples: list[float] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    """What the gate decided, and every check behind it."""

    action: str  # "promote" (becomes champion), "hold" (challenger, awaiting approval), "reject"
    summary: str
    checks: list[Check] = field(default_factory=list)
    interval: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data.get("interval"):
            data["interval"].pop("samples", None)
        return data


@dataclass
class ReleaseDecision:
    """The gate's decision file (``products/release/decision.json``): written by the gate
    notebook, read by the release step, the build summary and ``nbops monitor --retrain``.

    ``champion_version`` is the champion the gate compared against (None: there was
    none); the release promotes only if it is still the champion then.
    """

    model_name: str
    action: str
    summary: str
    policy: GatePolicy
    champion_version: str | None
    checks: list[Check] = field(default_factory=list)
    interval: Interval | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    latency_ms_per_row: float | None = None
    #: The saved model: its sha256, save time and trusted types.
    model: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, decision: Decision, *, model_name: str, policy: GatePolicy, **rest: Any
    ) -> ReleaseDecision:
        """The file's content for what :func:`decide` returned."""
        return cls(
            model_name=model_name,
            action=decision.action,
            summary=decision.summary,
            policy=policy,
            checks=list(decision.checks),
            interval=decision.interval,
            **rest,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data.get("interval"):
            data["interval"].pop("samples", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseDecision:
        """Read a decision file (one written by nbops 0.1.0's gate too)."""
        missing = [k for k in ("model_name", "action", "summary", "policy") if k not in data]
        if missing or data.get("action") not in ("promote", "hold", "reject"):
            problem = (
                f"lacks {', '.join(missing)}"
                if missing
                else f"has an unknown action {data.get('action')!r} (promote, hold or reject)"
            )
            raise ReleaseError(
                f"The gate's decision {problem}, so nothing can be released from it. Run the gate again (`ploomber build --force`)."
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        policy_fields = {f.name for f in fields(GatePolicy)}
        values["policy"] = GatePolicy(
            **{k: v for k, v in data["policy"].items() if k in policy_fields}
        )
        values["checks"] = [Check(**c) for c in data.get("checks") or []]
        if data.get("interval"):
            values["interval"] = Interval(**data["interval"])
        if values.get("champion_version") is not None:
            values["champion_version"] = str(values["champion_version"])
        values.setdefault("champion_version", None)
        return cls(**values)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    # Rank-based ROC AUC (Mann-Whitney U), fast enough for thousands of resamples.
    from scipy.stats import rankdata

    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class _CountedAuc:
    """ROC AUC of a resample given as counts per row (a bootstrap sample with
    replacement), equal to :func:`_auc` on the materialised resample: the Mann-Whitney
    U with ties counted half, from one sort of the scores instead of one per resample."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.order = np.argsort(score, kind="mergesort")
        ordered = score[self.order]
        group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
        self.group = group if group[-1] + 1 < len(group) else None  # None: no ties
        self.pos = y[self.order].astype(bool).astype(float)
        self.neg = 1.0 - self.pos

    def __call__(self, counts: np.ndarray) -> float:
        weights = counts[self.order].astype(float)
        pos, neg = weights * self.pos, weights * self.neg
        if self.group is not None:
            pos = np.bincount(self.group, weights=pos)
            neg = np.bincount(self.group, weights=neg)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return math.nan
        below = np.cumsum(neg) - neg
        return float(np.dot(pos, below + neg / 2) / (n_pos * n_neg))


def metric_value(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The metric on one sample. Classification metrics take the positive-class score
    (``y`` as 0/1); regression metrics take predictions."""
    if metric == "roc_auc":
        return _auc(y, pred)
    if metric == "rmse":
        return float(np.sqrt(np.mean((y - pred) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(y - pred)))
    if metric == "r2":
        total = np.sum((y - y.mean()) ** 2)
        return float(1 - np.sum((y - pred) ** 2) / total) if total else math.nan
    if metric == "accuracy":
        return float(np.mean((pred >= 0.5) == y.astype(bool)))
    if metric == "log_loss":
        p = np.clip(pred, 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if metric == "pr_auc":
        from sklearn.metrics import average_precision_score

        return float(average_precision_score(y, pred)) if y.any() else math.nan
    if metric == "f1":
        from sklearn.metrics import f1_score

        return float(f1_score(y.astype(bool), pred >= 0.5))
    raise ConfigError(
        f"The gate cannot compute '{metric}'. Use one of: {', '.join(GREATER_IS_BETTER)}."
    )


def paired_bootstrap(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    metric: str,
    n: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Confidence interval for ``metric(challenger) - metric(champion)`` on the same rows,
    signed so that a positive difference means the challenger is better."""
    y, champion, challenger = (
        np.asarray(y, dtype=float),
        np.asarray(champion, dtype=float),
        np.asarray(challenger, dtype=float),
    )
    if not len(y) == len(champion) == len(challenger):
        raise ValueError("y, champion and challenger must have the same length")
    if metric not in GREATER_IS_BETTER:
        raise ConfigError(
            f"The gate cannot compare on '{metric}'. Use one of: {', '.join(GREATER_IS_BETTER)}."
        )
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    rng = np.random.default_rng(seed)
    diffs = np.empty(n)
    if metric == "roc_auc":
        # Sorted once; each resample is then counts over the same rows, O(rows).
        a, b = _CountedAuc(y, challenger), _CountedAuc(y, champion)
    for i in range(n):
        rows = rng.integers(0, len(y), len(y))
        if metric == "roc_auc":
            counts = np.bincount(rows, minlength=len(y))
            diffs[i] = sign * (a(counts) - b(counts))
            continue
        diffs[i] = sign * (
            metric_value(metric, y[rows], challenger[rows])
            - metric_value(metric, y[rows], champion[rows])
        )
    diffs = diffs[~np.isnan(diffs)]
    alpha = (1 - confidence) / 2
    point = sign * (metric_value(metric, y, challenger) - metric_value(metric, y, champion))
    return Interval(
        point=float(point),
        low=float(np.quantile(diffs, alpha)),
        high=float(np.quantile(diffs, 1 - alpha)),
        confidence=confidence,
        n=len(diffs),
        samples=diffs.tolist(),
    )


def decide(
    policy: GatePolicy,
    *,
    challenger_metric: float,
    interval: Interval | None,
    slice_drops: dict[str, float] | None = None,
    latency_ms_per_row: float | None = None,
) -> Decision:
    """Apply the floors and the statistical comparison.

    Args:
        challenger_metric: the challenger's primary metric on the test rows.
        interval: the bootstrap interval against the champion, or None when there is no
            champion yet (the first model that clears the floors becomes champion).
        slice_drops: per slice, how much worse the challenger is than the champion
            (positive = worse), in the primary metric's units.
        latency_ms_per_row: the challenger's prediction time per row.
    """
    checks = []
    m = policy.primary_metric
    better = GREATER_IS_BETTER[m]
    if policy.min_metric is not None:
        ok = (
            challenger_metric >= policy.min_metric
            if better
            else challenger_metric <= policy.min_metric
        )
        checks.append(
            Check(
                "floor",
                ok,
                f"{m} {challenger_metric:.4f} {'≥' if better else '≤'} required {policy.min_metric}"
                if ok
                else f"{m} {challenger_metric:.4f} misses the floor {policy.min_metric}",
            )
        )
    if policy.max_slice_drop is not None and slice_drops:
        worst_slice, worst = max(slice_drops.items(), key=lambda kv: kv[1])
        ok = worst <= policy.max_slice_drop
        checks.append(
            Check(
                "slices",
                ok,
                f"largest drop on a slice: {worst:+.4f} on '{worst_slice}' (allowed {policy.max_slice_drop})",
            )
        )
    if policy.max_latency_ms_per_row is not None and latency_ms_per_row is not None:
        ok = latency_ms_per_row <= policy.max_latency_ms_per_row
        checks.append(
            Check(
                "latency",
                ok,
                f"{latency_ms_per_row:.3f} ms per row (budget {policy.max_latency_ms_per_row} ms)",
            )
        )
    pct = f"{policy.confidence:.0%}"
    if interval is None:
        checks.append(
            Check(
                "champion",
                True,
                "no champion yet: the first model that clears the floors takes the role",
            )
        )
    else:
        wins = interval.low > policy.min_improvement
        detail = (
            f"{m} difference (challenger − champion, {'higher' if better else 'lower'} is better) "
            f"{interval.point:+.4f}, {pct} CI [{interval.low:+.4f}, {interval.high:+.4f}]"
        )
        verdict = "clears" if wins else "does not clear"
        checks.append(
            Check("comparison", wins, f"{detail} {verdict} {policy.min_improvement:+.4f}")
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        # The report always shows the interval, even when a floor already decided.
        shown = failed + [c for c in checks if c.name == "comparison" and c.passed]
        kept = "Champion kept" if interval is not None else "Not released"
        return Decision(
            "reject", f"{kept}: " + "; ".join(c.detail for c in shown) + ".", checks, interval
        )
    action = "promote" if policy.policy == "auto" else "hold"
    if interval is None:
        return Decision(
            action,
            _summary(action, "there is no champion yet and every floor is met"),
            checks,
            None,
        )
    return Decision(
        action,
        _summary(action, f"the challenger is better with {pct} confidence ({checks[-1].detail})"),
        checks,
        interval,
    )


def _summary(action: str, why: str) -> str:
    if action == "promote":
        return f"Promote to champion: {why}."
    return f"Hold as challenger for approval (release.policy: manual): {why}. Approve with `nbops promote`."
