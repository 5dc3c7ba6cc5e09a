"""The served model and the input contract it was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nbops.modeling.roles import roles_from_json
from nbops.serving.compiled import CompiledModel, compile_model
from nbops.serving.labels import label_names
from nbops.serving.validation import Batch, Feature, probe_batch

__all__ = ["Feature", "ServedModel", "load_served_model"]


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
    #: the same model as array operations (fast for small batches); None: scikit-learn only
    compiled: CompiledModel | None = None
    #: the training label of the positive class (binary classification), else None
    positive_class: Any = None

    @property
    def scorer(self) -> str:
        return "compiled" if self.compiled is not None else "scikit-learn"

    @cached_property
    def labels(self) -> list[str]:
        """The training label of each of the estimator's classes (see :mod:`labels`)."""
        return label_names(self.estimator.classes_, self.classes)

    def predict(self, batch: Batch) -> dict[str, Any]:
        """The estimator's own output: ``predictions`` (its classes, or numbers) and, for a
        classifier, ``probabilities`` per row keyed by its classes as text."""
        if self.task == "classification":
            proba = self._proba(batch)
            classes = self.estimator.classes_
            labels = np.asarray(classes)[proba.argmax(axis=1)]
            names = [str(c) for c in classes]
            return {
                "predictions": labels.tolist(),
                "probabilities": [dict(zip(names, row, strict=True)) for row in proba.tolist()],
            }
        return {"predictions": self._values(batch).tolist()}

    def answer(self, batch: Batch) -> bytes:
        """What ``POST /predict`` answers for ``batch``, as JSON: ``predictions`` and, for a
        classifier, ``probabilities`` per row, in the training labels (``GET /model``).

        Built from the score arrays in one pass (no per-row relabelling): the same JSON
        as :func:`nbops.serving.labels.relabel` of :meth:`predict`.
        """
        if self.task != "classification":
            return orjson.dumps({"predictions": self._values(batch).tolist()})
        proba = self._proba(batch)
        names = self.labels
        # Not rounded: a client checking the service against the evaluate step (or its
        # own scoring) gets the same numbers, not ones 5e-7 away.
        rows = proba.tolist()
        if len(names) == 2:  # binary: a dict display is twice as fast as dict(zip())
            first, second = names
            probabilities = [{first: a, second: b} for a, b in rows]
        else:
            probabilities = list(map(dict, map(zip, repeat(names), rows)))
        predictions = list(map(names.__getitem__, proba.argmax(axis=1).tolist()))
        return orjson.dumps({"predictions": predictions, "probabilities": probabilities})

    def _proba(self, batch: Batch) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.predict_proba(batch.columns, batch.n_rows)
        return self.estimator.predict_proba(batch.frame())

    def _values(self, batch: Batch) -> np.ndarray:
        values = (
            self.compiled.predict(batch.columns, batch.n_rows)
            if self.compiled is not None
            else self.estimator.predict(batch.frame())
        )
        return np.asarray(values, dtype=float)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "task": self.task,
            "classes": [str(c) for c in self.classes],
            "scorer": self.scorer,
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
    from nbops.tracking.registry import load_version

    contract = ("features.json", "data_schema.yaml")
    version, estimator, files = load_version(root, name, alias, contract)
    missing = [f for f in contract if f not in files]
    if missing:
        from nbops.errors import ReleaseError

        raise ReleaseError(
            f"Model '{name}' version {version.version} has no {' or '.join(missing)} in its folder, "
            "so its input contract is unknown: serve a version registered by an nbops build."
        )
    features, _, _ = _contract(files["features.json"], files["data_schema.yaml"])
    compiled = compile_model(estimator, probe=probe_batch(features))
    return served_model(name, alias, version, estimator, files, compiled)


def served_model(
    name: str,
    alias: str,
    version: Any,
    estimator: Any,
    files: dict[str, str],
    compiled: CompiledModel | None,
) -> ServedModel:
    """The :class:`ServedModel` of a registered ``version`` (an MLflow ModelVersion or
    the embedded store's row) from its contract files and what scores it."""
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
        compiled,
        target.get("positive_class"),
    )
