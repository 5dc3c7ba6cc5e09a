"""``nbops score``: a file scored by the registry's model, as the service scores a request.

The module scores with a copy of the session's reference build and its store (its
champion is the model every test scores with); tests write their inputs and outputs in
their own folders.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import html
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nbops.cli import main
from nbops.commands import score as score_module
from nbops.commands.score import score_file
from nbops.errors import ReleaseError
from nbops.serving.model import ServedModel, load_served_model
from nbops.serving.validation import validate
from tests.conftest import Project, copy_built_with_store, free_port
from tests.dask_cluster import start_cluster


@pytest.fixture(scope="module")
def project(
    built_project: Project, tmp_path_factory: pytest.TempPathFactory, module_env: None
) -> Project:
    """The session's reference build with a store of its own (it gets score runs)."""
    return copy_built_with_store(built_project, tmp_path_factory.mktemp("score") / "project")


@pytest.fixture(scope="module")
def model(project: Project) -> ServedModel:
    return load_served_model(project.root, "churn", "champion")


@pytest.fixture(scope="module")
def rows(project: Project) -> pd.DataFrame:
    """The build's test rows, target dropped, as the file a user would score."""
    test = pd.read_parquet(project.products / "data" / "test.parquet")
    return test.drop(columns=["churned"]).reset_index(drop=True)


@pytest.fixture
def in_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(project.root)
    return project


