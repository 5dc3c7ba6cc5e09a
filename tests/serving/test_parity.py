"""Rows sent as the text of the training file are typed and scored like the pipeline.

A messy CSV built from scikit-learn's breast-cancer table (a yes/no column, numbers
stored as text with blanks and N/A, dd/mm/yyyy dates, a text column holding "NA") goes
through ingest (:func:`nbops.data.sources.read_table`); a model is fitted on part of it. The
other rows, read back as strings the way a client's own CSV reader gives them, are
validated by the service's code and scored by both of its scorers: every label and
probability equals the pipeline's on the ingested rows.
"""

from __future__ import annotations

import csv

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from nbops.data.sources import read_table
from nbops.data.target import prepare_target
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.serving.compiled import compile_model
from nbops.serving.labels import relabel
from nbops.serving.model import ServedModel
from nbops.serving.validation import Feature, probe_batch, validate


def _messy_csv(path):
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, [0, 1, 2, 5]].copy()
    frame.columns = ["radius", "texture", "perimeter", "compactness"]
    rng = np.random.default_rng(0)
    n = len(frame)
    texture = frame["texture"].map("{:.2f}".format)
    texture[rng.random(n) < 0.08] = ""
    texture[rng.random(n) < 0.04] = "N/A"
    frame["texture"] = texture
    frame["smoker"] = np.where(frame["compactness"] > frame["compactness"].median(), "Yes", "No")
    frame["region"] = rng.choice(["NA", "EU", "ASIA", ""], n)
    frame["seen"] = [
        f"{d.day:02d}/{d.month:02d}/{d.year}"
        for d in pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), "D")
    ]
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    frame.to_csv(path, index=False)


def test_file_rows_sent_as_text_get_the_pipelines_labels_and_probabilities(tmp_path):
    path = tmp_path / "cancer.csv"
    _messy_csv(path)
    ingested, info = prepare_target(read_table(path).frame, "diagnosis", "classification")
    assert str(ingested["smoker"].dtype) == "boolean" and ingested["texture"].dtype == float
    assert ingested["seen"].dtype.kind == "M" and "NA" in set(ingested["region"].dropna())
    train, test = ingested.iloc[:400], ingested.iloc[400:]
    roles = infer_roles(train, target="diagnosis")
    model = make_model("linear", task="classification", roles=roles, seed=0)
    model.fit(train.drop(columns=["diagnosis"]), train["diagnosis"])
    expected = model.predict_proba(test.drop(columns=["diagnosis"]))  # as evaluate scores

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[400:]  # the client's own CSV reader: strings
    for row in rows:
        del row["diagnosis"]
    features = [Feature(r.column, r.role) for r in roles if r.role != "drop"]
    assert {f.role for f in features} >= {"numeric", "boolean", "categorical", "datetime"}
    batch, errors = validate({"records": rows}, features, max_rows=1000)
    assert not errors, errors[:3]
    compiled = compile_model(model, probe=probe_batch(features))
    assert compiled is not None
    for proba in (
        compiled.predict_proba(batch.columns, batch.n_rows),
        model.predict_proba(batch.frame()),
    ):
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-9)
    answer = relabel(
        {
            "predictions": model.classes_[expected.argmax(axis=1)].tolist(),
            "probabilities": [
                dict(zip(map(str, model.classes_), r, strict=True)) for r in expected.tolist()
            ],
        },
        model.classes_,
        info.classes,
    )
    pipeline_labels = model.predict(test.drop(columns=["diagnosis"]))
    assert answer["predictions"] == [str(label) for label in pipeline_labels]
    assert set(answer["probabilities"][0]) == {"benign", "malignant"} == set(map(str, info.classes))


def test_a_true_false_target_trained_as_floats_answers_with_its_labels():
    """A yes/no target with blanks trains as 0.0/1.0; GET /model lists False/True."""
    answer = relabel(
        {
            "predictions": [0.0, 1.0],
            "probabilities": [{"0.0": 0.6, "1.0": 0.4}, {"0.0": 0.1, "1.0": 0.9}],
        },
        np.array([0.0, 1.0]),
        [False, True],
    )
    assert answer == {
        "predictions": ["False", "True"],
        "probabilities": [{"False": 0.6, "True": 0.4}, {"False": 0.1, "True": 0.9}],
    }


