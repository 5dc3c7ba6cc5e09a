"""The reference pipeline, built for real with `ploomber build` in a temporary copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import joblib
import nbformat
import pandas as pd
import pytest

from tests.conftest import BIN, ROOT

pytestmark = pytest.mark.pipeline

TASK_REPORTS = ["ingest", "validate", "split", "train/linear-0", "train/hgb-1", "evaluate", "gate"]
TASKS = {"ingest", "validate", "split", "train-linear", "train-hgb", "evaluate", "gate"}


@pytest.mark.parametrize("report", TASK_REPORTS)
def test_every_task_leaves_an_executed_notebook_and_an_html_report(built_project, report):
    notebook = nbformat.read(built_project.products / f"{report}.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in code), (
        "Ploomber injected the parameters"
    )
    html = (built_project.products / f"{report}.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    title = next(c.source for c in notebook.cells if c.cell_type == "markdown").splitlines()[0]
    assert title.lstrip("# ") in html, "the report shows the notebook's title"


def test_snapshot_describes_the_data_it_froze(built_project):
    meta = json.loads((built_project.products / "data" / "snapshot.json").read_text())
    snapshot = pd.read_parquet(built_project.products / "data" / "snapshot.parquet")
    assert meta["rows"] == len(snapshot) == 1500
    assert meta["columns"] == snapshot.shape[1]
    assert set(meta["dtypes"]) == set(snapshot.columns)
    assert meta["content_hash"].startswith("sha256:") and len(meta["content_hash"]) == 71
    assert meta["source"]["kind"] == "bundled"


def test_validation_passed_and_the_schema_used_is_kept(built_project):
    report = json.loads((built_project.products / "data" / "validation.json").read_text())
    assert report == {"rows": 1500, "ok": True, "failures": []}
    assert (built_project.products / "data" / "schema.yaml").read_text() == (
        ROOT / "schema" / "churn.yaml"
    ).read_text()


def test_split_is_stratified_and_roles_are_written_down(built_project):
    train = pd.read_parquet(built_project.products / "data" / "train.parquet")
    test = pd.read_parquet(built_project.products / "data" / "test.parquet")
    assert len(train) + len(test) == 1500
    assert abs(train["churned"].mean() - test["churned"].mean()) < 0.02
    plan = json.loads((built_project.products / "data" / "features.json").read_text())
    roles = {r["column"]: r["role"] for r in plan["roles"]}
    assert roles["customer_id"] == "drop"
    assert roles["signup_date"] == "datetime"
    assert roles["plan"] == "categorical"
    assert roles["auto_renew"] == "boolean"
    assert roles["monthly_charges"] == "numeric"
    assert plan["target"]["positive_class"] is True


def test_evaluate_picks_a_model_that_beats_the_baseline(built_project):
    metrics = json.loads((built_project.products / "metrics.json").read_text())
    assert set(metrics["candidates"]) == {"linear", "hgb"}
    assert metrics["primary_metric"] == "roc_auc"
    best = metrics["best"]
    assert metrics["metrics"] == metrics["candidates"][best]
    assert metrics["metrics"]["roc_auc"] == max(
        m["roc_auc"] for m in metrics["candidates"].values()
    )
    assert metrics["metrics"]["roc_auc"] > metrics["baseline"]["roc_auc"] + 0.1
    for name in ("roc_auc", "pr_auc", "f1", "log_loss", "accuracy"):
        assert name in metrics["metrics"]
    assert metrics["slice_column"] == "plan" and {s["plan"] for s in metrics["slices"]} == {
        "basic",
        "standard",
        "premium",
        "enterprise",
    }
    assert metrics["importance"] and metrics["importance"][0]["importance"] > 0


def test_the_selected_model_predicts_on_new_rows(built_project):
    card = json.loads((built_project.products / "model" / "model.json").read_text())
    model = joblib.load(built_project.products / "model" / "model.joblib")
    test = pd.read_parquet(built_project.products / "data" / "test.parquet")
    proba = model.predict_proba(test.drop(columns=["churned"]).head(5))
    assert proba.shape == (5, 2)
    assert card["model"] in ("linear", "hgb") and card["file"]["sha256"].startswith("sha256:")


def test_evaluate_report_shows_labelled_plots(built_project):
    notebook = nbformat.read(built_project.products / "evaluate.ipynb", as_version=4)
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 5, "ROC, PR, calibration, confusion matrix and importance plots"


def test_a_second_build_runs_no_task(built_project):
    result = built_project.build()
    ran = [
        line.split()[:2]
        for line in result.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in TASKS
    ]
    assert len(ran) == 7 and all(flag == "False" for _, flag in ran), result.stdout


def test_nbval_reexecutes_the_captured_notebooks_and_reproduces_their_outputs(built_project):
    # Strict comparison (not --nbval-lax): every output must match, except the volatile
    # text the sanitize file names (memory addresses, fit durations). The gate is left
    # out: its result depends on the registry, which the build itself changed (the
    # model it compared is now the champion it would compare against). So are the
    # monitoring notebooks other tests may have run here: they read a window of time.
    notebooks = sorted(
        str(p)
        for p in built_project.products.rglob("*.ipynb")
        if p.name != "gate.ipynb" and "monitor" not in p.relative_to(built_project.products).parts
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "nbval.plugin",  # the one plugin it needs (autoload off below)
            "--nbval",
            "--nbval-sanitize-with",
            str(ROOT / "tests" / "nbval_sanitize.cfg"),
            "-p",
            "no:cacheprovider",
            "-q",
            *notebooks,
        ],
        cwd=built_project.root,
        capture_output=True,
        text=True,
        timeout=600,
        # Not every installed plugin (hypothesis, schemathesis, playwright, ...): loading
        # them is about 3 CPU-s of a pytest start.
        env={
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        },
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_changing_the_schema_file_reruns_validation_and_downstream_only(copy_built):
    project = copy_built()  # built: every product up to date
    schema = project.root / "schema" / "churn.yaml"
    schema.write_text(schema.read_text() + "\n# reviewed again\n")
    result = project.build()
    ran = dict(
        line.split()[:2]
        for line in result.stdout.splitlines()
        if line.split()[:1]
        and line.split()[0] in {"ingest", "validate", "split", "evaluate", "gate"}
    )
    assert ran == {
        "ingest": "False",
        "validate": "True",
        "split": "True",
        "evaluate": "True",
        "gate": "True",
    }


def test_switching_the_models_list_back_reruns_the_choice_of_model(copy_built):
    # Built with both candidates; one alone; then both again, whose products are all
    # still there and up to date. The choice among candidates must follow the list.
    project = copy_built()
    project.build("--env--train--models", "['hgb']")
    assert set(json.loads((project.products / "metrics.json").read_text())["candidates"]) == {"hgb"}

    result = project.build()

    ran = dict(line.split()[:2] for line in result.stdout.splitlines() if line.split()[:1])
    assert ran["evaluate"] == "True" and ran["gate"] == "True", result.stdout
    metrics = json.loads((project.products / "metrics.json").read_text())
    assert set(metrics["candidates"]) == {"linear", "hgb"}
