"""The paper trail end to end: real `ploomber build`s recorded by the hooks declared in
pipeline.yaml into a real MLflow store (embedded SQLite, and a real `mlflow server`)."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import BIN, alarms, free_port

pytestmark = pytest.mark.pipeline

SECRET = "hunter2-warehouse-secret"


def git(project, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=project.root,
        check=True,
        capture_output=True,
        text=True,
    )


def add_secret_parameter(project):
    """A task parameter whose name looks secret, fed from env.yaml, used by the notebook."""
    project.set_env(credentials={"warehouse_password": SECRET})
    spec = project.root / "pipeline.yaml"
    spec.write_text(
        spec.read_text().replace(
            "      drift: '{{data.drift}}'\n",
            "      drift: '{{data.drift}}'\n      warehouse_password: '{{credentials.warehouse_password}}'\n",
            1,
        )
    )
    path = project.root / "notebooks" / "ingest.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\nwarehouse_password = None  # from env.yaml credentials; never printed"
    used = "connected = warehouse_password is not None  # as a notebook would, never printed"
    nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_code_cell(used))
    nbformat.write(nb, path)


def builds(project):
    client = MlflowClient(f"sqlite:///{project.root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project.root.name)
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000
    )
    parents = [r for r in runs if r.data.tags.get("nbops.kind") == "build"]
    children = {
        p.info.run_id: {
            r.data.tags["nbops.task"]: r
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == p.info.run_id
        }
        for p in parents
    }
    return client, parents, children


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """One project in a git repository, built three times: fresh, unchanged, and with one
    parameter changed in env.yaml (left uncommitted)."""
    from tests.conftest import _copy_project

    project = _copy_project(tmp_path_factory.mktemp("tracked") / "churn")
    add_secret_parameter(project)
    (project.root / ".gitignore").write_text("products/\n.nbops/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "initial")
    outputs = [project.build().stderr]
    with pytest.MonkeyPatch.context() as mp:
        # A build with nothing to do is recorded only when asked (nbops export asks).
        mp.setenv("NBOPS_RECORD_UP_TO_DATE", "1")
        outputs.append(project.build().stderr)
    env = project.root / "env.yaml"
    env.write_text(env.read_text().replace("rows: 1500", "rows: 1200"))
    outputs.append(project.build().stderr)
    return project, outputs


def test_each_build_says_where_it_was_recorded(history):
    _, outputs = history
    assert all(
        re.search(r"nbops: recorded build as run [0-9a-f]{32} in \.nbops/mlflow\.db", out)
        for out in outputs
    ), outputs


def test_builds_that_go_well_print_nothing_alarming(history):
    # A fresh build, one with nothing to do, one rerunning every task: no ERROR from a
    # kernel's shutdown, no library's warning, no "unused" setting of env.yaml.
    _, outputs = history
    assert alarms(*outputs) == []


def test_a_build_is_a_parent_run_with_a_child_per_task(history):
    project, _ = history
    client, parents, children = builds(project)
    assert len(parents) == 3
    first = parents[0]
    tags = first.data.tags
    assert tags["nbops.status"] == "FINISHED" and first.info.status == "FINISHED"
    assert tags["nbops.trigger"] == "manual"
    assert (
        re.fullmatch(r"[0-9a-f]{40}", tags["git.commit"])
        and tags["git.dirty"] == "false"
        and tags["git.branch"]
    )
    assert tags["data.content_hash"].startswith("sha256:")
    assert {
        "source.pipeline.yaml",
        "source.env.yaml",
        "source.notebooks/ingest.ipynb",
        "source.schema/churn.yaml",
    } <= set(first.data.params)
    assert first.data.params["env.data.rows"] == "1500"
    assert first.data.metrics["roc_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(first.info.run_id)} | {
        a.path for a in client.list_artifacts(first.info.run_id, "environment")
    }
    assert {
        "record.json",
        "environment/requirements.txt",
        "environment/python.json",
        "summary.html",  # products/index.html, the build summary page
    } <= artifacts
    tasks = children[first.info.run_id]
    assert set(tasks) == {
        "ingest",
        "validate",
        "split",
        "train-linear",
        "train-hgb",
        "evaluate",
        "gate",
    }
    for name, run in tasks.items():
        assert run.data.tags["nbops.status"] == "executed", name
        assert run.data.metrics["duration_s"] > 0
        reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
        assert any(p.endswith(".ipynb") for p in reports) and any(
            p.endswith(".html") for p in reports
        ), name
    assert tasks["evaluate"].data.metrics["metrics.roc_auc"] == first.data.metrics["roc_auc"]
    assert tasks["train-hgb"].data.params["model"] == "hgb"


def test_requirements_artifact_is_the_full_freeze(history):
    project, _ = history
    client, parents, _ = builds(project)
    path = client.download_artifacts(
        parents[0].info.run_id, "environment/requirements.txt", str(project.root / "dl")
    )
    freeze = Path(path).read_text()
    import pandas

    assert (
        f"pandas=={pandas.__version__}" in freeze
        and "mlflow==" in freeze
        and "ploomber==" in freeze
    )


def test_skipped_tasks_point_at_the_run_that_produced_their_products(history):
    project, _ = history
    _, parents, children = builds(project)
    first, second = parents[0], parents[1]
    assert second.data.tags["nbops.status"] == "FINISHED"
    for name, run in children[second.info.run_id].items():
        assert run.data.tags["nbops.status"] == "skipped", name
        assert (
            run.data.tags["nbops.produced_by_run"] == children[first.info.run_id][name].info.run_id
        )
        assert run.data.tags["nbops.produced_by_build"] == first.data.tags["nbops.build_id"]
    assert second.data.metrics["roc_auc"] == first.data.metrics["roc_auc"], (
        "the model in use is still the first build's"
    )


def test_data_snapshots_are_stored_once(history):
    project, _ = history
    client, parents, _ = builds(project)
    data_runs = client.search_runs([client.get_experiment_by_name("nbops-data").experiment_id])
    assert len(data_runs) == 2, (
        "1500 rows and 1200 rows: two distinct snapshots, the first used by two builds"
    )
    assert (
        parents[0].data.tags["data.run_id"]
        == parents[1].data.tags["data.run_id"]
        != parents[2].data.tags["data.run_id"]
    )
    snapshot = {
        a.path for a in client.list_artifacts(parents[0].data.tags["data.run_id"], "snapshot")
    }
    assert snapshot == {"snapshot/snapshot.parquet", "snapshot/snapshot.json"}


def test_a_dirty_tree_is_recorded_with_its_diff(history):
    project, _ = history
    client, parents, _ = builds(project)
    third = parents[2]
    assert third.data.tags["git.dirty"] == "true"
    diff = Path(
        client.download_artifacts(third.info.run_id, "git/diff.patch", str(project.root / "dl3"))
    ).read_text()
    assert "-  rows: 1500" in diff.replace("'", "") or "rows: 1200" in diff


def test_runs_diff_tells_two_builds_apart(history):
    project, _ = history
    result = project.cli("runs", "diff", "latest~1", "latest")
    out = result.stdout
    assert "data.rows: 1500 → 1200" in out
    assert re.search(r"commit: [0-9a-f]{7} → [0-9a-f]{7}\*", out), out
    assert re.search(r"data: sha256:\w+ → sha256:\w+", out)
    assert "roc_auc:" in out.split("Metrics:")[1]
    assert re.search(r"ingest: \d+ cell\(s\) changed", out), out


def test_runs_list_and_show(history):
    project, _ = history
    listing = project.cli("runs", "list").stdout
    assert len(re.findall(r"^[0-9a-f]{12}  ", listing, re.M)) == 3
    assert "roc_auc" in listing.splitlines()[0] and "manual" in listing and "FINISHED" in listing
    shown = project.cli("runs", "show", "latest~1").stdout
    assert "up to date: products from run" in shown and "data.rows = 1500" in shown


def test_secrets_never_reach_the_store(history):
    project, _ = history
    client, parents, children = builds(project)
    assert parents[0].data.params["env.credentials"] == "***REDACTED***", (
        "a secret-named section is hidden whole"
    )
    assert not [k for r in parents for k, v in r.data.params.items() if SECRET in v]
    assert (
        children[parents[0].info.run_id]["ingest"].data.params["warehouse_password"]
        == "***REDACTED***"
    )
    store = project.root / ".nbops"
    leaked = [p for p in store.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked, f"the secret is in {leaked}"


def test_report_site_opens_offline(history, tmp_path):
    project, _ = history
    project.cli("report", "--out", str(tmp_path / "site"))
    pages = list((tmp_path / "site").rglob("*.html"))
    index = tmp_path / "site" / "index.html"
    assert index in pages and len(list((tmp_path / "site" / "runs").iterdir())) == 3
    for page in pages:
        if page.parent.name == "runs" or page.name == "index.html":
            for href in _links(page.read_text()):
                assert (page.parent / href).resolve().is_file(), f"{page}: broken link {href}"
    run_pages = [p for p in pages if p.name == "index.html" and p != index]
    assert all(len(list(p.parent.glob("*.html"))) == 8 for p in run_pages), (
        "every task's report, skipped ones too"
    )


class _Hrefs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        self.hrefs += [v for k, v in attrs if k == "href" and v and not v.startswith(("#", "http"))]


def _links(text):
    parser = _Hrefs()
    parser.feed(text)
    return parser.hrefs


def test_a_failed_build_keeps_its_partial_notebook_report_and_error(make_project):
    project = make_project()
    result = project.build("--env--data--source", "missing.csv", check=False)
    assert result.returncode != 0
    client, parents, children = builds(project)
    (parent,) = parents
    assert parent.info.status == "FAILED" and parent.data.tags["nbops.status"] == "FAILED"
    tasks = children[parent.info.run_id]
    ingest = tasks["ingest"]
    assert (
        ingest.info.status == "FAILED"
        and "missing.csv' does not exist" in ingest.data.tags["nbops.error"]
    )
    assert {a.path for a in client.list_artifacts(ingest.info.run_id, "reports")} == {
        "reports/ingest.ipynb",
        "reports/ingest.html",
    }
    assert "error.txt" in {a.path for a in client.list_artifacts(ingest.info.run_id)}
    html = Path(
        client.download_artifacts(
            ingest.info.run_id, "reports/ingest.html", str(project.root / "dl")
        )
    ).read_text()
    assert "DataSourceError" in html, "the HTML report shows the error cell"
    assert {t.data.tags["nbops.status"] for n, t in tasks.items() if n != "ingest"} == {"not-run"}
    summary = (project.products / "index.html").read_text()
    assert "failed: task ingest failed" in summary and "missing.csv" in summary
    assert '<a href="ingest.html">its report</a>' in summary
    assert "data.content_hash" not in parent.data.tags or not parent.data.tags["data.content_hash"]


def test_unreachable_server_spools_and_sync_publishes_to_a_real_server(
    make_project, make_server, monkeypatch
):
    project = make_project()
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")

    offline = project.build()

    assert "nothing is lost: run `nbops sync`" in offline.stderr
    spooled = list((project.root / ".nbops" / "spool").iterdir())
    assert len(spooled) == 1 and (spooled[0] / "record.json").is_file()
    not_yet = project.nbops("sync", check=False)  # the console script: what a job sees
    assert (
        not_yet.returncode == 1
        and "unreachable" in not_yet.stderr
        and "Traceback" not in not_yet.stderr
    )

    server = make_server(port)
    synced = project.cli("sync")
    assert "Published build" in synced.stdout
    assert not list((project.root / ".nbops" / "spool").iterdir())

    # The next build goes straight to the server; its skipped tasks point at the synced runs.
    monkeypatch.setenv("NBOPS_RECORD_UP_TO_DATE", "1")  # it has nothing to do: record it
    online = project.build()
    assert f"in {server.uri}" in online.stderr
    listing = project.cli("runs", "list").stdout
    assert len(re.findall(r"^[0-9a-f]{12}  ", listing, re.M)) == 2
    client = MlflowClient(server.uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(project.root.name).experiment_id], max_results=100
    )
    by_id = {r.info.run_id: r for r in runs}
    skipped = [r for r in runs if r.data.tags.get("nbops.status") == "skipped"]
    assert len(skipped) == 7 and all(r.data.tags["nbops.produced_by_run"] in by_id for r in skipped)
    executed = [r for r in runs if r.data.tags.get("nbops.status") == "executed"]
    reports = {a.path for a in client.list_artifacts(executed[0].info.run_id, "reports")}
    assert len(reports) == 2, "artifacts were uploaded through the server"


def test_ploomber_task_alone_is_recorded_too(make_project):
    # `ploomber task NAME` runs no DAG-level hooks: the record is published at exit.
    project = make_project()
    result = subprocess.run(
        [str(BIN / "ploomber"), "task", "ingest"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nbops: recorded build as run" in result.stderr
    _, parents, children = builds(project)
    (parent,) = parents
    assert parent.data.tags["nbops.status"] == "FINISHED" and parent.data.tags[
        "data.content_hash"
    ].startswith("sha256:")
    assert {
        name: run.data.tags["nbops.status"] for name, run in children[parent.info.run_id].items()
    } == {"ingest": "executed"}
    assert "ploomber task ingest" in parent.data.tags["nbops.command"]
