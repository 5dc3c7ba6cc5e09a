"""A fitted nbops model re-expressed as array operations, for fast small-batch scoring.

scikit-learn's ``ColumnTransformer`` and pandas cost several milliseconds per call
whatever the number of rows, so a service answering one row at a time spends almost all
its time there. :func:`compile_model` reads the fitted state of the preprocessor that
:func:`nbops.modeling.features.build_preprocessor` builds (imputers, missing indicators, scalers,
one-hot and target encoders, date parts) and returns a :class:`CompiledModel` that scores
rows given as plain column lists with a few numpy operations, then calls the fitted
estimator on the resulting array.

Encoders are not re-implemented: their lookup tables are read off the fitted encoder
itself, by transforming every known category once. The compiled model is checked against
the scikit-learn pipeline on probe rows when it is built; a step it does not know, or any
disagreement, gives ``None`` and the caller keeps the scikit-learn path.

Pure: numpy, pandas and scikit-learn only; no I/O. scikit-learn (and nbops' feature
pipeline) is imported where a model is compiled, not by scoring: a scorer stored with the
model (:mod:`nbops.serving.stored`) scores without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat
from typing import Any

import numpy as np
import pandas as pd

from nbops.serving.validation import Batch, _as_dates

__all__ = ["CompiledModel", "compile_model"]

Columns = dict[str, Sequence[Any]]

_UNSEEN = "\x00nbops-unseen\x00"


class _Unsupported(Exception):
    """A pipeline step the compiler does not know; the caller keeps scikit-learn."""


@dataclass(frozen=True)
class _NumericBlock:
    """Numeric, boolean or datetime columns: missing values filled (with indicators),
    then scaled. Date columns first become five parts each (see DatetimeFeatures)."""

    columns: list[str]
    origins: list[float] | None  # the training origin per column when these are dates
    fill: np.ndarray  # per input value: what replaces NaN
    keep: np.ndarray  # inputs kept after filling (an all-NaN training column is dropped)
    flagged: np.ndarray  # inputs that get a missing-value indicator
    mean: np.ndarray  # per output column (0 where not scaled)
    scale: np.ndarray  # per output column (1 where not scaled)

    @property
    def width_in(self) -> int:
        return len(self.fill)

    @property
    def width_out(self) -> int:
        return len(self.keep) + len(self.flagged)


@dataclass(frozen=True)
class _LookupBlock:
    """Text columns: each value → a row of a per-column table read off the fitted encoder."""

    columns: list[str]
    index: list[dict[str, int]]  # category → row of table, per column
    tables: list[np.ndarray]  # the last row of each table is the unseen-category output

    @property
    def width_out(self) -> int:
        return sum(t.shape[1] for t in self.tables)


@dataclass(frozen=True)
class _FusedLookups:
    """Every text column's table in one flat array (see :meth:`CompiledModel._fuse`)."""

    flat: np.ndarray
    out: np.ndarray
    column: np.ndarray
    stride: np.ndarray
    offset: np.ndarray


