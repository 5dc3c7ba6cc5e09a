"""Monitoring end to end: a prediction log of real model outputs, `nbops monitor` running
the monitoring pipeline as a recorded build, its exit codes, and `--retrain`."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from mlflow.tracking import MlflowClient

from nbops.data.datasets import make_churn
from tests.conftest import BIN, alarms, build_env, copy_built_with_store, run_cli
from tests.dask_cluster import start_cluster
from tests.pipeline.notebook_code import run_notebooks

pytestmark = pytest.mark.pipeline

#: What a monitoring run decides, as files (`nbops monitor` prints them).
REPORT_FILES = ("decision.json", "drift.json", "metrics.json", "performance.json")


def write_traffic(project, url, *, drift, rows=1_200, seed=5, per_request=25):
    """Log what `nbops serve` would log for generated traffic: the champion's real
    answers (the same code path as the service) and, for half the requests, labels."""
    from nbops.serving.log import PredictionLog
    from nbops.serving.model import load_served_model
    from nbops.serving.validation import validate

    model = load_served_model(project.root, "churn", "champion")
    frame = make_churn(rows, seed=seed, drift=drift)
    truth = frame.pop("churned").tolist()
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    log = PredictionLog(url)
    answered = []
    for start in range(0, rows, per_request):
        body = {"records": records[start : start + per_request]}
        batch, errors = validate(body, model.features, max_rows=1_000, ignore=model.ignored)
        assert not errors, errors
        request_id = uuid.uuid4().hex
        log.record(
            request_id=request_id,
            model_name=model.name,
            model_version=model.version,
            route="champion",
            latency_ms=1.0,
            inputs=body,
            outputs=model.predict(batch),
            n_rows=batch.n_rows,
        )
        answered.append((request_id, truth[start : start + per_request]))
    log.close()
    log = PredictionLog(url)
    for request_id, labels in answered[::2]:
        log.feedback(request_id, labels)
    log.close()


def monitor(project, *args, log_url):
    return subprocess.run(
        [str(BIN / "nbops"), "monitor", *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=build_env(NBOPS_PREDICTION_LOG=log_url),
    )


def monitoring_runs(project):
    client = MlflowClient(f"sqlite:///{project.root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"{project.root.name}-monitoring")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # builds, not tasks


def test_steady_traffic_gives_a_clean_recorded_report(built_project, tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    write_traffic(built_project, url, drift=0.0)

    result = monitor(built_project, "--window", "1h", log_url=url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All clear" in result.stdout and "1,200 rows from 48 requests" in result.stdout
    assert alarms(result.stdout, result.stderr) == []
    reports = built_project.products / "monitor"
    assert {p.name for p in reports.glob("*.html")} == {
        "window.html",
        "drift.html",
        "performance.html",
        "alert.html",
        "index.html",  # the monitoring build's summary page
    }
    performance = json.loads((reports / "performance.json").read_text())
    assert performance["live"]["rows"] == 600 and 0.5 < performance["live"]["roc_auc"] <= 1
    run = monitoring_runs(built_project)[0]  # the latest
    assert run.data.metrics["breached"] == 0 and run.data.metrics["rows"] == 1_200
    assert run.data.tags["nbops.status"] == "FINISHED"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, built_project):
    """A real dask.distributed scheduler and two workers on loopback."""
    with start_cluster(tmp_path_factory.mktemp("dask"), cwd=built_project.root) as address:
        yield address


def test_a_batch_file_with_outcomes_gives_the_same_report_here_and_on_a_dask_cluster(
    built_project, tmp_path, cluster, monkeypatch
):
    """The batch is scored by the model and counted a part at a time, on this machine
    and on the cluster's two workers: the same figures, report and exit code.

    Here, the monitoring notebooks' code runs in this process (the same batch_window
    call, without a scheduler); there, `nbops monitor --scheduler` runs them as a
    build. What the command prints is made from decision.json and drift.json alone,
    so the same files are the same report (and exit code: 1 when breached)."""
    from distributed import Client

    batch = tmp_path / "drifted.parquet"
    make_churn(900, seed=12, drift=1.5).to_parquet(batch, row_group_size=100)
    args = ["--data", str(batch), "--chunk-rows", "200"]  # 5 parts of 2 row groups (1 last)
    products = built_project.products / "monitor"
    no_log = "sqlite:////nonexistent/log.db"

    def report() -> dict:
        found = {n: json.loads((products / n).read_text()) for n in REPORT_FILES}
        del found["decision.json"]["window"]["end"]  # when it ran
        return found

    monkeypatch.chdir(built_project.root)
    monkeypatch.setenv("NBOPS_PREDICTION_LOG", no_log)
    run_notebooks(
        built_project.root, "pipeline.monitor.yaml", monitor={"data": str(batch), "chunk_rows": 200}
    )
    local = report()
    there = monitor(built_project, *args, "--scheduler", cluster, log_url=no_log)
    remote = report()

    assert local["decision.json"]["breached"]  # the drifted batch raises the alarm
    assert there.returncode == 1, there.stdout + there.stderr
    assert "900 rows" in there.stdout and "900 labelled" in there.stdout
    assert remote == local and remote["drift.json"]["drifted"]
    with Client(cluster, set_as_default=False) as client:  # the parts ran on the workers
        cached = client.run(lambda: [key[0] for key in __import__("nbops.cluster").cluster._CACHE])
    assert any("monitor" in keys for keys in cached.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "7 fortnights"], "Window '7 fortnights' is not understood"),
        (["--since", "last tuesday"], "is not an ISO date"),
    ],
)
def test_a_bad_window_is_named_before_anything_runs(built_project, args, message):
    # In this process (the exit code is click's, as the console script's): no build runs.
    result = run_cli(
        built_project.root,
        "monitor",
        *args,
        check=False,
        env={"NBOPS_PREDICTION_LOG": "sqlite:////nonexistent/log.db"},
    )
    assert result.returncode == 2 and message in result.stderr  # 1 would read as a breach


def test_no_log_yet_is_a_clear_failure_not_an_alarm(built_project, tmp_path):
    result = run_cli(
        built_project.root,
        "monitor",
        check=False,
        env={"NBOPS_PREDICTION_LOG": f"sqlite:///{tmp_path / 'never-served.db'}"},
    )
    assert result.returncode == 2
    assert "nothing has been served with this log yet" in result.stdout + result.stderr


def test_drifted_traffic_raises_the_alarm_and_retrains_through_the_gate(built_project, tmp_path):
    # A copy of the session's build (its store: one build, its champion v1): the
    # retraining build is the only whole-pipeline build here.
    project = copy_built_with_store(built_project, tmp_path / "retrain" / built_project.root.name)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    write_traffic(project, url, drift=0.5, rows=2_000)

    result = monitor(project, "--window", "1h", "--retrain", log_url=url)

    assert result.returncode == 1, result.stdout + result.stderr
    flagged = {
        line.split()[0] for line in result.stdout.splitlines() if line.rstrip().endswith("drift")
    }
    assert {"monthly_charges", "support_calls", "satisfaction_score", "prediction"} <= flagged
    assert not flagged & {"tenure_months", "region", "devices"}
    assert "ALERT:" in result.stdout and "Gate:" in result.stdout
    decision = json.loads((project.products / "monitor" / "decision.json").read_text())
    assert decision["breached"] and "support_calls" in decision["drifted_columns"]
    client = MlflowClient(f"sqlite:///{project.root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project.root.name)
    triggers = [
        r.data.tags.get("nbops.trigger")
        for r in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags  # builds, not their tasks
    ]
    assert sorted(triggers) == ["drift", "manual"], "the retraining build is tagged trigger=drift"
    assert (project.products / "release" / "decision.json").is_file(), "the gate judged it"
