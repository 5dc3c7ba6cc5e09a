"""Drift statistics against a reference profile computed once, at training time.

A :class:`Profile` holds one small sketch per column of the training data: for numeric
columns the counts in up to 100 quantile bins (plus mean, spread, range and missing
share), for categorical and boolean columns the category counts. :func:`compare` scores a
new window of data against it column by column, one pass per column (a binary search
into the bin edges, or one count of categories), so a million rows take well under a
second and the reference data is never read again (Evidently's users ask for exactly
this: reference statistics computed once).

Tests, by column type and reference size (the defaults follow Evidently's, so figures
are comparable; all are configurable in env.yaml's ``monitor`` section):

- numeric, when the reference or the window has at most 1,000 values: two-sample
  Kolmogorov–Smirnov, drift when p < 0.05; both larger: Wasserstein distance normalised
  by the reference standard deviation, drift when ≥ 0.1. PSI (10 reference deciles) is
  available, drift when ≥ 0.2.
- categorical and boolean, same rule: chi-square test of homogeneity, drift when
  p < 0.05; both larger: Jensen–Shannon distance (natural log), drift when ≥ 0.1.
- the dataset drifts when at least half the tested columns drift (Evidently's rule).

Two guards against false alarms that Evidently does not have: the choice looks at the
window's size too (and, for categories, at how many there are), and a distance counts as
drift only when the KS or chi-square test on the same data is also significant. A
distance has no sense of sample size: near its threshold, sampling noise alone crosses
it; a p-value alone, on a large sample, flags differences too small to matter. Both
together ask for a difference that is large *and* real.

Dates are not tested (they move with time by nature); a column that vanished, or a
window too small to judge, is reported as *not computed* with the reason, never as drift.

A window is judged from its counts against the profile (:func:`count`, a
:class:`WindowCounts`: per column the rows per reference bin or category and the two tail
sums), never from its rows: counts of parts of a file add up (:meth:`WindowCounts.merge`),
so a file too big for one machine is counted part by part, on a Dask cluster or in
chunks, and judged once (:func:`compare_counts`). :func:`compare` is the two in one.

Pure: numpy, pandas and scipy; no I/O beyond (de)serialising a profile to a dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nbops.errors import ConfigError

__all__ = [
    "ColumnDrift",
    "DriftPolicy",
    "DriftReport",
    "Profile",
    "WindowCounts",
    "compare",
    "compare_counts",
    "count",
    "profile",
]

#: quantile bins per numeric sketch (fewer when the column has fewer distinct values)
BINS = 100
#: categories kept per categorical sketch; the rest are pooled
MAX_CATEGORIES = 500
_TAILS = np.array([0.001, 0.002, 0.005, 0.995, 0.998, 0.999])
_OTHER = "__other__"
_UNSEEN = "__unseen__"
_MISSING = "__missing__"
NUMERIC_METHODS = ("auto", "ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("auto", "chi2", "jensenshannon", "psi")


# -- the reference profile --------------------------------------------------------------


@dataclass
class NumericSketch:
    """Discrete columns (at most ``BINS + 1`` distinct values) keep a count per value;
    others a count per quantile bin ``[e_i, e_i+1)``, the last bin closed."""

    edges: list[float]  # ascending, distinct: the values, or the bin edges
    counts: list[int]  # reference rows per value / per bin (non-missing)
    n: int  # non-missing reference rows
    missing: int
    mean: float
    std: float
    discrete: bool = False
    kind: str = "numeric"

    def counts_of(self, present: np.ndarray) -> np.ndarray:
        """Counts of ``present`` (no NaN) as ``[below the reference minimum, per value or
        bin..., above the reference maximum]``."""
        edges = np.asarray(self.edges)
        below, above = present < edges[0], present > edges[-1]
        inside = present[~(below | above)]
        if self.discrete:
            index = (np.searchsorted(edges, inside, side="right") - 1).clip(0, len(edges) - 1)
            inner = np.bincount(index, minlength=len(edges))
        elif len(edges) < 2:
            inner = np.array([len(inside)])
        else:
            inner = np.bincount(
                np.searchsorted(edges[1:-1], inside, side="right"), minlength=len(edges) - 1
            )
        return np.concatenate([[below.sum()], inner, [above.sum()]])


@dataclass
class CategoricalSketch:
    counts: dict[str, int]  # reference rows per category (the rarest pooled as __other__)
    n: int  # non-missing reference rows
    missing: int
    kind: str = "categorical"


@dataclass
class Profile:
    """Sketches of the reference data, one per column, and of the model's predictions."""

    n_rows: int
    columns: dict[str, NumericSketch | CategoricalSketch | None]  # None: not tested (dates)
    prediction: NumericSketch | CategoricalSketch | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "columns": {k: None if v is None else asdict(v) for k, v in self.columns.items()},
            "prediction": None if self.prediction is None else asdict(self.prediction),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            int(data["n_rows"]),
            {k: _sketch_from_dict(v) for k, v in data["columns"].items()},
            _sketch_from_dict(data.get("prediction")),
            dict(data.get("meta") or {}),
        )