class _Linear:
    """LogisticRegression (binary or multinomial) and linear regressors: X @ coef + b."""

    def __init__(self, estimator: Any) -> None:
        coef = np.asarray(estimator.coef_, dtype=float)
        self.coef_t = coef.T if coef.ndim == 2 else coef.reshape(-1, 1)
        self.intercept = np.asarray(estimator.intercept_, dtype=float)
        self.classifier = hasattr(estimator, "predict_proba")

    def raw(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_t + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.raw(X)
        if scores.shape[1] == 1:  # binary: as scikit-learn's _predict_proba_lr
            return _binary(_expit(scores[:, 0]))
        return _softmax(scores)

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.raw(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores


class _TreeEnsemble:
    """HistGradientBoosting: every tree walked at once, one numpy step per depth level."""

    #: above this many rows scikit-learn's compiled tree walk is faster than numpy's
    MAX_ROWS = 32

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        if getattr(estimator, "_preprocessor", None) is not None:
            raise _Unsupported("gradient boosting with native categorical features")
        loss = type(estimator._loss).__name__
        if loss not in {"HalfBinomialLoss", "HalfMultinomialLoss", "HalfSquaredError"}:
            raise _Unsupported(f"gradient boosting loss {loss}")
        self.classifier = hasattr(estimator, "predict_proba")
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=float).reshape(-1)
        per_class: list[tuple[np.ndarray, ...]] = []
        for k in range(len(self.baseline)):
            nodes = [iteration[k].nodes for iteration in estimator._predictors]
            if any(n["is_categorical"].any() for n in nodes):
                raise _Unsupported("gradient boosting with categorical splits")
            offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
            flat = np.concatenate(nodes)
            shift = np.repeat(offsets, [len(n) for n in nodes])
            per_class.append(
                (
                    offsets,
                    flat["feature_idx"].astype(np.intp),
                    flat["num_threshold"].astype(float),
                    flat["missing_go_to_left"].astype(bool),
                    (flat["left"] + shift).astype(np.intp),
                    (flat["right"] + shift).astype(np.intp),
                    flat["is_leaf"].astype(bool),
                    flat["value"].astype(float),
                    int(flat["depth"].max()),
                )
            )
        self.trees = per_class

    def raw(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        out = np.empty((n, len(self.trees)))
        rows = np.arange(n)[:, None]
        for k, (
            roots,
            feature,
            threshold,
            missing_left,
            left,
            right,
            leaf,
            value,
            depth,
        ) in enumerate(self.trees):
            node = np.broadcast_to(roots, (n, len(roots)))
            for _ in range(depth):
                x = X[rows, feature[node]]
                go_left = np.where(np.isnan(x), missing_left[node], x <= threshold[node])
                node = np.where(leaf[node], node, np.where(go_left, left[node], right[node]))
            out[:, k] = self.baseline[k] + value[node].sum(axis=1)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if len(X) > self.MAX_ROWS:
            return self.estimator.predict_proba(X)
        raw = self.raw(X)
        if raw.shape[1] == 1:
            return _binary(_expit(raw[:, 0]))
        return _softmax(raw)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) > self.MAX_ROWS:
            return self.estimator.predict(X)
        return self.raw(X)[:, 0]


def _expit(x: np.ndarray) -> np.ndarray:
    return _special().expit(x)


def _softmax(scores: np.ndarray) -> np.ndarray:
    return _special().softmax(scores, axis=1)


@cache
def _special() -> Any:
    """scipy.special, imported on first use (an import statement per call costs more
    than scoring a row)."""
    import scipy.special

    return scipy.special


def _binary(p: np.ndarray) -> np.ndarray:
    """The two-column probabilities of the positive class's ``p``: ``[1 - p, p]``."""
    out = np.empty((len(p), 2))
    np.subtract(1, p, out=out[:, 0])
    out[:, 1] = p
    return out


def _compile_estimator(estimator: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    if isinstance(estimator, (LogisticRegression, LinearRegression, Ridge)):
        return _Linear(estimator)
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return _TreeEnsemble(estimator)
    return estimator  # scikit-learn's own predict on the compiled feature matrix


class CompiledModel:
    """The fitted preprocessing fused into a few array operations over all columns at
    once, then the estimator (compiled too where it is a linear model or boosted trees).

    Every numeric, boolean and date input becomes one column of a raw matrix; filling,
    indicators and scaling are then one ``where``, two gathers and two affine steps,
    in the order scikit-learn applies them, so the results are the same floats.
    """

    #: Attributes computed from the others on first use: not part of the model's state
    #: (a stored scorer, :mod:`nbops.serving.stored`, leaves them out).
    DERIVED = frozenset({"_fused"})

    def __init__(self, blocks: list[_NumericBlock | _LookupBlock], estimator: Any) -> None:
        from nbops.modeling import features as nbops_features

        self.estimator = estimator
        self.floats: list[tuple[str, int]] = []
        self.dates: list[tuple[str, float, int]] = []
        self.lookups: list[tuple[str, dict[str | None, int], np.ndarray, int, int]] = []
        fill, value_src, value_dst, flag_src, flag_dst = [], [], [], [], []
        value_mean, value_scale, flag_mean, flag_scale = [], [], [], []
        raw = out = 0
        for block in blocks:
            if isinstance(block, _LookupBlock):
                for name, index, table in zip(
                    block.columns, block.index, block.tables, strict=True
                ):
                    # None (a missing value) is looked up as the encoder's missing marker.
                    unseen = len(table) - 1
                    lookup = {**index, None: index.get(nbops_features._MISSING, unseen)}
                    self.lookups.append((name, lookup, table, out, out + table.shape[1]))
                    out += table.shape[1]
                continue
            if block.origins is None:
                self.floats += [(name, raw + j) for j, name in enumerate(block.columns)]
            else:
                self.dates += [
                    (name, origin, raw + 5 * j)
                    for j, (name, origin) in enumerate(
                        zip(block.columns, block.origins, strict=True)
                    )
                ]
            kept = len(block.keep)
            fill.append(block.fill)
            value_src.append(raw + block.keep)
            value_dst.append(out + np.arange(kept))
            flag_src.append(raw + block.flagged)
            flag_dst.append(out + kept + np.arange(len(block.flagged)))
            value_mean.append(block.mean[:kept])
            value_scale.append(block.scale[:kept])
            flag_mean.append(block.mean[kept:])
            flag_scale.append(block.scale[kept:])
            raw += block.width_in
            out += block.width_out
        self.width_raw, self.width = raw, out
        self.float_names = [name for name, _ in self.floats]
        self.float_at = np.array([j for _, j in self.floats], dtype=np.intp)

        def cat(parts: list[np.ndarray], dtype: Any = float) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)

        self.fill = cat(fill)
        self.value_src, self.value_dst = cat(value_src, np.intp), cat(value_dst, np.intp)
        self.flag_src, self.flag_dst = cat(flag_src, np.intp), cat(flag_dst, np.intp)
        self.value_mean, self.value_scale = cat(value_mean), cat(value_scale)
        self.flag_mean, self.flag_scale = cat(flag_mean), cat(flag_scale)

    def transform(self, columns: Columns, n: int) -> np.ndarray:
        """The feature matrix for ``n`` rows given as ``{column: [value, ...]}``."""
        # Built column by column, so column-major; the estimator gets the row-major copy
        # scikit-learn's ColumnTransformer would give it (the same floats, bit for bit).
        X = np.empty((n, self.width), order="F")
        if self.width_raw:
            raw = np.empty((n, self.width_raw), order="F")
            if self.floats:  # one numpy call for every number and true/false column
                raw[:, self.float_at] = np.array(
                    [columns[name] for name in self.float_names], dtype=float
                ).T
            for name, origin, j in self.dates:
                raw[:, j : j + 5] = _date_parts(columns[name], origin)
            mask = np.isnan(raw)
            filled = np.where(mask, self.fill, raw)
            X[:, self.value_dst] = (filled[:, self.value_src] - self.value_mean) / self.value_scale
            X[:, self.flag_dst] = (mask[:, self.flag_src] - self.flag_mean) / self.flag_scale
        if self.lookups and not any(
            isinstance(columns[name], pd.Categorical) for name, *_ in self.lookups
        ):
            # Every text column at once: one C-level pass of dictionary lookups over all
            # their values, then one gather from the tables laid end to end (a gather
            # and a copy per column cost more than the lookups of 100 rows).
            fused = self.__dict__.get("_fused") or self._fuse()
            rows = np.fromiter(
                chain.from_iterable(
                    map(index.get, columns[name], repeat(len(table) - 1))
                    for name, index, table, _, _ in self.lookups
                ),
                np.intp,
                n * len(self.lookups),
            ).reshape(len(self.lookups), n)
            X[:, fused.out] = fused.flat[rows[fused.column].T * fused.stride + fused.offset]
            return np.ascontiguousarray(X)
        for name, index, table, start, stop in self.lookups:
            unseen = len(table) - 1
            values = columns[name]
            if isinstance(values, pd.Categorical):  # from a file: each distinct value once
                found = [index.get(v, unseen) for v in values.categories]
                rows = np.array([*found, index[None]], dtype=np.intp)[values.codes]
            else:  # one C-level pass of dictionary lookups
                rows = np.fromiter(map(index.get, values, repeat(unseen)), np.intp, n)
            X[:, start:stop] = table[rows]
        return np.ascontiguousarray(X)

    def _fuse(self) -> _FusedLookups:
        """The lookup tables laid end to end, and for each output column of the text
        block: its table (``column``), row stride and first element in ``flat``."""
        out, column, stride, offset, base = [], [], [], [], 0
        for j, (_, _, table, start, stop) in enumerate(self.lookups):
            width = stop - start
            out += range(start, stop)
            column += [j] * width
            stride += [width] * width
            offset += range(base, base + width)
            base += table.size
        fused = _FusedLookups(
            np.concatenate(
                [np.ascontiguousarray(t, dtype=float).ravel() for *_, t, _, _ in self.lookups]
            ),
            np.array(out, dtype=np.intp),
            np.array(column, dtype=np.intp),
            np.array(stride, dtype=np.intp),
            np.array(offset, dtype=np.intp),
        )
        self.__dict__["_fused"] = fused
        return fused

    def predict_proba(self, columns: Columns, n: int) -> np.ndarray:
        return self.estimator.predict_proba(self.transform(columns, n))

    def predict(self, columns: Columns, n: int) -> np.ndarray:
        return self.estimator.predict(self.transform(columns, n))


def compile_model(pipeline: Any, *, probe: Batch) -> CompiledModel | None:
    """Compile a fitted ``Pipeline(features → estimator)``; ``None`` when not possible.

    Args:
        pipeline: the fitted model as trained by nbops.
        probe: rows on which the compiled model must reproduce the pipeline's output
            (see :func:`nbops.serving.validation.probe_batch`).
    """
    try:
        compiled = _compile(pipeline)
    except Exception:  # noqa: BLE001 - unknown step, or private scikit-learn state that moved
        return None
    method = "predict_proba" if hasattr(pipeline, "predict_proba") else "predict"
    try:
        frame = probe.frame()
        pairs = [
            (
                pipeline.steps[0][1].transform(frame),
                compiled.transform(probe.columns, probe.n_rows),
            ),
            (
                getattr(pipeline, method)(frame),
                getattr(compiled, method)(probe.columns, probe.n_rows),
            ),
        ]
    except Exception:  # noqa: BLE001 - any failure means: keep scikit-learn
        return None
    for expected, got in pairs:
        expected, got = np.asarray(expected, dtype=float), np.asarray(got, dtype=float)
        if expected.shape != got.shape or not np.allclose(
            got, expected, rtol=1e-9, atol=1e-12, equal_nan=True
        ):
            return None
    return compiled


def _compile(pipeline: Any) -> CompiledModel:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise _Unsupported("not a Pipeline(features → estimator)")
    features, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(features, ColumnTransformer):
        raise _Unsupported("the first step is not a ColumnTransformer")
    blocks: list[_NumericBlock | _LookupBlock] = []
    for name, transformer, columns in features.transformers_:
        if transformer == "drop" or (name == "remainder" and transformer == "drop"):
            continue
        if not isinstance(transformer, Pipeline) or not list(columns):
            raise _Unsupported(f"transformer {name!r} is not a Pipeline")
        blocks.append(_compile_block(list(columns), [s for _, s in transformer.steps]))
    if not blocks:
        raise _Unsupported("no feature blocks")
    return CompiledModel(blocks, _compile_estimator(estimator))


def _compile_block(columns: list[str], steps: list[Any]) -> _NumericBlock | _LookupBlock:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from nbops.modeling import features as nbops_features

    first, rest = steps[0], steps[1:]
    if isinstance(first, FunctionTransformer) and first.func is nbops_features._to_text:
        return _lookup_block(columns, steps)
    if isinstance(first, FunctionTransformer) and first.func is nbops_features._to_float:
        origins, width = None, len(columns)
    elif isinstance(first, nbops_features.DatetimeFeatures):
        origins, width = [float(o) for o in first.origin_], 5 * len(columns)
    else:
        raise _Unsupported(f"first step {type(first).__name__}")
    imputer = rest.pop(0) if rest and isinstance(rest[0], SimpleImputer) else None
    scaler = rest.pop(0) if rest and isinstance(rest[0], StandardScaler) else None
    if rest:
        raise _Unsupported(f"step {type(rest[0]).__name__}")
    fill, keep, flagged = np.full(width, np.nan), np.arange(width), np.empty(0, dtype=np.intp)
    if imputer is not None:
        missing = imputer.missing_values
        if not (isinstance(missing, float) and np.isnan(missing)):
            raise _Unsupported("imputer with a missing-value marker other than NaN")
        statistics = np.asarray(imputer.statistics_, dtype=float)
        fill = statistics
        if not getattr(imputer, "keep_empty_features", False):
            keep = np.flatnonzero(~np.isnan(statistics))
        else:
            fill = np.where(np.isnan(statistics), 0.0, statistics)
        if imputer.indicator_ is not None:
            flagged = np.asarray(imputer.indicator_.features_, dtype=np.intp)
    n_out = len(keep) + len(flagged)
    mean, scale = np.zeros(n_out), np.ones(n_out)
    if scaler is not None:
        if scaler.with_mean and scaler.mean_ is not None:
            mean = np.asarray(scaler.mean_, dtype=float)
        if scaler.with_std and scaler.scale_ is not None:
            scale = np.asarray(scaler.scale_, dtype=float)
    if len(mean) != n_out or len(scale) != n_out:
        raise _Unsupported("scaler width differs from the imputer's output")
    return _NumericBlock(columns, origins, fill, keep, flagged, mean, scale)


def _date_parts(values: Any, origin: float) -> np.ndarray:
    """year, month, weekday, day of year and whole days since the training origin, for
    every value at once (datetime64[ns] in UTC; NaT gives NaN parts)."""
    stamps = _as_dates(values)
    # Calendar parts of each day (see _calendar), each written in place: the numbers
    # numpy's datetime casts give, for a fraction of their CPU.
    nanoseconds = stamps.view(np.int64)
    days = nanoseconds // 86_400_000_000_000  # floored, as numpy's datetime64[D]
    first, calendar = _calendar()
    parts = calendar.take(days - first, axis=0, mode="clip")  # NaT: a day, masked below
    out = np.empty((len(stamps), 5))
    out[:, 0] = parts[:, 0]
    out[:, 1] = parts[:, 1]
    np.remainder(days + 3, 7.0, out=out[:, 2])  # 1970-01-01 was a Thursday (3)
    out[:, 3] = parts[:, 2]
    # as pandas computes it: nanoseconds since the epoch / 1e9 / 86400
    np.floor(nanoseconds / 1e9 / 86_400.0 - origin, out=out[:, 4])
    missing = np.isnat(stamps)
    if missing.any():
        out[missing] = np.nan
    return out


@cache
def _calendar() -> tuple[int, np.ndarray]:
    """(first day, [year, month, day of the year] of every day a ``datetime64[ns]`` holds,
    1677-09-21 to 2262-04-11, from that day on), built once by :func:`_civil`.

    1.3 MB (int16): a request's dates are then one gather instead of some twenty numpy
    operations (about 20 µs of a 100-row request)."""
    first = np.iinfo(np.int64).min // 86_400_000_000_000
    last = np.iinfo(np.int64).max // 86_400_000_000_000
    year, month, day_of_year = _civil(np.arange(first, last + 1))
    return first, np.stack([year, month, day_of_year], axis=1).astype(np.int16)


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day of the year) of days since 1970-01-01, in integer arithmetic
    (H. Hinnant's ``civil_from_days``): the numbers numpy's datetime64[Y]/[M]/[D] casts
    give, at a fifth of their cost (they convert every value through a date struct)."""
    z = days + 719_468  # days since 0000-03-01
    era = z // 146_097
    day_of_era = z - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    from_march = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month = (5 * from_march + 2) // 153  # 0 = March
    january = month >= 10  # January or February: the next calendar year
    year = year_of_era + era * 400 + january
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day_of_year = np.where(january, from_march - 305, from_march + 60 + leap)
    return year, np.where(january, month - 9, month + 3), day_of_year


def _lookup_block(columns: list[str], steps: list[Any]) -> _LookupBlock:
    from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

    encoder = steps[1] if len(steps) > 1 else None
    if not all(isinstance(s, (OneHotEncoder, TargetEncoder, StandardScaler)) for s in steps[1:]):
        raise _Unsupported("text block with an unknown encoder")
    if isinstance(encoder, OneHotEncoder):
        if encoder.drop_idx_ is not None:
            raise _Unsupported("one-hot encoder that drops a category")
        infrequent = encoder.infrequent_categories_ or [None] * len(columns)
        widths = [
            len(cats) - (0 if inf is None else len(inf)) + (0 if inf is None else 1)
            for cats, inf in zip(encoder.categories_, infrequent, strict=True)
        ]
    elif isinstance(encoder, TargetEncoder):
        per_column = len(encoder.classes_) if encoder.target_type_ == "multiclass" else 1
        widths = [per_column] * len(columns)
    else:
        raise _Unsupported("text block without an encoder")
    categories = [[str(c) for c in cats] for cats in encoder.categories_]
    # One probe frame holding every category of every column, then the unseen marker.
    height = max(len(c) for c in categories) + 1
    probe = pd.DataFrame(
        {
            name: cats + [_UNSEEN] * (height - len(cats))
            for name, cats in zip(columns, categories, strict=True)
        }
    )
    out: Any = probe
    for step in steps:
        out = step.transform(out)
    out = np.asarray(out, dtype=float)
    if out.shape[1] != sum(widths):
        raise _Unsupported("encoder output width differs from its categories")
    index, tables, start = [], [], 0
    for cats, width in zip(categories, widths, strict=True):
        span = out[:, start : start + width]
        start += width
        index.append({c: i for i, c in enumerate(cats)})
        tables.append(np.vstack([span[: len(cats)], span[-1:]]))
    return _LookupBlock(columns, index, tables)
