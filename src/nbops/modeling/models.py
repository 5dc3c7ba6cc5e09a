"""Candidate models: a registry of estimator families, each a full scikit-learn Pipeline.

Each family has a classifier and a regressor. env.yaml's ``train.models`` picks the
families (one Ploomber grid task each) and ``train.hyperparams`` their settings.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from nbops.data.target import check_task
from nbops.errors import ConfigError
from nbops.modeling.features import build_preprocessor
from nbops.modeling.roles import ColumnRole

__all__ = ["MODELS", "describe", "make_model", "register"]

Factory = Callable[[str, int], BaseEstimator]

MODELS: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Register a model family: ``factory(task, seed) -> estimator``."""

    def decorate(factory: Factory) -> Factory:
        MODELS[name] = factory
        return factory

    return decorate


@register("linear")
def _linear(task: str, seed: int) -> BaseEstimator:
    if task == "classification":
        return LogisticRegression(max_iter=2_000)
    return Ridge()


@register("hgb")
def _hgb(task: str, seed: int) -> BaseEstimator:
    if task == "classification":
        return HistGradientBoostingClassifier(random_state=seed)
    return HistGradientBoostingRegressor(random_state=seed)


def make_model(
    name: str,
    *,
    task: str,
    roles: list[ColumnRole],
    hyperparams: dict[str, Any] | None = None,
    seed: int = 0,
) -> Pipeline:
    """Return an unfitted ``Pipeline(features -> estimator)`` for model family ``name``.

    Raises:
        ConfigError: unknown family, or a hyperparameter the estimator does not take.
    """
    check_task(task)
    if name not in MODELS:
        hint = difflib.get_close_matches(str(name), list(MODELS), n=1)
        maybe = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ConfigError(
            f"Unknown model '{name}' in env.yaml's train.models.{maybe} Available: {', '.join(MODELS)}."
        )
    estimator = MODELS[name](task, seed)
    params = dict(hyperparams or {})
    unknown = sorted(set(params) - set(estimator.get_params()))
    if unknown:
        raise ConfigError(
            f"train.hyperparams.{name} sets {', '.join(unknown)}, which {type(estimator).__name__} does not take. "
            f"Valid names include: {', '.join(sorted(estimator.get_params())[:15])}."
        )
    estimator.set_params(**params)
    return Pipeline(
        [("features", build_preprocessor(roles, seed=seed, task=task)), ("model", estimator)]
    )


def describe(pipeline: Pipeline) -> list[dict[str, Any]]:
    """One row per feature block and the estimator: what it does and to which columns.

    A compact, stable alternative to scikit-learn's HTML diagram for reports.
    """
    rows = []
    features = pipeline.named_steps["features"]
    for name, transformer, columns in features.transformers:
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        shown = [
            type(step).__name__ for _, step in steps if type(step).__name__ != "FunctionTransformer"
        ]
        rows.append(
            {"step": f"features: {name}", "does": " → ".join(shown), "columns": ", ".join(columns)}
        )
    estimator = pipeline.named_steps["model"]
    changed = {
        k: v
        for k, v in estimator.get_params().items()
        if v != type(estimator)().get_params().get(k)
    }
    rows.append(
        {
            "step": "model",
            "does": type(estimator).__name__,
            "columns": ", ".join(f"{k}={v}" for k, v in changed.items()),
        }
    )
    return rows
