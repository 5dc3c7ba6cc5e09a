"""The promotion gate: decide with statistics whether a challenger model replaces the champion.

Pure computation on arrays: no MLflow, no files. Both models are scored on the *same*
held-out rows; a paired bootstrap (resampling rows, scoring both models on each
resample) gives a confidence interval for the difference of the primary metric. The
challenger wins only if the whole interval clears ``min_improvement``; hard floors can
veto any promotion. The floors are stated in the task's own terms and relative where
units differ between projects: the gain over the naive baseline the evaluate step fits
(share of the baseline's RMSE removed; share of the gap from the baseline's ROC AUC to
a perfect 1 closed), R² above zero for regression, an absolute metric floor for
classification, the largest drop on a slice as a share of the champion's metric there,
and the latency per row.

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
from nbops.modeling.metrics import GREATER_IS_BETTER

__all__ = [
    "DEFAULT_FLOORS",
    "Check",
    "Decision",
    "GatePolicy",
    "Interval",
    "ReleaseDecision",
    "decide",
    "gain_over_baseline",
    "paired_bootstrap",
]

POLICIES = ("auto", "manual")

#: The floors ``nbops init`` writes for each task (``release.floors`` in env.yaml).
#: Relative to the naive baseline and to the champion, so they mean the same in any
#: target's units; ``min_metric`` is an absolute ROC AUC floor, for classification only.
DEFAULT_FLOORS: dict[str, dict[str, float | None]] = {
    "classification": {
        "min_metric": 0.6,
        "min_gain_over_baseline": 0.1,
        "min_r2": None,
        "max_slice_drop_share": 0.05,
        "max_latency_ms_per_row": 5.0,
    },
    "regression": {
        "min_metric": None,
        "min_gain_over_baseline": 0.1,
        "min_r2": 0.0,
        "max_slice_drop_share": 0.05,
        "max_latency_ms_per_row": 5.0,
    },
}

#: The best value of each greater-is-better metric (the lower-is-better ones: 0).
_PERFECT = {"roc_auc": 1.0, "pr_auc": 1.0, "f1": 1.0, "accuracy": 1.0, "r2": 1.0}
#: What the evaluate step's naive baseline predicts, for the gate report.
_BASELINE = {
    "classification": "the training class shares for every row",
    "regression": "the training mean for every row",
}


@dataclass(frozen=True)
class GatePolicy:
    """The release rules, from env.yaml's ``release`` section."""

    policy: str = "auto"
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    #: The primary metric's floor in its own units (a ceiling for rmse, mae, log_loss).
    min_metric: float | None = None
    #: Share of the naive baseline's shortfall the model must remove (see
    #: :func:`gain_over_baseline`): 0.1 = an RMSE at most 90% of the baseline's.
    min_gain_over_baseline: float | None = None
    #: Regression: R² on the test rows must be above this (0 = better than the mean).
    min_r2: float | None = None
    #: Largest drop on any slice, as a share of the champion's metric on that slice.
    max_slice_drop_share: float | None = None
    #: Largest drop on any slice in the metric's units (the first floor nbops had).
    max_slice_drop: float | None = None
    max_latency_ms_per_row: float | None = None
    seed: int = 0
    task: str = "classification"

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
        for key in ("min_gain_over_baseline", "max_slice_drop_share"):
            value = getattr(self, key)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(
                    f"release.floors.{key} is a share between 0 and 1 (e.g. 0.1 for 10%), got {value}."
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


def gain_over_baseline(metric: str, value: float, baseline: float) -> float:
    """The share of the baseline's shortfall from a perfect score that ``value`` removes.

    For a lower-is-better metric (perfect 0) it is ``1 - value / baseline``: 0.25 means an
    RMSE a quarter below the baseline's. For a greater-is-better one it is
    ``(value - baseline) / (perfect - baseline)``: a ROC AUC of 0.8 over the baseline's
    0.5 closes 60% of the gap (the Gini coefficient). NaN when the baseline is perfect.

    Example:
        >>> round(gain_over_baseline("rmse", 30.0, 40.0), 4)
        0.25
        >>> round(gain_over_baseline("roc_auc", 0.8, 0.5), 4)
        0.6
    """
    if not GREATER_IS_BETTER[metric]:
        return 1 - value / baseline if baseline > 0 else math.nan
    perfect = _PERFECT.get(metric, 1.0)
    return (value - baseline) / (perfect - baseline) if baseline < perfect else math.nan


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
    baseline_metric: float | None = None,
    r2: float | None = None,
    slices: dict[str, tuple[float, float]] | None = None,
) -> Decision:
    """Apply the floors and the statistical comparison.

    Args:
        challenger_metric: the challenger's primary metric on the test rows.
        interval: the bootstrap interval against the champion, or None when there is no
            champion yet (the first model that clears the floors becomes champion).
        slice_drops: per slice, how much worse the challenger is than the champion
            (positive = worse), in the primary metric's units (``max_slice_drop``).
        latency_ms_per_row: the challenger's prediction time per row.
        baseline_metric: the naive baseline's primary metric on the same test rows
            (``min_gain_over_baseline``; the check is skipped without it).
        r2: the challenger's R² on the test rows (``min_r2``, regression).
        slices: per slice, ``(champion, challenger)`` primary metric on that slice's
            rows (``max_slice_drop_share``; also gives ``slice_drops`` when not passed).
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
        detail = (
            f"{m} {challenger_metric:.4f} {'≥' if better else '≤'} required {policy.min_metric}"
            if ok
            else f"{m} {challenger_metric:.4f} misses the floor {policy.min_metric}"
        )
        if not ok and policy.task == "regression":
            # Projects made before the floors knew the task carry a ROC AUC floor here.
            detail += (
                f" (release.floors.min_metric is a ceiling in {m}'s own units for regression;"
                " set it to null and let min_gain_over_baseline and min_r2 judge the model)"
            )
        checks.append(Check("floor", ok, detail))
    if policy.min_gain_over_baseline is not None and baseline_metric is not None:
        checks.append(_baseline_check(policy, challenger_metric, baseline_metric))
    if policy.min_r2 is not None and r2 is not None:
        ok = r2 > policy.min_r2
        meaning = (
            f"the model explains {r2:.1%} of the target's variance on the test rows"
            if r2 > 0
            else "the model is no better than predicting the training mean"
        )
        checks.append(
            Check("r2", ok, f"R² {r2:.4f} {'>' if ok else '≤'} required {policy.min_r2}: {meaning}")
        )
    if policy.max_slice_drop_share is not None and slices:
        checks.append(_slice_share_check(policy, slices))
    if slice_drops is None and slices:
        sign = 1.0 if better else -1.0
        slice_drops = {name: sign * (a - b) for name, (a, b) in slices.items()}
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


def _baseline_check(policy: GatePolicy, value: float, baseline: float) -> Check:
    """The gain over the naive baseline, said as the task's user would say it."""
    m, need = policy.primary_metric, policy.min_gain_over_baseline or 0.0
    gain = gain_over_baseline(m, value, baseline)
    naive = (
        f"the naive baseline's {baseline:.4f} ({_BASELINE.get(policy.task, 'ignoring the inputs')})"
    )
    if math.isnan(gain):
        return Check("baseline", True, f"{m} {value:.4f}; {naive} is already perfect")
    ok = gain >= need
    if GREATER_IS_BETTER[m]:
        perfect = _PERFECT.get(m, 1.0)
        detail = (
            f"{m} {value:.4f} closes {gain:.1%} of the gap from {naive} to a perfect {perfect:g}"
            f" (required: at least {need:.0%})"
        )
    else:
        where = "below" if gain >= 0 else "above"
        detail = (
            f"{m} {value:.4f} is {abs(gain):.1%} {where} {naive}"
            f" (required: at least {need:.0%} below)"
        )
    return Check("baseline", ok, detail)


def _slice_share_check(policy: GatePolicy, slices: dict[str, tuple[float, float]]) -> Check:
    """The worst slice, as a share of the champion's metric on that slice."""
    m, allowed = policy.primary_metric, policy.max_slice_drop_share or 0.0
    sign = 1.0 if GREATER_IS_BETTER[m] else -1.0
    shares = {
        name: sign * (champion - challenger) / abs(champion)
        for name, (champion, challenger) in slices.items()
        if champion and not (math.isnan(champion) or math.isnan(challenger))
    }
    if not shares:
        return Check("slices", True, "no slice has a champion metric to compare with")
    name, worst = max(shares.items(), key=lambda kv: kv[1])
    champion, challenger = slices[name]
    ok = worst <= allowed
    return Check(
        "slices",
        ok,
        f"worst slice '{name}': {m} {challenger:.4f} vs the champion's {champion:.4f} there, "
        f"{abs(worst):.1%} {'worse' if worst > 0 else 'better'} (allowed: {allowed:.0%} worse)",
    )


def _summary(action: str, why: str) -> str:
    if action == "promote":
        return f"Promote to champion: {why}."
    return f"Hold as challenger for approval (release.policy: manual): {why}. Approve with `nbops promote`."