@pytest.fixture(autouse=True)
def _reports_where_asked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report costs a kernel (seconds): tests that ask for ``reported`` get one; the
    others score as a project without the report notebook does."""
    if "reported" not in request.fixturenames:
        monkeypatch.setattr(score_module, "REPORT_NOTEBOOK", "notebooks/score/absent.ipynb")


@pytest.fixture
def reported(in_project: Project) -> Project:
    """The project, with its report notebook run after each scoring job."""
    return in_project


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["score", *args])
    return result.exit_code, result.output


def test_scores_every_row_in_order_with_the_pipelines_probabilities(
    in_project, model, rows, tmp_path
):
    source = tmp_path / "customers.parquet"
    rows.to_parquet(source, row_group_size=97)  # several row groups and chunks
    out = tmp_path / "scores.parquet"

    code, output = run(str(source), "--out", str(out), "--chunk-rows", "50")

    assert code == 0, output
    assert f"Scored {len(rows):,} of {len(rows):,} rows with churn v{model.version}" in output
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [
        "customer_id",
        "prediction",
        "proba_False",
        "proba_True",
        "model_name",
        "model_version",
        "scored_at",
    ]
    assert scores["customer_id"].tolist() == rows["customer_id"].tolist()
    expected = model.estimator.predict_proba(rows)
    np.testing.assert_allclose(scores[["proba_False", "proba_True"]], expected, rtol=1e-12)
    assert scores["prediction"].tolist() == [str(bool(p)) for p in expected.argmax(axis=1)]
    assert set(scores["model_name"]) == {"churn"} and set(scores["model_version"]) == {
        model.version
    }
    assert scores["scored_at"].nunique() == 1 and str(scores["scored_at"].dt.tz) == "UTC"
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "scores.rejects.csv").exists()


def test_chunks_scored_side_by_side_keep_the_order_and_the_output(in_project, rows, tmp_path):
    """Threads scoring chunks at once write what one thread writes: same rows, order,
    values, rejects and drift sample."""
    batch = rows.copy()
    batch["devices"] = batch["devices"].astype(str)
    batch.loc[[3, 170, 171, 299], "devices"] = "many"  # rejects in several chunks
    source = tmp_path / "batch.parquet"
    batch.to_parquet(source, row_group_size=37)
    kw = {"model_name": "churn", "record": False, "chunk_rows": 25}

    one = score_file(in_project.root, source, tmp_path / "one.parquet", workers=1, **kw)
    three = score_file(in_project.root, source, tmp_path / "three.parquet", workers=3, **kw)

    a, b = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "three.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))
    kept = batch.drop(index=[3, 170, 171, 299])
    assert b["customer_id"].tolist() == kept["customer_id"].tolist()
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "one.rejects.csv"), pd.read_csv(tmp_path / "three.rejects.csv")
    )
    assert pd.read_csv(tmp_path / "three.rejects.csv")["row"].tolist() == [4, 171, 172, 300]
    assert one.drift == three.drift and three.rejected == 4


def test_a_failing_scoring_thread_is_one_paragraph_and_leaves_no_output(
    in_project, rows, tmp_path, monkeypatch
):
    output_of = score_module._output
    third = rows["customer_id"][100]  # the first row of the third chunk

    def fails_on_the_third_chunk(model, plan, ids, batch):
        if ids.column("customer_id")[0].as_py() == third:
            raise MemoryError("cannot allocate 2.1 GiB")
        return output_of(model, plan, ids, batch)

    monkeypatch.setattr(score_module, "_output", fails_on_the_third_chunk)
    source = tmp_path / "batch.parquet"
    rows.head(200).to_parquet(source)
    out = tmp_path / "scores.parquet"

    code, output = run(str(source), "--out", str(out), "--chunk-rows", "50", "--workers", "2")

    assert code == 1 and output.startswith("Error: Scoring rows 101 to 150 of ")
    assert "failed (MemoryError: cannot allocate 2.1 GiB); no output was written" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_the_model_is_read_from_the_embedded_store_without_mlflow(project, model, monkeypatch):
    """Loading the model for a job costs no MLflow (its import and store: 2 s of CPU),
    and keeps the hash check: a changed model file is refused."""
    from nbops.tracking import registry

    def no_mlflow(*args, **kwargs):
        raise AssertionError("the embedded store was read through MLflow")

    monkeypatch.setattr(registry.Registry, "__init__", no_mlflow)
    loaded = load_served_model(project.root, "churn", "champion")
    assert (loaded.version, loaded.scorer, loaded.features) == (
        model.version,
        model.scorer,
        model.features,
    )
    assert registry.embedded_files(project.root, "churn", model.version, ("nope.txt",)) == {}

    found = registry._embedded_version(project.root, "churn", "champion")
    assert found is not None
    stored = found[1] / "model.skops"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original + b"\0")
        with pytest.raises(ReleaseError, match=r"does not match its recorded hash"):
            load_served_model(project.root, "churn", "champion")
    finally:
        stored.write_bytes(original)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # a remote store: MLflow
    assert registry._embedded_version(project.root, "churn", "champion") is None


def test_the_scorer_stored_with_a_linear_model_is_used_and_hash_checked(
    in_project, model, rows, tmp_path, monkeypatch
):
    """A linear champion's compiled scorer is stored in its model.skops by the build and
    scores without scikit-learn; a model without it (registered before) scores the same
    through skops; a changed model file is refused before the scorer is read."""
    from nbops.serving import stored
    from nbops.tracking import registry

    linear = type(model.estimator[-1]).__name__ in ("LogisticRegression", "Ridge")
    fast = stored.load_stored_model(in_project.root, "churn", "champion")
    assert (fast is not None) == linear
    source = tmp_path / "customers.parquet"
    rows.to_parquet(source)
    scores, member = {}, stored.SCORER_MEMBER
    for kind in ("stored", "without"):
        if kind == "without":  # as a model registered before the scorer was stored
            monkeypatch.setattr(stored, "SCORER_MEMBER", "absent.npz")
            assert stored.load_stored_model(in_project.root, "churn", "champion") is None
        code, output = run(str(source), "--out", str(tmp_path / f"{kind}.parquet"))
        assert code == 0, output
        scores[kind] = pd.read_parquet(tmp_path / f"{kind}.parquet")
    columns = ["customer_id", "prediction", "proba_False", "proba_True"]
    pd.testing.assert_frame_equal(scores["stored"][columns], scores["without"][columns])

    folder = registry._embedded_version(in_project.root, "churn", "champion")[1]
    original = (folder / "model.skops").read_bytes()
    try:
        (folder / "model.skops").write_bytes(original + b"\0")
        with pytest.raises(ReleaseError, match=r"does not match its recorded hash"):
            stored.load_stored_model(in_project.root, "churn", "champion")
        monkeypatch.setattr(stored, "SCORER_MEMBER", member)
        code, output = run(str(source), "--out", str(tmp_path / "tampered.parquet"))
        assert code == 1 and "does not match its recorded hash" in output, output
        assert not (tmp_path / "tampered.parquet").exists()
    finally:
        (folder / "model.skops").write_bytes(original)


class _Marker:
    """A pickle that, once loaded, touches a file: proof that code in it ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@contextlib.contextmanager
