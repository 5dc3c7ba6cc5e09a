"""The compiled scorer gives the pipeline's own numbers, and steps back when it cannot."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from nbops.data.datasets import make_churn
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.serving.compiled import compile_model
from nbops.serving.validation import Batch, Feature, probe_batch

pytestmark = pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning")

# (model family, target, task, forced roles): every block type and estimator path.
CASES = [
    ("linear", "churned", "classification", {}),
    ("hgb", "churned", "classification", {}),
    ("linear", "plan", "classification", {"high_cardinality": ["region"]}),  # multiclass
    ("hgb", "plan", "classification", {}),
    ("linear", "monthly_charges", "regression", {"high_cardinality": ["region"]}),
    ("hgb", "monthly_charges", "regression", {}),
]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = make_churn(1_500, seed=3)
    # holes in every kind of column, so imputers learn fills and missing indicators
    rng = np.random.default_rng(0)
    for column in ("tenure_months", "region", "signup_date", "auto_renew"):
        frame[column] = frame[column].mask(rng.random(len(frame)) < 0.1)
    return frame


def fitted(table: pd.DataFrame, family: str, target: str, task: str, forced: dict) -> tuple:
    """A fitted pipeline and its contract: fitted once per case and module (the
    multi-class gradient boosting fit alone takes seconds), a deep copy per test (one
    test swaps the estimator)."""
    key = (id(table), family, target, task, repr(sorted(forced.items())))
    if key not in _FITTED:
        _FITTED[key] = _fit(table, family, target, task, forced)
    return copy.deepcopy(_FITTED[key])


_FITTED: dict[tuple, tuple] = {}


def _fit(table: pd.DataFrame, family: str, target: str, task: str, forced: dict) -> tuple:
    X = table.drop(columns=[target])
    roles = infer_roles(table, target=target, overrides=forced)
    # Boosting as the test builds set it (FAST_ENV): the compiled trees are walked the
    # same way whatever their number, and a default-size multi-class fit costs seconds.
    hyperparams = {"max_iter": 30} if family == "hgb" else None
    model = make_model(family, task=task, roles=roles, hyperparams=hyperparams, seed=0)
    model.fit(X, table[target])
    features = [
        Feature(
            r.column,
            r.role,
            categories=tuple(map(str, table[r.column].dropna().unique()))
            if r.role == "categorical"
            else (),
        )
        for r in roles
        if r.role != "drop"
    ]
    return model, features


@pytest.mark.parametrize(("family", "target", "task", "forced"), CASES)
@pytest.mark.parametrize("n_rows", [1, 7, 64])
def test_compiled_scores_equal_the_pipeline(table, family, target, task, forced, n_rows):
    model, features = fitted(table, family, target, task, forced)
    compiled = compile_model(model, probe=probe_batch(features))
    assert compiled is not None, "this pipeline should compile"

    batch = probe_batch(features, n_rows=n_rows, seed=n_rows)  # other rows than the check's
    frame = batch.frame()
    np.testing.assert_array_equal(
        compiled.transform(batch.columns, n_rows), model[0].transform(frame)
    )
    method = "predict_proba" if task == "classification" else "predict"
    np.testing.assert_allclose(
        getattr(compiled, method)(batch.columns, n_rows),
        getattr(model, method)(frame),
        rtol=1e-12,
        atol=1e-12,
    )


def test_missing_values_unseen_categories_and_time_zones_score_like_the_pipeline(table):
    model, features = fitted(table, "linear", "churned", "classification", {})
    compiled = compile_model(model, probe=probe_batch(features))
    from datetime import datetime, timedelta, timezone

    rows = {f.name: [None, None, None] for f in features}
    rows["plan"] = ["basic", "never-seen", None]
    rows["signup_date"] = [
        datetime(2021, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # next day in UTC
        datetime(2021, 3, 2, 4, 30),
        None,
    ]
    batch = Batch(rows, features, 3)
    np.testing.assert_array_equal(
        compiled.transform(batch.columns, 3), model[0].transform(batch.frame())
    )


def test_an_unknown_step_keeps_scikit_learn(table):
    features = [Feature("tenure_months", "numeric")]
    custom = ColumnTransformer(
        [("n", make_pipeline(FunctionTransformer(np.log1p), StandardScaler()), ["tenure_months"])]
    )
    model = Pipeline([("features", custom), ("model", KNeighborsClassifier())])
    model.fit(table[["tenure_months"]].fillna(0), table["churned"])
    assert compile_model(model, probe=probe_batch(features)) is None


def test_an_estimator_it_does_not_know_is_still_served_on_the_compiled_features(table):
    model, features = fitted(table, "linear", "churned", "classification", {})
    model.steps[-1] = (
        "model",
        KNeighborsClassifier().fit(model[0].transform(table), table["churned"]),
    )
    compiled = compile_model(model, probe=probe_batch(features))
    assert compiled is not None
    batch = probe_batch(features, n_rows=5, seed=9)
    np.testing.assert_array_equal(
        compiled.predict_proba(batch.columns, 5), model.predict_proba(batch.frame())
    )


def test_a_disagreement_on_the_probe_rows_keeps_scikit_learn(table):
    model, features = fitted(table, "linear", "churned", "classification", {})
    # The contract says tenure is a category, the pipeline reads it as a number: the
    # compiled scorer reads the column differently, so it must not be used.
    wrong = [Feature(f.name, "categorical") if f.name == "tenure_months" else f for f in features]
    assert compile_model(model, probe=probe_batch(wrong)) is None


@pytest.mark.parametrize(("family", "task"), [("linear", "classification"), ("hgb", "regression")])
def test_a_compiled_scorer_that_disagrees_without_raising_is_not_used(
    table, family, task, monkeypatch
):
    """Tampered fitted state (a shifted scaling mean): every step runs and returns
    numbers, only the numbers are wrong; the probe comparison alone catches it."""
    import nbops.serving.compiled as compiled_module

    target = "churned" if task == "classification" else "monthly_charges"
    model, features = fitted(table, family, target, task, {})
    honest = compiled_module._compile

    def tampered(pipeline):
        compiled = honest(pipeline)
        compiled.value_mean = compiled.value_mean + 0.5
        return compiled

    monkeypatch.setattr(compiled_module, "_compile", tampered)
    batch = probe_batch(features)
    method = "predict_proba" if task == "classification" else "predict"
    scores = getattr(tampered(model), method)(batch.columns, batch.n_rows)
    assert np.isfinite(scores).all()  # it scores without raising ...
    assert not np.allclose(scores, getattr(model, method)(batch.frame()))  # ... but wrongly
    assert compile_model(model, probe=batch) is None


@pytest.mark.parametrize(("family", "target"), [("linear", "churned"), ("linear", "plan")])
def test_dictionary_encoded_text_from_a_file_scores_like_lists(table, family, target):
    model, features = fitted(table, family, target, "classification", {})
    compiled = compile_model(model, probe=probe_batch(features))
    batch = probe_batch(features, n_rows=50, seed=5)  # unseen categories and missing ones
    as_codes = {
        name: pd.Categorical(values) if isinstance(values, list) else values
        for name, values in batch.columns.items()
    }
    np.testing.assert_array_equal(
        compiled.transform(as_codes, 50), compiled.transform(batch.columns, 50)
    )
    np.testing.assert_array_equal(
        compiled.predict_proba(as_codes, 50), model.predict_proba(batch.frame())
    )


def test_date_parts_are_numpys_calendar_on_every_day_of_six_centuries():
    """Year, month and day of the year in integer arithmetic: the numbers numpy's
    datetime64 casts give, on every day from 1680 to 2260 and the first and last
    instants datetime64[ns] holds, times of day and NaT."""
    from nbops.serving.compiled import _date_parts

    days = np.arange(-106_000, 106_000, dtype=np.int64) * 86_400_000_000_000
    stamps = np.concatenate([days + 86_399_999_999_999, days, [np.iinfo(np.int64).min]])
    stamps = stamps.view("datetime64[ns]")
    years, months = stamps.astype("datetime64[Y]"), stamps.astype("datetime64[M]")
    daily = stamps.astype("datetime64[D]")
    parts = _date_parts(stamps, origin=0.0)
    np.testing.assert_array_equal(parts[:-1, 0], years[:-1].astype(np.int64) + 1970)
    np.testing.assert_array_equal(
        parts[:-1, 1], (months - years.astype("datetime64[M]"))[:-1].astype(np.int64) + 1
    )
    np.testing.assert_array_equal(
        parts[:-1, 3], (daily - years.astype("datetime64[D]"))[:-1].astype(np.int64) + 1
    )
    assert np.isnan(parts[-1]).all()
    # The first and last instants datetime64[ns] holds (numpy's own casts overflow there).
    limits = np.iinfo(np.int64)
    ends = _date_parts(np.array([limits.min + 1, limits.max]).view("datetime64[ns]"), 0.0)
    np.testing.assert_array_equal(ends[:, [0, 1, 3]], [[1677, 9, 264], [2262, 4, 101]])
