"""The compiled scorer stored with the registered model, loaded without scikit-learn.

Loading a registered model means importing scikit-learn and skops (whose trusted-type
scan imports every scikit-learn module) and compiling the pipeline: about 3 s of CPU,
more than scoring a million rows. A linear model's compiled form
(:class:`~nbops.serving.compiled.CompiledModel` with its ``_Linear`` estimator) is only
arrays and names, so the build stores it at registration: :func:`scorer_member` gives
``nbops-scorer.npz``, written inside ``model.skops`` (``members`` of
:func:`nbops.tracking.registry.save_release_model`), so the SHA-256 recorded for the
model covers it. :func:`load_stored_model` reads it back for ``nbops score``: the
model file's hash checked first, then the arrays read with ``allow_pickle=False`` and the
names from JSON, rebuilt into the two classes of :data:`_CLASSES` only. Nothing in the
file is run, and no scikit-learn or skops is imported.

A model without the member (registered before it existed, by ``nbops.log_model``, not a
linear model, or in a remote store) is loaded the usual way: the callers fall back to
:func:`nbops.serving.model.load_served_model`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from nbops.serving.compiled import CompiledModel, _Linear
from nbops.serving.model import ServedModel, _contract, served_model

__all__ = ["SCORER_MEMBER", "load_stored_model", "scorer_member"]

#: The member of ``model.skops`` holding the compiled scorer.
SCORER_MEMBER = "nbops-scorer.npz"
#: The format of the member; another one is not read (the model is loaded as usual).
FORMAT = 1
#: The only classes the member may name: rebuilt from their attributes, never called.
_CLASSES: dict[str, type] = {"CompiledModel": CompiledModel, "_Linear": _Linear}
_CONTRACT = ("features.json", "data_schema.yaml")


class StoredError(ValueError):
    """The member is not one this version of nbops reads (the caller loads as usual)."""


class StoredEstimator:
    """What scoring asks of the estimator besides the compiled scorer: its classes."""

    def __init__(self, classes: list[Any]) -> None:
        self.classes_ = np.asarray(classes)


def scorer_member(pipeline: Any, features_json: str | Path, schema: str | Path) -> dict[str, bytes]:
    """``{SCORER_MEMBER: bytes}`` for a fitted pipeline whose compiled form is only
    arrays (a linear estimator), checked to score the probe rows exactly as the compiled
    model does; ``{}`` otherwise (the model is then loaded with skops).

    Args:
        features_json, schema: the build's ``features.json`` and data schema (the input
            contract the probe rows follow), as registered with the model.
    """
    from nbops.serving.compiled import compile_model
    from nbops.serving.validation import probe_batch

    features, _, _ = _contract(Path(features_json).read_text(), Path(schema).read_text())
    probe = probe_batch(features)
    compiled = compile_model(pipeline, probe=probe)
    if compiled is None or not isinstance(compiled.estimator, _Linear):
        return {}
    classes = [_plain(c) for c in getattr(pipeline, "classes_", [])]
    data = dumps(compiled, classes)
    loaded, _ = loads(data)
    method = "predict_proba" if compiled.estimator.classifier else "predict"
    expected = getattr(compiled, method)(probe.columns, probe.n_rows)
    got = getattr(loaded, method)(probe.columns, probe.n_rows)
    if not np.array_equal(expected, got, equal_nan=True):
        return {}
    return {SCORER_MEMBER: data}


def load_stored_model(root: Path, name: str, alias: str) -> ServedModel | None:
    """The version holding ``alias`` with its stored scorer (hash checked); None when it
    has none or is not in the project's embedded store (load it the usual way).

    Raises:
        ReleaseError: the model file is not the one registered.
    """
    from nbops.tracking.registry import embedded_member

    found = embedded_member(root, name, alias, SCORER_MEMBER, _CONTRACT)
    if found is None:
        return None
    version, data, files = found
    if data is None or any(f not in files for f in _CONTRACT):
        return None
    try:
        compiled, classes = loads(data)
    except (StoredError, ValueError, KeyError, TypeError, OSError):
        return None  # a member of another format: skops reads the model
    return served_model(name, alias, version, StoredEstimator(classes), files, compiled)


def dumps(compiled: CompiledModel, classes: list[Any]) -> bytes:
    """The compiled model as ``.npz`` bytes: its arrays, and its other attributes as JSON."""
    arrays: dict[str, np.ndarray] = {}
    state = {"format": FORMAT, "classes": classes, "model": _encode(compiled, arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(state)), **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> tuple[CompiledModel, list[Any]]:
    """:func:`dumps` reversed: arrays only (no pickles), classes from :data:`_CLASSES`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    state = json.loads(str(arrays.pop("state")))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StoredError(f"stored scorer format {state.get('format')!r}, not {FORMAT}")
    model = _decode(state["model"], arrays)
    if not isinstance(model, CompiledModel) or not isinstance(model.estimator, _Linear):
        raise StoredError("the stored scorer is not a compiled linear model")
    return model, list(state["classes"])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise StoredError(f"array of {value.dtype}")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, np.generic):
        return _plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays) for v in value]
        return items if isinstance(value, list) else {"tuple": items}
    if isinstance(value, dict):  # keys may be None (the missing-value lookup)
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    name = type(value).__name__
    if _CLASSES.get(name) is not type(value):
        raise StoredError(f"cannot store a {name}")
    derived = getattr(value, "DERIVED", frozenset())
    state = {k: _encode(v, arrays) for k, v in vars(value).items() if k not in derived}
    return {"object": name, "state": state}


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return arrays[value["array"]]
    if "tuple" in value:
        return tuple(_decode(v, arrays) for v in value["tuple"])
    if "dict" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["dict"]}
    cls = _CLASSES.get(value.get("object"))  # type: ignore[arg-type]
    if cls is None:
        raise StoredError(f"unknown class {value.get('object')!r} in the stored scorer")
    obj = object.__new__(cls)  # attributes set, no constructor run
    obj.__dict__.update({k: _decode(v, arrays) for k, v in value["state"].items()})
    return obj