def _stored_scorer(root: Path, data: bytes) -> Iterator[None]:
    """The champion's model.skops with ``data`` as its stored scorer, and the hash the
    registry records for it changed to match (what someone who can write the store
    could do); both put back afterwards."""
    import io
    import sqlite3
    import zipfile

    from nbops.hashing import file_sha256
    from nbops.serving.stored import SCORER_MEMBER
    from nbops.tracking import registry

    version, folder = registry._embedded_version(root, "churn", "champion")
    path = folder / "model.skops"
    original = path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as old, zipfile.ZipFile(buffer, "w") as new:
        for item in old.infolist():
            if item.filename != SCORER_MEMBER:
                new.writestr(item, old.read(item))
        new.writestr(SCORER_MEMBER, data)

    def record_hash(value: str) -> None:
        with contextlib.closing(sqlite3.connect(root / ".nbops" / "mlflow.db")) as db, db:
            db.execute(
                "UPDATE model_version_tags SET value = ? WHERE name = 'churn' AND version = ? "
                "AND key = 'nbops.model_sha256'",
                (value, int(version.version)),
            )

    try:
        path.write_bytes(buffer.getvalue())
        record_hash(file_sha256(path))
        yield
    finally:
        path.write_bytes(original)
        record_hash(version.tags["nbops.model_sha256"])


@pytest.mark.parametrize(
    "member",
    [
        lambda marker: pickle.dumps(_Marker(marker)),
        lambda marker: _npz_bytes(
            state=np.array('{"format": 1}'), code=np.array([_Marker(marker)], dtype=object)
        ),
        lambda marker: _npz_bytes(
            state=np.array(
                '{"format": 1, "classes": [0], "model": ' + "[" * 50_000 + "]" * 50_000 + "}"
            )
        ),
    ],
    ids=["a-pickle", "an-object-array", "nested-deeper-than-json-reads"],
)
def test_a_stored_scorer_nbops_never_writes_is_refused_and_nothing_of_it_runs(
    in_project, rows, tmp_path, member
):
    """Even with the model file's recorded hash changed to match it: one paragraph naming
    the model and the fix, no code of the file run, no output written."""
    marker = tmp_path / "ran"
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    rows.head(5).to_parquet(source)

    with _stored_scorer(in_project.root, member(marker)):
        code, output = run(str(source), "--out", str(out))

    assert code == 1, output
    assert output.startswith("Error: Model 'churn' version ") and "holds a stored scorer" in output
    assert "refusing to load it; nothing in it was run" in output
    assert "re-register the model from its build" in output
    assert len(output.strip().splitlines()) == 1, "one paragraph, no traceback"
    assert not marker.exists() and not out.exists()


def test_the_job_is_a_run_in_the_tracking_store(in_project, model, rows, tmp_path):
    from nbops.hashing import file_sha256
    from nbops.tracking.store import Store

    source = tmp_path / "batch.parquet"
    rows.head(40).to_parquet(source)
    result = score_file(
        in_project.root, source, tmp_path / "out.csv", model_name="churn", alias=model.version
    )

    listed = CliRunner().invoke(main, ["runs", "list"]).output
    line = next(x for x in listed.splitlines() if x.startswith(result.run["run_id"][:12]))
    assert " score " in line and file_sha256(source)[7:19] in line
    run = Store(in_project.root).client.get_run(result.run["run_id"])
    params, metrics = run.data.params, run.data.metrics
    assert params["env.score.model_version"] == model.version
    assert params["env.score.input_sha256"] == file_sha256(source)
    assert params["env.score.output_sha256"] == file_sha256(tmp_path / "out.csv")
    assert (metrics["rows"], metrics["rejected"]) == (40, 0) and metrics["seconds"] > 0
    shares = (
        pd.read_csv(tmp_path / "out.csv")["prediction"].astype(str).value_counts(normalize=True)
    )
    assert metrics["prediction.True"] == pytest.approx(shares.get("True", 0.0))
    assert metrics["prediction.False"] == pytest.approx(shares.get("False", 0.0))
    assert len(pd.read_csv(tmp_path / "out.csv")) == 40
    assert metrics["drift.sample_rows"] == 40 and "drift.share" in metrics
    task = next(r for r in Store(in_project.root).children(run.info.run_id))
    assert "drift.json" in [
        a.path for a in Store(in_project.root).client.list_artifacts(task.info.run_id)
    ]


