"""The served model and the input contract it was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbops.roles import roles_from_json

__all__ = ["Feature", "ServedModel", "load_served_model"]


@dataclass(frozen=True)
class Feature:
    name: str
    role: str  # numeric | boolean | categorical | high_cardinality | datetime
    nullable: bool = True
    categories: tuple[str, ...] = ()


@dataclass
class ServedModel:
    name: str
    version: str
    alias: str
    run_id: str | None
    estimator: Any
    features: list[Feature]
    task: str
    classes: list[Any] = field(default_factory=list)
    #: columns of the training data the model does not use (IDs, constants): accepted, ignored
    ignored: frozenset[str] = frozenset()

    def predict(self, frame: pd.DataFrame) -> dict[str, Any]:
        if self.task == "classification":
            proba = self.estimator.predict_proba(frame)
            labels = np.asarray(self.estimator.classes_)[proba.argmax(axis=1)]
            return {
                "predictions": labels.tolist(),
                "probabilities": [
                    dict(
                        zip(map(str, self.estimator.classes_), row.round(6).tolist(), strict=False)
                    )
                    for row in proba
                ],
            }
        return {"predictions": np.asarray(self.estimator.predict(frame), dtype=float).tolist()}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "task": self.task,
            "classes": [str(c) for c in self.classes],
            "schema": [
                {
                    "name": f.name,
                    "role": f.role,
                    "nullable": f.nullable,
                    "categories": list(f.categories),
                }
                for f in self.features
            ],
        }


def _contract(
    features_json: str, schema_yaml: str
) -> tuple[list[Feature], dict[str, Any], frozenset[str]]:
    import yaml

    plan = json.loads(features_json)
    schema = yaml.safe_load(schema_yaml) or {}
    columns = schema.get("columns", {})
    features, ignored = [], set()
    for role in roles_from_json(plan["roles"]):
        if role.role == "drop":
            ignored.add(role.column)
            continue
        spec = columns.get(role.column, {}) or {}
        allowed = spec.get("isin") or ()
        # pandera's default is nullable: false; a column the schema does not list accepts nulls
        nullable = bool(spec.get("nullable", False)) if role.column in columns else True
        features.append(Feature(role.column, role.role, nullable, tuple(map(str, allowed))))
    return features, plan["target"], frozenset(ignored)


def load_served_model(root: Path, name: str, alias: str) -> ServedModel:
    """Load the version holding ``alias`` from the project's registry (hash checked)."""
    from nbops.registry import Registry

    version, estimator, files = Registry(root).load_with(
        name, alias, ("features.json", "data_schema.yaml")
    )
    features, target, ignored = _contract(files["features.json"], files["data_schema.yaml"])
    return ServedModel(
        name,
        version.version,
        alias,
        version.run_id,
        estimator,
        features,
        target["task"],
        list(target.get("classes") or []),
        ignored,
    )
