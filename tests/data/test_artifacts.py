"""The pipeline's small products: strict JSON files and hash-checked model files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nbops.data.artifacts import file_sha256, load_model, read_json, save_model, write_json
from nbops.errors import NbopsError


def _strict_loads(text: str) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (math.inf, None),
        (-math.inf, None),
        (np.float64("nan"), None),
        (np.float32("nan"), None),
        (np.int64(3), 3),
        (np.int8(-2), -2),
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.bool_(True), True),
        ("NA", "NA"),
        ({"roc_auc": math.nan, "f1": np.float64(0.5)}, {"roc_auc": None, "f1": 0.5}),
        ([1, (np.int64(2), math.nan)], [1, [2, None]]),
        ({1: "a", np.int64(2): "b"}, {"1": "a", "2": "b"}),
        pytest.param(
            np.array([1.0, np.nan]),
            [1.0, None],
            id="numpy-array",
        ),
        pytest.param(
            pd.NA,
            None,
            id="pd.NA",
        ),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "numpy-nan",
        "float32-nan",
        "int64",
        "int8",
        "float32",
        "float64",
        "numpy-bool",
        "text-NA",
        "dict",
        "nested-list-tuple",
        "non-string-keys",
        "numpy-array",
        "pd.NA",
    ],
)
def test_write_json_writes_strict_json(tmp_path: Path, value: object, expected: object) -> None:
    path = write_json(tmp_path / "nested" / "out.json", {"value": value})
    loaded = _strict_loads(path.read_text())
    assert loaded == {"value": expected}
    assert type(loaded["value"]) is type(expected)
    assert read_json(path) == loaded


def test_write_json_is_indented_and_ends_with_a_newline(tmp_path: Path) -> None:
    text = write_json(tmp_path / "m.json", {"a": 1}).read_text()
    assert text == '{\n  "a": 1\n}\n'


@pytest.fixture
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    return LogisticRegression().fit(X, X[:, 0] > 0)


def test_save_and_load_model_round_trip(tmp_path: Path, model: LogisticRegression) -> None:
    info = save_model(model, tmp_path / "models" / "model.joblib")
    path = Path(info["path"])
    assert path == tmp_path / "models" / "model.joblib"
    assert info["bytes"] == path.stat().st_size > 0
    assert info["sha256"] == file_sha256(path)
    assert info["sha256"].startswith("sha256:") and len(info["sha256"]) == 7 + 64
    X = np.random.default_rng(1).normal(size=(10, 2))
    for loaded in (load_model(path), load_model(path, sha256=info["sha256"])):
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_load_model_refuses_a_wrong_hash(tmp_path: Path, model: LogisticRegression) -> None:
    info = save_model(model, tmp_path / "model.joblib")
    wrong = "sha256:" + "0" * 64
    with pytest.raises(
        NbopsError,
        match=r"does not match its recorded hash sha256:0+: it was changed after training",
    ):
        load_model(info["path"], sha256=wrong)


def test_load_model_refuses_a_changed_file(tmp_path: Path, model: LogisticRegression) -> None:
    info = save_model(model, tmp_path / "model.joblib")
    with open(info["path"], "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(NbopsError, match=r"Rebuild the train task"):
        load_model(info["path"], sha256=info["sha256"])


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