def test_a_drifted_batch_is_reported_against_the_training_profile(
    in_project, tmp_path, monkeypatch
):
    from nbops.commands import score
    from nbops.data.datasets import write_churn

    monkeypatch.setattr(score, "SAMPLE_ROWS", 1_000)  # a sample drawn across the chunks

    same, shifted = tmp_path / "same.parquet", tmp_path / "shifted.parquet"
    write_churn(same, 3_000, seed=11)
    write_churn(shifted, 3_000, seed=11, drift=1.0)

    quiet = score_file(
        in_project.root, same, tmp_path / "a.parquet", model_name="churn", record=False
    )
    loud = score_file(
        in_project.root, shifted, tmp_path / "b.parquet", model_name="churn", record=False
    )

    assert quiet.drift["drifted"] is False and loud.drift["drifted"] is True
    assert "monthly_charges" in loud.drift["drifted_columns"]
    assert loud.drift["prediction"]["status"] == "drift"
    assert loud.drift["n_current"] == 1_000 and loud.scored == 3_000


def test_a_large_files_drift_sample_is_drawn_from_few_rows_with_the_same_result(
    in_project, tmp_path, monkeypatch
):
    """Only rows whose random key can make the sample are typed (speed), and the sample,
    hence the drift report, is the one every row competing for it gives."""
    from nbops.commands import score
    from nbops.data.datasets import write_churn

    monkeypatch.setattr(score, "SAMPLE_ROWS", 200)
    source = tmp_path / "batch.parquet"
    write_churn(source, 3_000, seed=4, drift=0.5)
    typed: list[int] = []
    add = score._Sample.add

    def counting(self, batch, table, model):
        add(self, batch, table, model)
        typed.append(self.typed)

    monkeypatch.setattr(score._Sample, "add", counting)
    share = score._sample_share(source)
    kw = {"model_name": "churn", "record": False, "chunk_rows": 500}
    drawn = score_file(in_project.root, source, tmp_path / "a.parquet", **kw)
    monkeypatch.setattr(score, "_sample_share", lambda source: 1.0)
    everyone = score_file(in_project.root, source, tmp_path / "b.parquet", **kw)

    assert share == pytest.approx(0.08)
    assert drawn.drift == everyone.drift and drawn.drift["n_current"] == 200
    assert typed[5] < 400 and typed[-1] > 700  # 8% of 3,000 rows typed, not a third or more