def _sketch_from_dict(data: Mapping[str, Any] | None) -> NumericSketch | CategoricalSketch | None:
    if data is None:
        return None
    if data.get("kind") == "numeric":
        return NumericSketch(**data)
    return CategoricalSketch(**data)


def profile(
    frame: pd.DataFrame,
    roles: Mapping[str, str],
    *,
    predictions: Any = None,
    bins: int = BINS,
) -> Profile:
    """Sketch ``frame``'s columns by role (``numeric``, ``boolean``, ``categorical``,
    ``high_cardinality``, ``datetime``; ``drop`` is skipped) and, optionally, the model's
    predictions on held-out rows (scores or labels)."""
    columns: dict[str, NumericSketch | CategoricalSketch | None] = {}
    for name, role in roles.items():
        if role == "drop" or name not in frame.columns:
            continue
        if role == "datetime":
            columns[name] = None
        elif role == "numeric":
            columns[name] = _numeric_sketch(frame[name], bins)
        else:
            columns[name] = _categorical_sketch(frame[name])
    prediction = None
    if predictions is not None:
        values = pd.Series(np.asarray(predictions))
        prediction = (
            _numeric_sketch(values, bins)
            if pd.api.types.is_float_dtype(values)
            else _categorical_sketch(values)
        )
    return Profile(len(frame), columns, prediction)


