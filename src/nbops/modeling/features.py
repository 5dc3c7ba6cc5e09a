"""Feature engineering built from column roles: no feature code per dataset.

:func:`build_preprocessor` turns the roles of :mod:`nbops.modeling.roles` into one scikit-learn
``ColumnTransformer`` that handles missing values, rare and unseen categories, many
categories and dates. It lives inside each model's ``Pipeline``, so it is fit on
training rows only and travels with the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from packaging.version import Version
from sklearn import __version__ as _sklearn_version
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder
from sklearn.utils.validation import check_is_fitted

from nbops.errors import DataError
from nbops.modeling.roles import ColumnRole

sklearn_version = Version(_sklearn_version)

__all__ = ["DatetimeFeatures", "build_preprocessor", "columns_by_role"]

#: Categories seen fewer times than this in training are pooled as "infrequent".
MIN_CATEGORY_COUNT = 5
_MISSING = "__missing__"


class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Split datetime columns into numeric parts: year, month, weekday, day of year and
    days elapsed since the earliest training date. Missing dates give NaN parts.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-03-15"])})
        >>> DatetimeFeatures().fit(X).transform(X).shape
        (2, 5)
    """

    _PARTS = ("year", "month", "weekday", "dayofyear", "days")

    def fit(self, X: pd.DataFrame, y: object = None) -> DatetimeFeatures:
        frame = _as_datetimes(X)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        # Plain floats (days since 1970), so the fitted state serialises safely (skops).
        self.origin_ = [float(_epoch_days(frame[c]).min()) for c in frame.columns]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "origin_")
        frame = _as_datetimes(X)
        parts = []
        for column, origin in zip(frame.columns, self.origin_, strict=False):
            d = frame[column]
            elapsed = np.floor(_epoch_days(d) - origin)  # NaN when the origin is NaN
            parts += [d.dt.year, d.dt.month, d.dt.day_of_week, d.dt.day_of_year, elapsed]
        return (
            np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])
            if parts
            else np.empty((len(frame), 0))
        )

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "origin_")
        return np.asarray(
            [f"{c}_{p}" for c in self.feature_names_in_ for p in self._PARTS], dtype=object
        )


def _epoch_days(d: pd.Series) -> pd.Series:
    seconds = (d - pd.Timestamp("1970-01-01")).dt.total_seconds()
    return seconds / 86_400.0


def _as_datetimes(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    return frame.apply(_naive_utc)


def _naive_utc(column: pd.Series) -> pd.Series:
    d = pd.to_datetime(column, errors="coerce")
    return d.dt.tz_convert(None) if getattr(d.dt, "tz", None) is not None else d


def _to_float(X: pd.DataFrame) -> np.ndarray:
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    return frame.apply(lambda c: pd.to_numeric(c.astype("Float64"), errors="coerce")).to_numpy(
        dtype=float, na_value=np.nan
    )


def _to_text(X: pd.DataFrame) -> np.ndarray:
    # One representation for every text dtype pandas may hand us (object, str, string,
    # category), with missing values as a category of their own.
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    return frame.astype("string").fillna(_MISSING).to_numpy(dtype=object)


def columns_by_role(roles: list[ColumnRole]) -> dict[str, list[str]]:
    """Group column names by role, keeping column order."""
    grouped: dict[str, list[str]] = {}
    for r in roles:
        grouped.setdefault(r.role, []).append(r.column)
    return grouped


def _target_encoder(seed: int, task: str | None) -> TargetEncoder:
    # The internal cross-fitting must be seeded for reproducible builds. scikit-learn 1.9
    # takes a seeded splitter as `cv` and deprecates `random_state`; older versions
    # only have `random_state`.
    if sklearn_version >= Version("1.9"):
        splitter = StratifiedKFold if task == "classification" else KFold
        return TargetEncoder(cv=splitter(5, shuffle=True, random_state=seed))
    return TargetEncoder(random_state=seed)


def build_preprocessor(
    roles: list[ColumnRole], *, seed: int = 0, task: str | None = None
) -> ColumnTransformer:
    """Build the ``ColumnTransformer`` for ``roles``; ``drop`` columns are left out.

    Args:
        roles: the column roles (see :func:`nbops.modeling.roles.infer_roles`).
        seed: random state for the target encoder's internal cross-fitting.
        task: ``classification`` or ``regression``; picks the target encoder's folds.
    """
    grouped = columns_by_role(roles)
    as_float = FunctionTransformer(_to_float, feature_names_out="one-to-one")
    as_text = FunctionTransformer(_to_text, feature_names_out="one-to-one")
    parts: list[tuple[str, Pipeline, list[str]]] = []
    if grouped.get("numeric"):
        parts.append(
            (
                "numeric",
                make_pipeline(
                    as_float, SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                grouped["numeric"],
            )
        )
    if grouped.get("boolean"):
        parts.append(
            (
                "boolean",
                make_pipeline(
                    as_float, SimpleImputer(strategy="most_frequent", add_indicator=True)
                ),
                grouped["boolean"],
            )
        )
    if grouped.get("categorical"):
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=MIN_CATEGORY_COUNT,
            sparse_output=False,
        )
        parts.append(("categorical", make_pipeline(as_text, encoder), grouped["categorical"]))
    if grouped.get("high_cardinality"):
        parts.append(
            (
                "high_cardinality",
                make_pipeline(as_text, _target_encoder(seed, task), StandardScaler()),
                grouped["high_cardinality"],
            )
        )
    if grouped.get("datetime"):
        parts.append(
            (
                "datetime",
                make_pipeline(
                    DatetimeFeatures(),
                    SimpleImputer(strategy="median", add_indicator=True),
                    StandardScaler(),
                ),
                grouped["datetime"],
            )
        )
    if not parts:
        raise DataError(
            "No column is usable as a feature: every column was dropped (see the roles table in the "
            "features report). Force roles in env.yaml's features section, e.g. features: {categorical: [COLUMN]}."
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)