def _as_text(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows as a messy export writes them: yes/no, numbers as text with blanks and
    N/A, dates as dd/mm/yyyy, padded categories."""
    text = pd.DataFrame(index=rows.index)
    for name, column in rows.items():
        if str(column.dtype) in ("bool", "boolean"):
            text[name] = column.map({True: "Yes", False: "no"}).astype(object).fillna("")
        elif column.dtype.kind == "M":
            text[name] = column.dt.strftime("%d %b %Y %H:%M:%S")
        elif column.dtype.kind in "if":
            values = column.map(lambda v: "" if pd.isna(v) else f" {v} ")
            values[column.isna() & (np.arange(len(column)) % 2 == 0)] = "N/A"
            text[name] = values
        else:
            text[name] = column.astype(object).where(column.notna(), "").map(" {} ".format)
    return text


def test_a_messy_csv_is_scored_as_the_service_scores_its_text(in_project, model, rows, tmp_path):
    text = _as_text(rows)
    source = tmp_path / "messy.csv"
    text.to_csv(source, index=False, quoting=csv.QUOTE_MINIMAL)
    out = tmp_path / "scores.parquet"

    code, output = run(str(source), "--out", str(out), "--chunk-rows", "64")

    assert code == 0, output
    records = pd.read_csv(source, dtype=str, keep_default_na=False).to_dict("records")
    batch, errors = validate(
        {"records": records}, model.features, max_rows=10**6, ignore=model.ignored
    )
    assert errors == [] and batch is not None
    served = model.predict(batch)  # what POST /predict answers for the same text
    scores = pd.read_parquet(out)
    np.testing.assert_allclose(
        scores["proba_True"], [p["True"] for p in served["probabilities"]], rtol=0, atol=1e-12
    )
    assert scores["prediction"].tolist() == [str(p) for p in served["predictions"]]
    # ...and as the pipeline scores the typed rows
    np.testing.assert_allclose(
        scores[["proba_False", "proba_True"]], model.estimator.predict_proba(rows), rtol=1e-9
    )


def test_bad_rows_go_to_the_rejects_file_with_their_row_number_and_reasons(
    in_project, rows, tmp_path
):
    text = _as_text(rows.head(30))
    text.loc[3, "tenure_months"] = "twelve"
    text.loc[7, "auto_renew"] = "maybe"
    text.loc[7, "plan"] = ""  # not nullable
    source = tmp_path / "batch.csv"
    text.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"

    code, output = run(str(source), "--out", str(out), "--chunk-rows", "5")

    assert code == 0, output
    assert "Rejected 2 rows" in output and "scores.rejects.csv" in output
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [4, 8]  # data rows, the first is 1
    assert rejects["customer_id"].str.strip().tolist() == [
        rows["customer_id"][3],
        rows["customer_id"][7],
    ]
    assert "tenure_months: expected a number" in rejects["reasons"][0]
    assert "auto_renew: expected true or false" in rejects["reasons"][1]
    assert "plan: null is not allowed" in rejects["reasons"][1]
    scores = pd.read_parquet(out)
    kept = [c for i, c in enumerate(rows["customer_id"].head(30)) if i not in (3, 7)]
    assert scores["customer_id"].str.strip().tolist() == kept


HOSTILE = "<img src=x onerror=alert(1)>"


def test_every_job_leaves_a_report_stored_with_its_run(reported, rows, tmp_path, monkeypatch):
    """Also: the report's kernel is started from the project's folder on a thread while
    the job reads and writes, and paths relative to where the command runs stay so."""
    import os

    from nbops.tracking.store import Store

    batch = rows.head(60).copy()
    batch["monthly_charges"] *= 4  # a batch unlike training in one column
    text = _as_text(batch)
    text.loc[2, ["customer_id", "tenure_months"]] = HOSTILE  # rejected, its values shown
    source = tmp_path / "batch.csv"
    text.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    monkeypatch.chdir(reported.root / "notebooks")  # in the project, not at its top

    code, output = run(os.path.relpath(source), "--out", os.path.relpath(out))

    assert code == 0, output
    assert gc.isenabled(), "the collector, off while the job ran, is on again"
    html_path = tmp_path / "scores.report.html"
    assert f"Report: {html_path}" in output
    page = html_path.read_text()
    assert "<strong>60 rows</strong>" in page and "59 scored, 1 rejected" in page
    assert "the batch drifted" in page or "no dataset-level drift (" in page
    assert "<code>monthly_charges</code>" in page, "the drifted column, named in the summary"
    shown = html.escape(HOSTILE, quote=False)  # the value as text, not as an element
    assert f"got '{shown}'</li>" in page, "the first reasons, with the value as written"
    assert f"<td>{shown}</td>" in page, "the rejected row's ID"
    assert all('src="data:image/png' in tag for tag in re.findall(r"<img[^>]*>", page))
    executed = nbformat.read(tmp_path / "scores.report.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    shown = [o for c in code for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in shown) == 2, "the two plots"
    assert executed.metadata.language_info.name == "python"
    store = Store(reported.root)
    run_id = output.split("Recorded as run ")[1][:12]
    task = store.children(store.resolve(run_id).info.run_id)[0]
    stored = {a.path for a in store.client.list_artifacts(task.info.run_id)}
    assert {"report.html", "report.ipynb", "rejects.csv", "drift.json"} <= stored


def test_the_nbops_program_scores_reports_records_and_replaces_an_earlier_output(
    reported, rows, tmp_path
):
    """The `nbops score` program itself (not the command called in this process): it
    ends without Python's exit once everything is written, and what it wrote is whole:
    the output (which replaced an earlier job's file), the report, the run."""
    import subprocess
    import sys

    from nbops.tracking.store import Store

    source, out = tmp_path / "batch.parquet", tmp_path / "scores.parquet"
    rows.head(50).to_parquet(source)
    out.write_bytes(b"an earlier job's output")
    nbops = Path(sys.executable).with_name("nbops")

    done = subprocess.run(
        [str(nbops), "score", str(source), "--out", str(out)],
        cwd=reported.root,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Scored 50 of 50 rows with churn")
    assert done.stdout.rstrip().endswith("(nbops runs show)."), "the last line, printed"
    assert len(pd.read_parquet(out)) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "batch.parquet",
        "scores.parquet",
        "scores.report.html",
        "scores.report.ipynb",
    ], "no temporary file left"
    run_id = done.stdout.split("Recorded as run ")[1][:12]
    run = Store(reported.root).resolve(run_id)
    assert run.info.status == "FINISHED"


def test_the_report_imports_ahead_the_plots_and_not_scikit_learn(project):
    """What the report notebook imports is imported while the job scores, the plots
    (`from nbops.modeling import plots`: matplotlib, 1 s of CPU) included; that must
    not pull in scikit-learn and scipy.stats (1.5 s of CPU) for two drift plots."""
    import json
    import subprocess
    import sys

    from nbops.build.imports import imported_modules

    notebook = json.loads((project.root / "notebooks/score/report.ipynb").read_text())
    modules = imported_modules(notebook, names=True)
    check = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    try:\n        importlib.import_module(m)\n"
        "    except ImportError:\n        pass\n"  # a name imported from a module
        "print('sklearn' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=120
    )
    assert {"nbops.monitoring.drift", "nbops.modeling.plots"} <= set(modules)
    assert result.stdout.split() == ["False", "True"]


def test_a_model_without_a_reference_profile_still_gets_its_report(
    reported, rows, tmp_path, monkeypatch
):
    # a version registered before nbops computed profiles: no drift to measure
    monkeypatch.setattr(score_module, "_drift", lambda root, model, sample: None)
    source = tmp_path / "batch.parquet"
    rows.head(30).to_parquet(source)

    result = score_file(
        reported.root, source, tmp_path / "out.parquet", model_name="churn", record=False
    )

    assert result.drift == {} and result.report == str(tmp_path / "out.report.html")
    page = (tmp_path / "out.report.html").read_text()
    assert "Not measured: the model has no reference profile" in page
    assert "<strong>30 of 30 rows scored</strong>" in page


def test_a_project_without_the_report_notebook_still_scores_with_a_note(in_project, rows, tmp_path):
    source = tmp_path / "batch.parquet"
    rows.head(10).to_parquet(source)

    code, output = run(str(source), "--out", str(tmp_path / "out.parquet"))

    assert code == 0, output
    assert "No report made: this project has no notebooks/score/absent.ipynb" in output
    assert not list(tmp_path.glob("*.report.*"))


def test_a_report_that_fails_leaves_the_scores_and_names_the_notebook(
    in_project, rows, tmp_path, monkeypatch
):
    broken = tmp_path / "report.ipynb"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("summary = None", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("raise ValueError('no column plan in this summary')"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(notebook, broken)
    monkeypatch.setattr(score_module, "REPORT_NOTEBOOK", str(broken))
    source = tmp_path / "batch.parquet"
    rows.head(10).to_parquet(source)
    (tmp_path / "out.report.html").write_text("a report of an earlier job")

    code, output = run(str(source), "--out", str(tmp_path / "out.parquet"))

    assert code == 0, output
    assert "failed (ValueError: no column plan in this summary)" in output
    assert str(tmp_path / "out.report.failed.ipynb") in output
    failed = nbformat.read(tmp_path / "out.report.failed.ipynb", as_version=4)
    error = failed.cells[-1].outputs[-1]  # as papermill shows it: the error, marked above
    assert (error.ename, error.evalue) == ("ValueError", "no column plan in this summary")
    assert 'id="papermill-error-cell"' in failed.cells[-2].source
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 10
    assert not (tmp_path / "out.report.html").exists(), "no stale report beside the new scores"
    assert not list(tmp_path.glob(".*.tmp*"))


def test_max_bad_rows_stops_the_job_and_leaves_no_output(in_project, rows, tmp_path):
    text = _as_text(rows.head(30))
    text.loc[[1, 2, 20], "devices"] = "many"
    source = tmp_path / "batch.csv"
    text.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"

    code, output = run(str(source), "--out", str(out), "--chunk-rows", "10", "--max-bad-rows", "1")

    assert code == 1
    assert "2 of the first 10 rows were rejected, more than --max-bad-rows 1" in output
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    assert pd.read_csv(tmp_path / "scores.rejects.partial.csv")["row"].tolist() == [2, 3]
    assert gc.isenabled(), "the collector, off while the job ran, is on again"


def _missing_column(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "in.parquet"
    rows.drop(columns=["plan"]).head(5).to_parquet(path)
    return path


def _header_only(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(",".join(rows.columns) + "\n")
    return path


def _empty(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(b"")
    return path


def _spreadsheet(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "in.xlsx"
    path.write_bytes(b"PK\x03\x04")
    return path


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda t, r: t / "nowhere.csv", [], r"Input file '.*nowhere.csv' does not exist"),
        (_spreadsheet, [], r"extension '.xlsx', which nbops score does not read"),
        (_empty, [], r"is empty \(0 bytes\)"),
        (_header_only, [], r"has a header but no data rows"),
        (_missing_column, [], r"The input has no column 'plan', which model 'churn' version"),
        (_missing_column, ["--alias", "99"], r"Model 'churn' has no version '99'"),
        (_missing_column, ["--model", "nope"], r"There is no registered model 'nope'"),
    ],
    ids=["missing", "format", "empty", "header-only", "column", "version", "model"],
)
def test_bad_input_is_one_paragraph_and_exit_1(in_project, rows, tmp_path, make, args, message):
    import re

    source = make(tmp_path, rows)
    out = tmp_path / "out" / "scores.parquet"

    code, output = run(str(source), "--out", str(out), *args)

    assert code == 1
    assert output.startswith("Error: ") and "Traceback" not in output
    assert re.search(message, output.replace("\n", " ")), output
    assert not out.exists() and not list(out.parent.glob(".*.tmp"))


def test_no_champion_names_the_fix(project, tmp_path, monkeypatch, rows):
    """A project whose registry has the model but not the alias asked for."""
    monkeypatch.chdir(project.root)
    source = tmp_path / "in.parquet"
    rows.head(3).to_parquet(source)

    code, output = run(str(source), "--out", str(tmp_path / "o.parquet"), "--alias", "challenger")

    assert code == 1
    assert "Model 'churn' has no alias 'challenger' to score with" in output
    assert "nbops promote churn VERSION" in output


# -- on a real dask.distributed cluster (a scheduler and two workers on loopback) -------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, project: Project) -> Iterator[str]:
    with start_cluster(tmp_path_factory.mktemp("dask"), cwd=project.root) as address:
        yield address


def test_a_cluster_run_writes_what_a_local_run_writes(in_project, rows, tmp_path, cluster):
    source = tmp_path / "batch.parquet"
    batch = rows.head(300).copy()
    batch["devices"] = batch["devices"].astype(str)  # text, as a messy export has it
    batch.loc[[5, 170], "devices"] = "many"
    batch.to_parquet(source, row_group_size=40)  # 8 row groups: 4 parts of 2 on 2 workers
    here, there = tmp_path / "here.parquet", tmp_path / "there.parquet"

    local = score_file(in_project.root, source, here, model_name="churn", chunk_rows=80)
    code, output = run(
        str(source), "--out", str(there), "--chunk-rows", "80", "--scheduler", cluster
    )

    assert code == 0, output
    a, b = pd.read_parquet(here), pd.read_parquet(there)
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))
    assert len(b) == 298 and b["customer_id"].tolist()[:5] == rows["customer_id"].tolist()[:5]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "here.rejects.csv"), pd.read_csv(tmp_path / "there.rejects.csv")
    )
    assert pd.read_csv(tmp_path / "there.rejects.csv")["row"].tolist() == [6, 171]
    assert local.drift["n_current"] == 298
    from nbops.tracking.store import Store

    newest = Store(in_project.root).builds(limit=1)[0]
    assert newest.data.params["env.score.scheduler"] == cluster
    assert newest.data.metrics["rejected"] == 2
    assert not list(tmp_path.glob(".*.parts")) and not list(tmp_path.glob(".*.tmp"))


