"""The compiled scorer stored with the registered model, loaded without scikit-learn.

Loading a registered model means importing scikit-learn and skops (whose trusted-type
scan imports every scikit-learn module) and compiling the pipeline: about 3 s of CPU,
more than scoring a million rows. A linear model's compiled form
(:class:`~nbops.serving.compiled.CompiledModel` with its ``_Linear`` estimator) is only
arrays and names, so the build stores it at registration: :func:`scorer_member` gives
``nbops-scorer.npz``, written inside ``model.skops`` (``members`` of
:func:`nbops.tracking.registry.save_release_model`), so the SHA-256 recorded for the
model covers it. :func:`load_stored_model` reads it back for ``nbops score``: the
model file's hash checked first, then the arrays read with ``allow_pickle=False`` (numbers
only) and the names from JSON, rebuilt into the two classes of :data:`_CLASSES` only,
each with exactly its attributes. Nothing in the file is run, and no scikit-learn or
skops is imported. A member of another format (a later nbops) is left to skops; one that
is not what any nbops writes (a pickle, text or object arrays, JSON of other shapes) is
refused with one paragraph: its hash matched, so the recorded hash was changed with it.

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

from nbops.errors import ReleaseError
from nbops.serving.compiled import CompiledModel, _Linear
from nbops.serving.model import ServedModel, _contract, served_model

__all__ = ["SCORER_MEMBER", "load_stored_model", "scorer_member"]

#: The member of ``model.skops`` holding the compiled scorer.
SCORER_MEMBER = "nbops-scorer.npz"
#: The format of the member; another one is not read (the model is loaded as usual).
FORMAT = 1
#: The only classes the member may name: rebuilt from their attributes, never called.
_CLASSES: dict[str, type] = {"CompiledModel": CompiledModel, "_Linear": _Linear}
#: Exactly the attributes each holds (less ``DERIVED``): a member naming another one is
#: refused, and storing a class that has gained one fails until it is listed here.
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "CompiledModel": frozenset(
        {
            *("estimator", "floats", "dates", "lookups", "width_raw", "width"),
            *("float_names", "float_at", "fill", "value_src", "value_dst", "flag_src"),
            *("flag_dst", "value_mean", "value_scale", "flag_mean", "flag_scale"),
        }
    ),
    "_Linear": frozenset({"coef_t", "intercept", "classifier"}),
}
#: Array kinds the member may hold: booleans, integers, floats (no text, no objects).
_NUMBERS = "biuf"
_CONTRACT = ("features.json", "data_schema.yaml")


class StoredError(ValueError):
    """The member is of a format this version of nbops does not read (the caller
    loads the model as usual)."""


class NotAStoredScorer(ValueError):
    """The member is not what any nbops writes: refused."""


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
        ReleaseError: the model file is not the one registered, or its stored scorer is
            not what nbops writes (nothing of it is run).
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
    except StoredError:
        return None  # a member of another format: skops reads the model
    except Exception as exc:  # noqa: BLE001  (whatever the bytes make numpy or json raise)
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ReleaseError(
            f"Model '{name}' version {version.version} ({alias}) holds a stored scorer "
            f"({SCORER_MEMBER} in model.skops) that nbops never writes "
            f"({type(exc).__name__}{': ' + why if why else ''}): refusing to load it; "
            "nothing in it was run. Its recorded hash matches, so the hash was changed "
            "with the file: re-register the model from its build, and check who can "
            "write the tracking store."
        ) from exc
    return served_model(name, alias, version, StoredEstimator(classes), files, compiled)


def dumps(compiled: CompiledModel, classes: list[Any]) -> bytes:
    """The compiled model as ``.npz`` bytes: its arrays, and its other attributes as JSON."""
    arrays: dict[str, np.ndarray] = {}
    state = {"format": FORMAT, "classes": classes, "model": _encode(compiled, arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(state)), **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> tuple[CompiledModel, list[Any]]:
    """:func:`dumps` reversed: arrays of numbers only (no pickles), classes from
    :data:`_CLASSES` with exactly their :data:`_ATTRIBUTES`.

    Raises:
        StoredError: the member is of another format (a later nbops).
        NotAStoredScorer: it is not what nbops writes (also numpy's and json's errors).
    """
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise NotAStoredScorer("not an .npz archive")
    with loaded as npz:
        arrays = {k: npz[k] for k in npz.files}
    if "state" not in arrays or arrays["state"].dtype.kind != "U" or arrays["state"].ndim:
        raise NotAStoredScorer("no state")
    state = json.loads(str(arrays.pop("state")))
    if not isinstance(state, dict):
        raise NotAStoredScorer(f"the state is a {type(state).__name__}")
    if state.get("format") != FORMAT:
        raise StoredError(f"stored scorer format {state.get('format')!r}, not {FORMAT}")
    odd = sorted(k for k, a in arrays.items() if a.dtype.kind not in _NUMBERS)
    if odd:
        raise NotAStoredScorer(f"arrays of {arrays[odd[0]].dtype} ({', '.join(odd)})")
    classes = state.get("classes")
    if not isinstance(classes, list) or not all(
        isinstance(c, (str, int, float, bool)) for c in classes
    ):
        raise NotAStoredScorer("the classes are not a list of labels")
    model = _decode(state.get("model"), arrays)
    if not isinstance(model, CompiledModel) or not isinstance(model.estimator, _Linear):
        raise NotAStoredScorer("the stored scorer is not a compiled linear model")
    return model, list(classes)


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
    if set(state) != _ATTRIBUTES[name]:
        raise StoredError(f"a {name} with attributes {sorted(state)}: list them in _ATTRIBUTES")
    return {"object": name, "state": state}


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """What :func:`_encode` made, back; anything else is refused (JSON's own nesting
    limit stops a deep one: RecursionError, refused by the caller)."""
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    kind = next(iter(value), None)
    if len(value) == 1 and kind == "array" and value["array"] in arrays:
        return arrays[value["array"]]
    if len(value) == 1 and kind == "tuple" and isinstance(value["tuple"], list):
        return tuple(_decode(v, arrays) for v in value["tuple"])
    if len(value) == 1 and kind == "dict" and isinstance(value["dict"], list):
        pairs = [_decode(pair, arrays) for pair in value["dict"]]
        if not all(isinstance(p, list) and len(p) == 2 and _hashable(p[0]) for p in pairs):
            raise NotAStoredScorer("a mapping that is not one of labels")
        return dict(pairs)
    name, state = value.get("object"), value.get("state")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None or set(value) != {"object", "state"}:
        raise NotAStoredScorer(f"an object of class {name!r}")
    if not isinstance(state, dict) or set(state) != _ATTRIBUTES[name]:
        raise NotAStoredScorer(f"a {name} with other attributes than nbops stores")
    obj = object.__new__(cls)  # attributes set, no constructor run
    obj.__dict__.update({k: _decode(v, arrays) for k, v in state.items()})
    return obj


def _hashable(key: Any) -> bool:
    """A key :func:`_encode` writes: a label or None (the missing-value lookup)."""
    return key is None or isinstance(key, (str, int, float, bool))
