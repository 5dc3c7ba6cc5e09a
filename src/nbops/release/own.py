"""Bring your own model: a model trained in the user's notebook, gated and released.

``nbops.log_model(model, input_example, test=(X_test, y_test))`` in a task of an
adopted project does, in one call, what nbops' reference pipeline does in its gate
step: it scores the model and the registered champion on the user's test rows, applies
the same statistical gate (:func:`nbops.release.gate.decide`, paired bootstrap against
the champion), and saves the model with skops, its exact trust list and its hash
(:func:`nbops.tracking.registry.save_release_model`), with the input contract the
service checks requests against (``features.json``, ``data_schema.yaml``, drafted from
the test rows). The build's hooks pick the folder up (``NBOPS_MODEL_DIR``, set for the
task by :mod:`nbops.build.hooks`): the model travels with the task's run, and the
release step registers it and moves the aliases as the gate decided, once the build
is recorded. ``nbops serve`` then serves the champion.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from nbops.errors import ConfigError, ReleaseError

__all__ = ["MODEL_DIR_ENV", "log_model"]

#: The folder a task's own model goes to (set per task by nbops' build hooks).
MODEL_DIR_ENV = "NBOPS_MODEL_DIR"
#: Set when the build's store cannot be reached: the champion is then unknown.
UNAVAILABLE_ENV = "NBOPS_STORE_UNAVAILABLE"


def log_model(
    model: Any,
    input_example: pd.DataFrame,
    *,
    test: tuple[pd.DataFrame, pd.Series] | None = None,
    name: str | None = None,
    task: str | None = None,
    policy: str = "auto",
    primary_metric: str | None = None,
    min_improvement: float = 0.0,
    min_metric: float | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 42,
) -> Any:
    """Gate ``model`` against the champion on ``test`` and hand it to the build's release.

    Args:
        model: a fitted scikit-learn estimator (a pipeline that takes the raw columns of
            ``input_example`` is what the service can serve).
        input_example: a few input rows (the model's signature and input contract).
        test: ``(X_test, y_test)``: the rows the gate scores both models on. Without
            them there is nothing to compare, and the model is held as challenger for
            ``nbops promote``.
        name: the registered model (default: ``NBOPS_MODEL``, then env.yaml's
            ``release.model_name``, then the project folder's name).
        task: ``classification`` or ``regression`` (default: ``classification`` when
            the model has ``predict_proba``).
        policy, primary_metric, min_improvement, min_metric, confidence, n_bootstrap,
            seed: the gate's rules, as ``release`` in nbops' env.yaml.

    Returns:
        The gate's :class:`~nbops.release.gate.ReleaseDecision`.

    Example:
        >>> nbops.log_model(model, X_test.head(5), test=(X_test, y_test))  # doctest: +SKIP
    """
    from nbops.modeling.evaluation import DEFAULT_PRIMARY
    from nbops.release.gate import GatePolicy, ReleaseDecision, decide, paired_bootstrap
    from nbops.release.prepare import find_champion, gate_scores, release_requirements
    from nbops.tracking.registry import save_release_model

    folder = _folder()
    root = _root(folder)
    name = name or _name(root)
    if not isinstance(input_example, pd.DataFrame) or input_example.empty:
        raise ConfigError(
            "nbops.log_model needs input_example as a pandas DataFrame of a few input rows "
            "(e.g. X_test.head(5)): it fixes the columns the service accepts."
        )
    task = task or ("classification" if hasattr(model, "predict_proba") else "regression")
    target = _target(test, task)
    rules = GatePolicy(
        policy=policy,
        primary_metric=primary_metric or DEFAULT_PRIMARY[task],
        min_improvement=min_improvement,
        min_metric=min_metric,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        task=task,
    )
    champion = find_champion(name, root=root)
    if champion.unknown or os.environ.get(UNAVAILABLE_ENV):
        rules = replace(rules, policy="manual")  # never promote without knowing the champion
    folder.mkdir(parents=True, exist_ok=True)
    extra = _contract(folder, test[0] if test is not None else input_example, target)
    if test is None:
        from nbops.release.gate import Decision

        decision = Decision(
            "hold",
            "No test rows were given to nbops.log_model, so nothing compares this model "
            "with the champion: held as challenger. Pass test=(X_test, y_test), or approve "
            f"it with `nbops promote {name} VERSION --reason ...`.",
            [],
            None,
        )
        metrics: dict[str, float] = {}
        champion_metrics = None
        latency = None
    else:
        X_test, y_test = test
        scores = gate_scores(
            model, champion.model, X_test, y_test, target, metric=rules.primary_metric
        )
        if scores.champion_error:
            rules = replace(rules, policy="manual")
        interval = None
        if scores.champion_values is not None:
            interval = paired_bootstrap(
                scores.truth,
                scores.champion_values,
                scores.challenger_values,
                metric=rules.primary_metric,
                n=rules.n_bootstrap,
                seed=rules.seed,
                confidence=rules.confidence,
            )
        decision = decide(
            rules,
            challenger_metric=scores.challenger_metrics[rules.primary_metric],
            interval=interval,
            latency_ms_per_row=scores.latency_ms_per_row,
            r2=scores.challenger_metrics.get("r2"),
        )
        metrics = scores.challenger_metrics
        champion_metrics = scores.champion_metrics
        latency = scores.latency_ms_per_row
    saved = save_release_model(
        model,
        folder / "model",
        input_example=input_example,
        pip_requirements=release_requirements(),
        extra_files=extra,
    )
    released = ReleaseDecision.of(
        decision,
        model_name=name,
        policy=rules,
        champion_version=champion.version,
        metrics=metrics,
        champion_metrics=champion_metrics,
        latency_ms_per_row=latency,
        model={k: v for k, v in saved.items() if k != "path"},
    )
    (folder / "decision.json").write_text(json.dumps(released.to_dict(), indent=2, default=str))
    return released


def _folder() -> Path:
    value = os.environ.get(MODEL_DIR_ENV, "").strip()
    if not value:
        raise ReleaseError(
            "nbops.log_model releases a model from the build it runs in, and this is not "
            "such a build. Run the notebook with `ploomber build` in a project adopted with "
            "`nbops adopt` (the task's source must call nbops.log_model)."
        )
    return Path(value)


def _root(folder: Path) -> Path:
    # <root>/.nbops/tmp/<build id>/models/<task>
    for parent in folder.parents:
        if parent.name == ".nbops":
            return parent.parent
    from nbops.project import project_root

    return project_root()


def _name(root: Path) -> str:
    from nbops.project import model_name

    return model_name(root=root, required=False) or root.name


def _target(test: tuple[pd.DataFrame, pd.Series] | None, task: str) -> Any:
    from nbops.data.target import TargetInfo, check_task, prepare_target

    check_task(task)
    if test is None:
        return TargetInfo(name="target", task=task)
    X_test, y_test = test
    if len(X_test) != len(y_test) or len(X_test) == 0:
        raise ConfigError(
            f"nbops.log_model's test=(X_test, y_test) must be rows and their labels of the "
            f"same, non-zero length (got {len(X_test)} and {len(y_test)})."
        )
    if pd.isna(y_test).any():
        raise ConfigError(
            "nbops.log_model's y_test has missing labels: drop those rows from X_test and "
            "y_test first, so both models are scored on the same labelled rows."
        )
    name = str(getattr(y_test, "name", None) or "target")
    _, info = prepare_target(pd.DataFrame({name: list(y_test)}), name, task)
    return info


def _contract(folder: Path, example: pd.DataFrame, target: Any) -> dict[str, str]:
    """``features.json`` and ``data_schema.yaml`` for the service, drafted from the
    test rows (else the input example): every column the model takes, with its role,
    and the categories seen."""
    from dataclasses import asdict

    from nbops.data.schema import infer_schema, schema_to_yaml
    from nbops.modeling.roles import infer_roles, roles_to_json

    roles = [
        # The model takes every column it was given: none is dropped from its contract.
        r
        if r.role != "drop"
        else replace(r, role="numeric" if _numeric(example[r.column]) else "categorical")
        for r in infer_roles(example, target="")
    ]
    features = folder / "features.json"
    features.write_text(
        json.dumps({"target": asdict(target), "roles": roles_to_json(roles)}, indent=2, default=str)
    )
    schema = folder / "data_schema.yaml"
    schema.write_text(schema_to_yaml(infer_schema(example), source="nbops.log_model"))
    return {"features.json": str(features), "data_schema.yaml": str(schema)}


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