def test_a_scheduler_address_with_credentials_is_refused_without_showing_them(
    in_project, rows, tmp_path
):
    """Dask addresses have no user or password: one given is neither used nor printed
    (Dask's own error repeated it without its scheme, where redaction finds no URL)."""
    source = tmp_path / "in.parquet"
    rows.head(5).to_parquet(source)
    out = tmp_path / "out.parquet"

    code, output = run(
        str(source), "--out", str(out), "--scheduler", "tls://ada:s3cretT0ken@127.0.0.1:9"
    )

    assert code == 1 and output.startswith("Error: The --scheduler address has a user name")
    assert "s3cretT0ken" not in output and "ada" not in output
    assert "tls://HOST:PORT" in output
    assert not out.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("input", "Error: The input s3://ada:***REDACTED***@bucket/in.csv is a URL"),
        ("--out", "Error: The output https://ada:***REDACTED***@files/out.parquet is a URL"),
        ("--rejects", "Error: The rejects file https://ada:***REDACTED***@files/bad.csv is a URL"),
    ],
)
def test_a_url_for_a_file_is_one_paragraph_with_its_password_hidden(
    in_project, rows, tmp_path, option, message
):
    """Made absolute, a URL became a path (``s3:/ada:key@bucket``) whose password was
    printed in "does not exist", or a folder named ``https:`` the scores went into."""
    source = tmp_path / "in.parquet"
    rows.head(5).to_parquet(source)
    args = {
        "input": "s3://ada:hunter2pw@bucket/in.csv",
        "--out": "https://ada:hunter2pw@files/out.parquet",
        "--rejects": "https://ada:hunter2pw@files/bad.csv",
    }
    given = [
        args["input"] if option == "input" else str(source),
        "--out",
        args["--out"] if option == "--out" else str(tmp_path / "out.parquet"),
    ] + (["--rejects", args["--rejects"]] if option == "--rejects" else [])

    code, output = run(*given)

    assert code == 1 and output.startswith(message), output
    assert "hunter2pw" not in output and "copy the file" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"], "nothing written"
    assert not list(in_project.root.glob("http*:")), "no folder named for the URL"


def test_a_tracking_store_that_is_away_is_one_paragraph_without_its_password(
    in_project, rows, tmp_path, monkeypatch
):
    """The model comes from a remote store (MLFLOW_TRACKING_URI): one that does not
    answer was MLflow's traceback, the URI in it with its password."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ada:hunter2pw@127.0.0.1:{free_port()}")
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    rows.head(5).to_parquet(source)

    code, output = run(str(source), "--out", str(out))

    assert code == 1 and output.startswith("Error: The tracking store is not available: "), output
    assert "http://ada:***REDACTED***@127.0.0.1:" in output and "hunter2pw" not in output
    assert len(output.strip().splitlines()) == 1
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_paragraph(in_project, rows, tmp_path, monkeypatch):
    from nbops import cluster

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    source = tmp_path / "in.parquet"
    rows.head(5).to_parquet(source)
    out = tmp_path / "out.parquet"
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there

    code, output = run(str(source), "--out", str(out), "--scheduler", address)

    assert code == 1 and output.startswith("Error: Cannot reach the Dask scheduler at " + address)
    assert "leave out --scheduler to score on this machine" in output
    assert not out.exists() and not list(tmp_path.glob(".*"))
