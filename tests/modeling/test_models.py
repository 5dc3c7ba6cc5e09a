"""Candidate models: a registry of families, each a full Pipeline from table to prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline

from nbops.errors import ConfigError
from nbops.modeling import models
from nbops.modeling.models import describe, make_model, register
from nbops.modeling.roles import ColumnRole, infer_roles

pytestmark = pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "kind": pd.array(rng.choice(["a", "b", "c"], n), dtype="string"),
            "flag": rng.random(n) < 0.5,
            "label": x + 0.5 * rng.normal(size=n) > 0,
            "amount": 3 * x + rng.normal(size=n),
        }
    )


@pytest.fixture(scope="module")
def roles(table: pd.DataFrame) -> list[ColumnRole]:
    return infer_roles(table.drop(columns="amount"), target="label")


@pytest.mark.parametrize(
    ("name", "task", "estimator", "target"),
    [
        ("linear", "classification", LogisticRegression, "label"),
        ("linear", "regression", Ridge, "amount"),
        ("hgb", "classification", HistGradientBoostingClassifier, "label"),
        ("hgb", "regression", HistGradientBoostingRegressor, "amount"),
    ],
)
def test_each_family_builds_a_pipeline_that_learns(
    table: pd.DataFrame,
    roles: list[ColumnRole],
    name: str,
    task: str,
    estimator: type,
    target: str,
) -> None:
    hyperparams = {"max_iter": 30} if name == "hgb" else {}
    model = make_model(name, task=task, roles=roles, hyperparams=hyperparams, seed=1)
    assert isinstance(model, Pipeline)
    assert list(model.named_steps) == ["features", "model"]
    assert isinstance(model.named_steps["model"], estimator)
    X, y = table[[r.column for r in roles]], table[target]
    model.fit(X, y)
    # Well above chance on its own training data: the features reach the estimator.
    assert model.score(X, y) > 0.7


def test_hyperparameters_and_seed_reach_the_estimator(roles: list[ColumnRole]) -> None:
    model = make_model(
        "hgb",
        task="classification",
        roles=roles,
        hyperparams={"max_iter": 7, "learning_rate": 0.3},
        seed=5,
    )
    estimator = model.named_steps["model"]
    assert (estimator.max_iter, estimator.learning_rate, estimator.random_state) == (7, 0.3, 5)


def test_each_call_returns_a_fresh_pipeline(roles: list[ColumnRole]) -> None:
    a = make_model("linear", task="classification", roles=roles)
    b = make_model("linear", task="classification", roles=roles)
    assert a is not b and a.named_steps["model"] is not b.named_steps["model"]


@pytest.mark.parametrize(
    ("name", "task", "hyperparams", "match"),
    [
        (
            "lineer",
            "classification",
            {},
            r"Unknown model 'lineer' in env\.yaml's train\.models\. Did you mean 'linear'\? Available: linear, hgb",
        ),
        ("xgboost", "classification", {}, r"Unknown model 'xgboost'.* Available: linear, hgb\."),
        (
            "hgb",
            "classification",
            {"max_iters": 3},
            r"train\.hyperparams\.hgb sets max_iters, which HistGradientBoostingClassifier does not take\. Valid names include: .*max_iter",
        ),
        (
            "linear",
            "regression",
            {"C": 1.0, "alpha": 1.0},
            r"train\.hyperparams\.linear sets C, which Ridge does not take",
        ),
        ("linear", "regresion", {}, r"Unknown task 'regresion'.*Did you mean 'regression'\?"),
    ],
    ids=[
        "typo",
        "unknown-family",
        "unknown-hyperparameter",
        "wrong-task-hyperparameter",
        "task-typo",
    ],
)
def test_bad_model_settings_are_config_errors(
    roles: list[ColumnRole], name: str, task: str, hyperparams: dict, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        make_model(name, task=task, roles=roles, hyperparams=hyperparams)


def test_register_adds_a_family(
    monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame, roles: list[ColumnRole]
) -> None:
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))

    @register("knn")
    def _knn(task: str, seed: int) -> KNeighborsClassifier | KNeighborsRegressor:
        return KNeighborsClassifier() if task == "classification" else KNeighborsRegressor()

    model = make_model("knn", task="classification", roles=roles, hyperparams={"n_neighbors": 3})
    assert model.named_steps["model"].n_neighbors == 3
    model.fit(table[[r.column for r in roles]], table["label"])
    with pytest.raises(ConfigError, match=r"Available: linear, hgb, knn\."):
        make_model("svm", task="classification", roles=roles)


def test_describe_has_a_row_per_feature_block_and_the_model(roles: list[ColumnRole]) -> None:
    model = make_model("hgb", task="classification", roles=roles, hyperparams={"max_iter": 7})
    rows = describe(model)
    assert [r["step"] for r in rows] == [
        "features: numeric",
        "features: boolean",
        "features: categorical",
        "model",
    ]
    by_step = {r["step"]: r for r in rows}
    assert by_step["features: numeric"] == {
        "step": "features: numeric",
        "does": "SimpleImputer → StandardScaler",
        "columns": "x",
    }
    assert by_step["features: categorical"]["does"] == "OneHotEncoder"
    assert by_step["features: categorical"]["columns"] == "kind"
    assert by_step["model"]["does"] == "HistGradientBoostingClassifier"
    # Only settings that differ from the estimator's defaults are listed.
    assert by_step["model"]["columns"] == "max_iter=7, random_state=0"


def test_describe_of_defaults_lists_no_settings() -> None:
    model = make_model("linear", task="regression", roles=[ColumnRole("x", "numeric", "")])
    assert describe(model)[-1] == {"step": "model", "does": "Ridge", "columns": ""}