def _as_float(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        column = pd.to_numeric(column.astype("object"), errors="coerce")
    return column.to_numpy(dtype=float, na_value=np.nan)


def _numeric_sketch(column: pd.Series, bins: int) -> NumericSketch:
    values = _as_float(column)
    present = values[~np.isnan(values)]
    missing = int(len(values) - len(present))
    if len(present) == 0:
        return NumericSketch([], [], 0, missing, math.nan, math.nan)
    distinct, counts = np.unique(present, return_counts=True)
    if len(distinct) <= bins + 1:
        sketch = NumericSketch(
            distinct.tolist(), counts.tolist(), len(present), missing, 0.0, 0.0, True
        )
    else:
        # Quantile edges collapse where one value holds much of the column (say 99%
        # zeros); the quantiles of the other values keep those distinguishable too.
        # Extra quantiles in both tails keep the outer bins narrow on skewed columns,
        # where one wide bin would make the Wasserstein estimate coarse.
        grid = np.union1d(np.linspace(0, 1, bins + 1), _TAILS)
        heavy = distinct[counts > len(present) / bins]
        rest = present[~np.isin(present, heavy)] if len(heavy) else present[:0]
        edges = np.unique(
            np.concatenate(
                [np.quantile(present, grid), np.quantile(rest, grid) if len(rest) else [], heavy]
            )
        )
        sketch = NumericSketch(edges.tolist(), [], len(present), missing, 0.0, 0.0)
        sketch.counts = sketch.counts_of(present)[1:-1].tolist()
    sketch.mean, sketch.std = float(present.mean()), float(present.std())
    return sketch


def _labels(column: pd.Series) -> pd.Series:
    """Categories as text, missing values dropped (counted separately). Whole numbers
    read as floats (a column of codes with a missing value) stay ``"1"``, not ``"1.0"``."""
    present = column.dropna()
    if pd.api.types.is_float_dtype(present) and len(present) and (present % 1 == 0).all():
        present = present.astype("int64")
    return present.astype(str)


def _category_counts(column: pd.Series) -> pd.Series:
    """Rows per category (text labels), missing values left out."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # count the codes, not millions of strings
        counts = column.value_counts(dropna=True)
        counts = counts[counts > 0]
        counts.index = _labels(pd.Series(counts.index.astype(object))).to_numpy()
        return counts
    return _labels(column).value_counts()


def _categorical_sketch(column: pd.Series) -> CategoricalSketch:
    counts = _category_counts(column)
    kept = counts.iloc[:MAX_CATEGORIES]
    out = {str(k): int(v) for k, v in kept.items()}
    if len(counts) > MAX_CATEGORIES:
        out[_OTHER] = int(counts.iloc[MAX_CATEGORIES:].sum())
    n = int(counts.sum())
    return CategoricalSketch(out, n, int(len(column) - n))


# -- the policy ---------------------------------------------------------------------


@dataclass(frozen=True)
class DriftPolicy:
    """Which test per column type and when it counts as drift (env.yaml ``monitor``)."""

    numeric: str = "auto"
    categorical: str = "auto"
    #: ``auto`` uses p-value tests when either side has at most this many values,
    #: distances above (where p-values flag differences too small to matter)
    small_reference: int = 1000
    ks_pvalue: float = 0.05
    chi2_pvalue: float = 0.05
    wasserstein: float = 0.1
    jensenshannon: float = 0.1
    psi: float = 0.2
    #: the dataset drifts when at least this share of tested columns drifts
    dataset_share: float = 0.5
    #: fewer rows than this in the window: reported as not computed
    min_rows: int = 30
    #: a distance counts as drift only if the KS / chi-square test is also significant
    #: (at ks_pvalue / chi2_pvalue): near the threshold, sampling noise alone crosses it
    significance: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DriftPolicy:
        """From env.yaml's ``monitor.drift`` mapping; unknown keys and methods are errors."""
        config = dict(config or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(
                f"Unknown key(s) in env.yaml's monitor.drift: {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        policy = cls(**config)
        if policy.numeric not in NUMERIC_METHODS:
            raise ConfigError(
                f"monitor.drift.numeric is {policy.numeric!r}; use one of {', '.join(NUMERIC_METHODS)}."
            )
        if policy.categorical not in CATEGORICAL_METHODS:
            raise ConfigError(
                f"monitor.drift.categorical is {policy.categorical!r}; use one of {', '.join(CATEGORICAL_METHODS)}."
            )
        return policy

    def method(self, sketch: NumericSketch | CategoricalSketch, n_current: int) -> str:
        # Distances have no sense of sample size: on a small sample (either side) their
        # noise alone crosses the threshold, so ``auto`` uses tests with p-values there.
        small = min(sketch.n, n_current) <= self.small_reference
        if isinstance(sketch, NumericSketch):
            return self.numeric if self.numeric != "auto" else ("ks" if small else "wasserstein")
        if self.categorical != "auto":
            return self.categorical
        # The Jensen–Shannon distance of two samples of the same distribution grows with
        # the number of categories: below ~50 values per category, noise alone crosses it.
        sparse = min(sketch.n, n_current) < 50 * len(sketch.counts)
        return "chi2" if small or sparse else "jensenshannon"

    def threshold(self, method: str) -> float:
        return {
            "ks": self.ks_pvalue,
            "chi2": self.chi2_pvalue,
            "wasserstein": self.wasserstein,
            "jensenshannon": self.jensenshannon,
            "psi": self.psi,
        }[method]


# -- comparing a window with the reference -------------------------------------------------


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical | datetime
    method: str | None = None  # ks | wasserstein | psi | chi2 | jensenshannon; None: not tested
    statistic: float | None = None  # p-value for ks/chi2, a distance otherwise
    threshold: float | None = None
    drifted: bool | None = None  # None: not computed (see status)
    status: str = ""  # "drift", "ok", or "not computed: <reason>" / "not tested: <reason>"
    n_reference: int = 0
    n_current: int = 0
    p_value: float | None = None  # of the KS or chi-square test, whatever the method
    missing_reference: float | None = None  # share of missing values
    missing_current: float | None = None
    unseen_share: float | None = None  # categorical: share of current values never seen
    #: the reference and current distributions on the same bins / categories, for plots
    bins: list[Any] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    share_drifted: float | None
    drifted: bool
    n_current: int
    policy: DriftPolicy

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def table(self) -> pd.DataFrame:
        """One row per column, most drifted first (for reports and the CLI)."""
        rows = [
            {
                "column": c.column,
                "kind": c.kind,
                "method": c.method or "-",
                "statistic": c.statistic,
                "threshold": c.threshold,
                "p value": c.p_value,
                "status": c.status,
                "missing ref": c.missing_reference,
                "missing now": c.missing_current,
                "unseen": c.unseen_share,
            }
            for c in ([*self.columns, self.prediction] if self.prediction else self.columns)
        ]
        frame = pd.DataFrame(rows)
        order = frame["status"].map(lambda s: 0 if s == "drift" else 1 if s == "ok" else 2)
        return frame.assign(_o=order).sort_values(["_o", "column"]).drop(columns="_o")

    def metrics(self) -> dict[str, Any]:
        """Flat numbers for the run record (one per tested column, plus the dataset)."""
        out: dict[str, Any] = {
            "drift_share": self.share_drifted if self.share_drifted is not None else math.nan,
            "drift_detected": int(self.drifted),
            "drift_columns": len(self.drifted_columns),
            "rows": self.n_current,
        }
        for c in [*self.columns, *([self.prediction] if self.prediction else [])]:
            if c.statistic is not None:
                out[f"drift.{c.column}.{c.method}"] = c.statistic
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """The report :meth:`to_dict` wrote (a ``drift.json``), for tables and plots."""
        prediction = data.get("prediction")
        return cls(
            columns=[ColumnDrift(**c) for c in data["columns"]],
            prediction=ColumnDrift(**prediction) if prediction else None,
            share_drifted=data["share_drifted"],
            drifted=bool(data["drifted"]),
            n_current=int(data["n_current"]),
            policy=DriftPolicy(**data["policy"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "drifted_columns": self.drifted_columns,
            "n_current": self.n_current,
            "policy": asdict(self.policy),
            "columns": [asdict(c) for c in self.columns],
            "prediction": None if self.prediction is None else asdict(self.prediction),
        }


@dataclass
class ColumnCounts:
    """One column of a window counted against its reference sketch. Counts of parts of
    the same window add up (:meth:`merge`)."""

    rows: int  # values in the window, missing ones included
    present: int  # non-missing values
    #: numeric: [below the reference range, per value or bin..., above it];
    #: categorical: per kept reference category (in the sketch's order), then the rest
    counts: list[int] = field(default_factory=list)
    below: float = 0.0  # numeric: sum of (reference minimum − value) below the range
    above: float = 0.0  # numeric: sum of (value − reference maximum) above the range

    def merge(self, other: ColumnCounts) -> ColumnCounts:
        if self.counts and other.counts:
            counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        else:  # no reference values to count against: both are empty
            counts = list(self.counts or other.counts)
        return ColumnCounts(
            self.rows + other.rows,
            self.present + other.present,
            counts,
            self.below + other.below,
            self.above + other.above,
        )


@dataclass
class WindowCounts:
    """A window of data counted against a :class:`Profile` (:func:`count`): all
    :func:`compare_counts` needs, of a size that does not grow with the window's rows.

    Counts of consecutive parts of a file merge into the counts of the whole
    (:meth:`merge`): integers add exactly, and the two tail sums per numeric column are
    floats added in the parts' order, so a job that merges the same parts in the same
    order gets the same figures to the last bit, on one machine or on a cluster.
    """

    rows: int
    columns: dict[str, ColumnCounts | None]  # None: the column is missing from the window
    prediction: ColumnCounts | None = None

    def merge(self, other: WindowCounts) -> WindowCounts:
        """The counts of this window followed by ``other`` (counted against the same profile)."""
        columns: dict[str, ColumnCounts | None] = {}
        for name, mine in self.columns.items():
            theirs = other.columns.get(name)
            # missing from either part: missing from the window (never half counted)
            columns[name] = None if mine is None or theirs is None else mine.merge(theirs)
        prediction = None
        if self.prediction is not None and other.prediction is not None:
            prediction = self.prediction.merge(other.prediction)
        return WindowCounts(self.rows + other.rows, columns, prediction)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        return cls(
            int(data["rows"]),
            {k: None if v is None else ColumnCounts(**v) for k, v in data["columns"].items()},
            ColumnCounts(**data["prediction"]) if data.get("prediction") else None,
        )


def count(reference: Profile, current: pd.DataFrame, *, predictions: Any = None) -> WindowCounts:
    """Count ``current`` (a window, or a part of one) against ``reference``'s sketches;
    ``predictions`` (the model's outputs for its rows) against the prediction sketch."""
    columns: dict[str, ColumnCounts | None] = {}
    for name, sketch in reference.columns.items():
        if sketch is None:
            continue  # dates: not tested
        columns[name] = _count_column(sketch, current[name]) if name in current.columns else None
    prediction = None
    if reference.prediction is not None and predictions is not None:
        prediction = _count_column(reference.prediction, pd.Series(np.asarray(predictions)))
    return WindowCounts(len(current), columns, prediction)


def _count_column(sketch: NumericSketch | CategoricalSketch, column: pd.Series) -> ColumnCounts:
    if isinstance(sketch, NumericSketch):
        values = _as_float(column)
        present = values[~np.isnan(values)]
        if not sketch.edges:  # the reference column has no values: nothing to count in
            return ColumnCounts(len(column), len(present))
        low, high = sketch.edges[0], sketch.edges[-1]
        return ColumnCounts(
            len(column),
            len(present),
            sketch.counts_of(present).tolist(),
            float((low - present[present < low]).sum()),
            float((present[present > high] - high).sum()),
        )
    counts = _category_counts(column)
    n = int(counts.sum())
    kept = [int(counts.get(k, 0)) for k in sketch.counts if k != _OTHER]
    return ColumnCounts(len(column), n, [*kept, n - sum(kept)])


def compare(
    reference: Profile,
    current: pd.DataFrame,
    *,
    policy: DriftPolicy | None = None,
    predictions: Any = None,
) -> DriftReport:
    """Score ``current`` (a window of inputs) against the ``reference`` profile.

    Args:
        predictions: the model's outputs for ``current`` (scores or labels), compared with
            the profile's prediction sketch when both exist.
    """
    return compare_counts(
        reference, count(reference, current, predictions=predictions), policy=policy
    )


def compare_counts(
    reference: Profile, window: WindowCounts, *, policy: DriftPolicy | None = None
) -> DriftReport:
    """Judge a window from its counts (:func:`count`, merged over its parts) against the
    profile they were counted with."""
    policy = policy or DriftPolicy()
    results = []
    for name, sketch in reference.columns.items():
        counted = window.columns.get(name)
        if sketch is None:
            results.append(
                ColumnDrift(
                    name, "datetime", None, None, None, None, "not tested: dates move with time"
                )
            )
        elif counted is None:
            results.append(
                ColumnDrift(
                    name,
                    sketch.kind,
                    status="not computed: the column is missing from the current data",
                    n_reference=sketch.n,
                )
            )
        else:
            results.append(_compare_column(name, sketch, counted, policy))
    prediction = None
    if reference.prediction is not None and window.prediction is not None:
        prediction = _compare_column("prediction", reference.prediction, window.prediction, policy)
    tested = [c for c in results if c.drifted is not None]
    share = sum(bool(c.drifted) for c in tested) / len(tested) if tested else None
    drifted = share is not None and share >= policy.dataset_share
    return DriftReport(results, prediction, share, drifted, window.rows, policy)


def _compare_column(
    name: str, sketch: NumericSketch | CategoricalSketch, counted: ColumnCounts, policy: DriftPolicy
) -> ColumnDrift:
    total_ref = sketch.n + sketch.missing
    result = ColumnDrift(
        name,
        sketch.kind,
        n_reference=sketch.n,
        missing_reference=sketch.missing / total_ref if total_ref else None,
    )
    n_present = counted.present
    result.n_current = n_present
    result.missing_current = 1 - n_present / counted.rows if counted.rows else None
    if sketch.n == 0:
        result.status = "not computed: the reference column has no values"
        return result
    if n_present < policy.min_rows:
        result.status = (
            f"not computed: {n_present} values in the window (at least {policy.min_rows} needed)"
        )
        return result
    result.method = method = policy.method(sketch, n_present)
    result.threshold = threshold = policy.threshold(method)
    if isinstance(sketch, NumericSketch):
        statistic, p_value, bins, ref, cur = _numeric_statistic(method, sketch, counted)
        alpha = policy.ks_pvalue
    else:
        statistic, p_value, bins, ref, cur, result.unseen_share = _categorical_statistic(
            method, sketch, counted
        )
        alpha = policy.chi2_pvalue
    result.statistic, result.p_value = float(statistic), float(p_value)
    if method in {"ks", "chi2"}:
        result.drifted = bool(statistic < threshold)
    else:
        # a distance large enough to matter, and (by default) too large for chance
        result.drifted = bool(
            statistic >= threshold and (not policy.significance or p_value < alpha)
        )
    result.status = "drift" if result.drifted else "ok"
    result.bins, result.reference, result.current = bins, ref, cur
    return result


def _numeric_statistic(
    method: str, sketch: NumericSketch, counted: ColumnCounts
) -> tuple[float, float, list[Any], list[float], list[float]]:
    """(statistic, KS p-value, bins, reference shares, current shares)."""
    # Both sides as [below the reference range, per value or bin..., above it].
    ref = np.concatenate([[0.0], np.asarray(sketch.counts, dtype=float), [0.0]])
    cur = np.asarray(counted.counts, dtype=float)
    ref_p, cur_p = ref / ref.sum(), cur / cur.sum()
    d = float(np.abs(np.cumsum(ref_p) - np.cumsum(cur_p)).max())
    p_value = _ks_pvalue(d, sketch.n, counted.present)
    if method == "ks":
        statistic = p_value
    elif method == "wasserstein":
        statistic = _wasserstein(sketch, ref_p, cur_p, counted) / max(sketch.std, 1e-3)
    else:  # PSI on the reference deciles; values beyond the range join the outer ones
        statistic = _psi(*_deciles(ref_p, cur_p))
    return statistic, p_value, list(sketch.edges), ref_p[1:-1].tolist(), cur_p[1:-1].tolist()


def _ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value (conservative for binned or discrete data):
    Kolmogorov's distribution's survival function, ``scipy.stats.kstwobign.sf``,
    from ``scipy.special`` (the same number; importing scipy.stats costs 0.4-0.6 s of
    CPU, scipy.special a tenth of that, and the compiled scorer has it already)."""
    from scipy.special import kolmogorov

    return float(kolmogorov(d * math.sqrt(n * m / (n + m))))


def _wasserstein(
    sketch: NumericSketch, ref_p: np.ndarray, cur_p: np.ndarray, counted: ColumnCounts
) -> float:
    """W1 = ∫ |F_ref − F_cur| dx from the two CDFs at the sketch's edges (``ref_p`` and
    ``cur_p`` include the below/above-range shares); the current data's tails beyond
    the reference range are added exactly (their sums are counted)."""
    edges = np.asarray(sketch.edges)
    tails = (counted.below + counted.above) / counted.present
    if len(edges) < 2:
        return float(tails)
    widths = np.diff(edges)
    ref_cdf, cur_cdf = np.cumsum(ref_p), np.cumsum(cur_p)
    if sketch.discrete:
        # step CDFs: F(x) = share ≤ e_i on [e_i, e_i+1)
        gap = np.abs(ref_cdf[1:-2] - cur_cdf[1:-2])
        return float((gap * widths).sum() + tails)
    # continuous: F(e_i) = share < e_i (index i of the cumulated shares, the share
    # below the range first), linear in between (trapezoids)
    gap = np.abs(ref_cdf[:-1] - cur_cdf[:-1])
    return float(((gap[:-1] + gap[1:]) / 2 * widths).sum() + tails)


def _deciles(ref_p: np.ndarray, cur_p: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pool bins into ``k`` groups of (about) equal reference share."""
    start = np.concatenate([[0.0], np.cumsum(ref_p)[:-1]])
    group = np.minimum((start * k + 1e-9).astype(int), k - 1)
    return np.bincount(group, ref_p, k), np.bincount(group, cur_p, k)


def _psi(ref: np.ndarray, cur: np.ndarray, eps: float = 1e-4) -> float:
    ref, cur = np.clip(ref, eps, None), np.clip(cur, eps, None)
    return float(((cur - ref) * np.log(cur / ref)).sum())


def _categorical_statistic(
    method: str, sketch: CategoricalSketch, counted: ColumnCounts
) -> tuple[float, float, list[Any], list[float], list[float], float]:
    """(statistic, chi-square p-value, categories, reference shares, current shares,
    unseen share)."""
    n = counted.present
    known = [k for k in sketch.counts if k != _OTHER]
    current = dict(zip(known, counted.counts[:-1], strict=True))
    unseen = counted.counts[-1]
    if _OTHER in sketch.counts:
        current[_OTHER] = unseen  # values beyond the kept categories may be the rare ones
        unseen_key = _OTHER
    else:
        unseen_key = _UNSEEN
        current[_UNSEEN] = unseen
    categories = list(current)
    ref = np.array([sketch.counts.get(k, 0) for k in categories], dtype=float)
    cur = np.array([current[k] for k in categories], dtype=float)
    ref_p, cur_p = ref / ref.sum(), cur / cur.sum()
    p_value = _chi2_pvalue(ref, cur)
    if method == "chi2":
        statistic = p_value
    elif method == "jensenshannon":
        from scipy.spatial.distance import jensenshannon

        statistic = float(jensenshannon(ref_p, cur_p))
    else:
        statistic = _psi(ref_p, cur_p)
    unseen_share = (unseen / n) if unseen_key == _UNSEEN and n else 0.0
    return statistic, p_value, categories, ref_p.tolist(), cur_p.tolist(), unseen_share


def _chi2_pvalue(ref: np.ndarray, cur: np.ndarray) -> float:
    """Pearson's chi-square test of the 2×k table of counts, without Yates' correction:
    ``scipy.stats.chi2_contingency(table, correction=False).pvalue``, computed as it
    computes it (expected counts from the margins, the statistic summed over the table,
    the chi-square survival function from ``scipy.special``: the same float, see
    :func:`_ks_pvalue` for why not scipy.stats)."""
    from scipy.special import chdtrc

    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if np.any(expected == 0):  # as scipy: an empty side has no expected counts
        raise ValueError(
            f"The internally computed table of expected frequencies has a zero element at {np.argwhere(expected == 0).tolist()}."
        )
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(chdtrc(table.shape[1] - 1, statistic)) if statistic > 0 else 1.0