def test_a_yes_no_target_answers_yes_and_no_as_the_file_writes_them(tmp_path):
    """Ingest keeps the target's yes/no text: the model's labels are the file's."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    churned = np.where(x + rng.normal(scale=0.5, size=200) > 0, "Yes", "No").astype(object)
    churned[:3] = ["", "N/A", "Yes"]  # a blank and N/A are no label, as in any yes/no column
    path = tmp_path / "churn.csv"
    pd.DataFrame(
        {"usage": x.round(3), "paperless": np.where(x > 1, "yes", "no"), "churned": churned}
    ).to_csv(path, index=False)

    ingested, info = prepare_target(
        read_table(path, target="churned").frame, "churned", "classification"
    )
    assert info.classes == ["No", "Yes"] and info.positive_class == "Yes"  # GET /model's list
    assert info.dropped_missing == 2
    assert str(ingested["paperless"].dtype) == "boolean"  # a feature's yes/no is still typed
    roles = infer_roles(ingested, target="churned")
    model = make_model("linear", task="classification", roles=roles, seed=0)
    model.fit(ingested.drop(columns=["churned"]), ingested["churned"])
    proba = model.predict_proba(ingested.drop(columns=["churned"]).head(5))
    answer = relabel(
        {
            "predictions": model.classes_[proba.argmax(axis=1)].tolist(),
            "probabilities": [dict(zip(map(str, model.classes_), r, strict=True)) for r in proba],
        },
        model.classes_,
        info.classes,
    )
    assert set(answer["predictions"]) <= {"Yes", "No"} and "Yes" in answer["predictions"]
    assert all(set(row) == {"No", "Yes"} for row in answer["probabilities"])


def test_the_service_answers_the_models_probabilities_unrounded(tmp_path):
    """What ``POST /predict`` returns for a batch: each probability is the model's own
    (a parity check against the evaluate step allows 1e-9, not a rounding step)."""
    path = tmp_path / "cancer.csv"
    _messy_csv(path)
    ingested, info = prepare_target(read_table(path).frame, "diagnosis", "classification")
    roles = infer_roles(ingested, target="diagnosis")
    model = make_model("linear", task="classification", roles=roles, seed=0)
    model.fit(ingested.drop(columns=["diagnosis"]), ingested["diagnosis"])
    features = [Feature(r.column, r.role) for r in roles if r.role != "drop"]
    with path.open(newline="") as handle:
        rows = [{k: v for k, v in r.items() if k != "diagnosis"} for r in csv.DictReader(handle)]
    batch, errors = validate({"records": rows[:50]}, features, max_rows=1000)
    assert not errors, errors[:3]
    served = ServedModel("cancer", "1", "champion", None, model, features, "classification")

    answer = served.predict(batch)

    expected = model.predict_proba(ingested.drop(columns=["diagnosis"]).head(50))
    got = [[row[str(c)] for c in model.classes_] for row in answer["probabilities"]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("classes", "training"),
    [
        (np.array([False, True]), [False, True]),
        (np.array([0.0, 1.0]), [False, True]),  # a true/false target trained as floats
        (np.array(["a", "b", "c"]), ["a", "b", "c"]),
        (np.array([0, 1, 2]), []),  # no recorded labels: the estimator's own
    ],
)
def test_the_answer_is_the_relabelled_prediction_as_json(classes, training):
    """``ServedModel.answer`` (what /predict sends) builds the JSON from the score arrays
    in one pass: the same document as relabelling the estimator's own output."""

    class Fixed:
        classes_ = classes

        def predict_proba(self, frame):
            rng = np.random.default_rng(len(frame))
            p = rng.random((len(frame), len(classes)))
            return p / p.sum(axis=1, keepdims=True)

    features = [Feature("x", "numeric")]
    served = ServedModel("m", "1", "champion", None, Fixed(), features, "classification")
    served.classes = training
    batch, _ = validate({"records": [{"x": i} for i in range(100)]}, features, max_rows=100)

    expected = relabel(served.predict(batch), classes, training)
    assert orjson.loads(served.answer(batch)) == expected
