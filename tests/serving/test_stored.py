"""The compiled scorer stored with a model: the pipeline's numbers, no scikit-learn to
load it, and nothing but arrays and two known classes read back."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nbops.data.datasets import make_churn
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles, roles_to_json
from nbops.serving.stored import (
    SCORER_MEMBER,
    NotAStoredScorer,
    StoredError,
    loads,
    scorer_member,
)
from nbops.serving.validation import probe_batch

pytestmark = pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = make_churn(600, seed=5)
    frame["signup_date"] = frame["signup_date"].mask(frame.index % 9 == 0)  # NaT parts
    return frame


def contract(folder: Path, table: pd.DataFrame, target: str, task: str) -> tuple[Path, Path]:
    """features.json and data_schema.yaml as a build registers them with the model."""
    roles = infer_roles(table, target=target)
    classes = sorted(table[target].unique().tolist()) if task == "classification" else []
    features = folder / "features.json"
    features.write_text(
        json.dumps(
            {"roles": roles_to_json(roles), "target": {"task": task, "classes": classes}},
            default=str,
        )
    )
    schema = folder / "data_schema.yaml"
    schema.write_text(yaml.safe_dump({"columns": {}}))
    return features, schema


def fit(table: pd.DataFrame, family: str, target: str, task: str):
    roles = infer_roles(table, target=target)
    return make_model(family, task=task, roles=roles, seed=0).fit(
        table.drop(columns=[target]), table[target]
    )


@pytest.mark.parametrize(
    ("target", "task"),
    [("churned", "classification"), ("plan", "classification"), ("monthly_charges", "regression")],
)
def test_a_stored_linear_scorer_gives_the_pipelines_numbers(table, tmp_path, target, task):
    from nbops.serving.model import _contract

    model = fit(table, "linear", target, task)
    features_json, schema = contract(tmp_path, table, target, task)
    member = scorer_member(model, features_json, schema)
    assert list(member) == [SCORER_MEMBER]
    compiled, classes = loads(member[SCORER_MEMBER])
    features = _contract(features_json.read_text(), schema.read_text())[0]
    batch = probe_batch(features, n_rows=200, seed=1)
    if task == "classification":
        assert classes == model.classes_.tolist()
        expected = model.predict_proba(batch.frame())
        got = compiled.predict_proba(batch.columns, batch.n_rows)
    else:
        expected = model.predict(batch.frame())
        got = compiled.predict(batch.columns, batch.n_rows)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_a_model_that_needs_scikit_learn_to_score_stores_nothing(table, tmp_path):
    """An estimator the compiled model does not re-express (boosted trees on big batches,
    any other) scores with scikit-learn's own code: the model is loaded with skops."""
    from sklearn.neighbors import KNeighborsClassifier

    model = fit(table, "linear", "churned", "classification")
    X, y = model[0].transform(table.drop(columns=["churned"])), table["churned"]
    model.steps[-1] = (model.steps[-1][0], KNeighborsClassifier(3).fit(X, y))
    assert scorer_member(model, *contract(tmp_path, table, "churned", "classification")) == {}


def test_loading_a_stored_scorer_imports_no_scikit_learn_or_skops(table, tmp_path):
    model = fit(table, "linear", "churned", "classification")
    member = scorer_member(model, *contract(tmp_path, table, "churned", "classification"))
    stored = tmp_path / "scorer.npz"
    stored.write_bytes(member[SCORER_MEMBER])
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nbops.serving.stored import loads\n"
        f"compiled, classes = loads(Path({str(stored)!r}).read_bytes())\n"
        "print(sorted(m for m in ('sklearn', 'skops', 'mlflow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_stored_scorer_naming_any_other_class_is_refused(table, tmp_path):
    """Only CompiledModel and its linear estimator are rebuilt: a member naming anything
    else (here the pipeline class itself) is refused before anything is made of it."""
    model = fit(table, "linear", "churned", "classification")
    member = scorer_member(model, *contract(tmp_path, table, "churned", "classification"))
    with np.load(io.BytesIO(member[SCORER_MEMBER]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    state = json.loads(str(arrays.pop("state")))
    state["model"]["state"]["estimator"]["object"] = "Pipeline"
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(state)), **arrays)
    with pytest.raises(NotAStoredScorer, match="an object of class 'Pipeline'"):
        loads(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(state)), code=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        loads(buffer.getvalue())


def _stored_parts(table: pd.DataFrame, tmp_path: Path) -> tuple[dict, dict]:
    """The state (JSON) and arrays of a real stored scorer, to change one thing in."""
    model = fit(table, "linear", "churned", "classification")
    member = scorer_member(model, *contract(tmp_path, table, "churned", "classification"))
    with np.load(io.BytesIO(member[SCORER_MEMBER]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("state"))), arrays


def _npz(state: object, arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(state)), **arrays)
    return buffer.getvalue()


def _set(path: list, value: object):
    def change(state, arrays):
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return state, arrays

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda state, arrays: ([1, 2], arrays), "the state is a list"),
        (_set(["model", "state"], 5), "a CompiledModel with other attributes"),
        (_set(["model", "state", "predict_proba"], {"array": "a0"}), "other attributes"),
        (_set(["model", "state", "estimator", "state", "__class__"], "x"), "other attributes"),
        (_set(["classes"], {"False": 0}), "the classes are not a list of labels"),
        (_set(["model", "state", "fill"], {"dict": [[[1], 2]]}), "not one of labels"),
        (_set(["model", "state", "fill"], {"array": "a0", "tuple": []}), "class None"),
        (lambda state, arrays: (state, {**arrays, "a0": np.array(["rm -rf /"])}), "arrays of <U"),
    ],
    ids=[
        "state-a-list",
        "object-state-a-number",
        "an-extra-attribute",
        "a-dunder-attribute",
        "classes-a-mapping",
        "mapping-keys-lists",
        "two-kinds-in-one",
        "text-array",
    ],
)
def test_a_stored_scorer_of_any_other_shape_is_refused(table, tmp_path, change, message):
    """Names JSON of unexpected types, attributes nbops never stores, arrays of text: not
    a stored scorer of this format (which the caller would leave to skops) but one that
    nbops never writes, refused (the caller says so in one paragraph)."""
    state, arrays = change(*_stored_parts(table, tmp_path))
    with pytest.raises(NotAStoredScorer, match=message):
        loads(_npz(state, arrays))


def test_a_stored_scorer_of_another_format_is_left_to_skops(table, tmp_path):
    state, arrays = _stored_parts(table, tmp_path)
    state["format"] = 2  # a later nbops
    with pytest.raises(StoredError, match="format 2"):
        loads(_npz(state, arrays))
