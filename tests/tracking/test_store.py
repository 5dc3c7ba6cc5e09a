"""The tracking store against a real embedded MLflow store (SQLite in the project's .nbops/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from mlflow.entities import ViewType

from nbops.errors import TrackingError
from nbops.tracking.record import EXECUTED, SKIPPED, BuildRecord, TaskRecord
from nbops.tracking.store import (
    DATA_EXPERIMENT,
    Store,
    experiment_name,
    reachability_problem,
    tracking_uri,
)
from tests.tracking.conftest import free_port

T0 = 1_700_000_000.0
COMMIT = "3f2a9c1d5e7b9a0c1d2e3f405162738495a6b7c8"
DIFF = "--- a/env.yaml\n+++ b/env.yaml\n@@ -1 +1 @@\n-rows: 1000\n+rows: 1500\n"
LONG_NOTE = "x" * 10_000


def write_snapshot(folder: Path, content_hash: str, rows: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    data, meta = folder / "snapshot.parquet", folder / "snapshot.json"
    pd.DataFrame({"tenure": range(rows), "churn": [i % 2 for i in range(rows)]}).to_parquet(data)
    meta.write_text(json.dumps({"content_hash": content_hash, "rows": rows, "columns": 2}))
    return {
        "content_hash": content_hash,
        "data": str(data),
        "meta": str(meta),
        "rows": rows,
        "columns": 2,
        "task": "ingest",
    }


def make_record(
    root: Path,
    build_id: str,
    started_at: float,
    *,
    tasks: list[TaskRecord] | None = None,
    data: dict[str, Any] | None = None,
    dirty: bool = False,
    env: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> BuildRecord:
    return BuildRecord(
        build_id=build_id,
        project=root.name,
        root=str(root),
        command=["ploomber", "build", "--force"],
        trigger="manual",
        started_at=started_at,
        ended_at=started_at + 30,
        status="FINISHED",
        git={
            "commit": COMMIT,
            "branch": "main",
            "dirty": dirty,
            "diff": DIFF if dirty else None,
            "untracked": ["notebooks/scratch.py"] if dirty else [],
        },
        sources={"pipeline.yaml": "sha256:" + "a" * 64, "notebooks/evaluate.ipynb": "sha256:bb"},
        env=env or {"data": {"rows": 1500}},
        python={"python": "3.11.7", "implementation": "CPython"},
        packages=["mlflow==3.17.0", "pandas==2.2.2"],
        data=data or {},
        metrics=metrics or {},
        tasks=tasks or [],
    )


@dataclass
class Published:
    root: Path
    store: Store
    notebook: Path
    report: Path
    first: dict[str, Any]
    second: dict[str, Any]
    second_earlier: dict[str, Any]
    third: dict[str, Any]


@pytest.fixture(scope="module")
def published(module_env: None, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Three builds of a project ``churn-project``, published to its embedded store.

    first  (T0)      ingest + evaluate executed, data hash h1, clean checkout
    second (T0+60)   evaluate executed, ingest skipped (products from first), data h1,
                     uncommitted changes; published twice, like a retried ``nbops sync``
                     (the retry returns the complete first copy)
    third  (T0+120)  evaluate executed, new data hash h2
    """
    root = tmp_path_factory.mktemp("store") / "churn-project"
    products = root / "products"
    products.mkdir(parents=True)
    notebook, report = products / "evaluate.ipynb", products / "evaluate.html"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}))
    report.write_text("<html><body>evaluate report</body></html>")
    (products / "index.html").write_text("<html><body>build summary</body></html>")
    h1 = write_snapshot(products / "data1", "sha256:" + "1" * 64, rows=20)
    h2 = write_snapshot(products / "data2", "sha256:" + "2" * 64, rows=30)

    def evaluate() -> TaskRecord:
        return TaskRecord(
            name="evaluate",
            status=EXECUTED,
            params={"primary_metric": "roc_auc", "seed": 7},
            duration_s=2.5,
            metrics={
                "roc_auc": 0.83,
                "by_slice": {"a": 0.8, "b": 0.7},
                "calibration": float("nan"),
                "passed": True,
            },
            files={"reports/x.ipynb": str(notebook), "reports/x.html": str(report)},
            products={"nb": str(notebook), "html": str(report)},
        )

    store = Store(root)
    first = store.publish(
        make_record(
            root,
            "build-first",
            T0,
            tasks=[TaskRecord(name="ingest", status=EXECUTED, duration_s=1.0), evaluate()],
            data=h1,
        )
    )
    second_record = make_record(
        root,
        "build-second",
        T0 + 60,
        tasks=[
            evaluate(),
            TaskRecord(name="ingest", status=SKIPPED, produced_by={"build_id": "build-first"}),
        ],
        data=h1,
        dirty=True,
        env={
            "data": {"rows": 1500, "source": "bundled"},
            "train": {"models": ["linear", "hgb"]},
            "notes": LONG_NOTE,
        },
        metrics={
            "roc_auc": 0.83,
            "by_slice": {"a": 0.8, "b": 0.7},
            "calibration": float("nan"),
            "passed": True,
        },
    )
    second_record.files = {"summary.html": str(products / "index.html")}
    second_earlier = store.publish(second_record)
    second = store.publish(second_record)
    third = store.publish(make_record(root, "build-third", T0 + 120, tasks=[evaluate()], data=h2))
    return Published(root, store, notebook, report, first, second, second_earlier, third)


def artifact_paths(store: Store, run_id: str, path: str | None = None) -> set[str]:
    return {entry.path for entry in store.client.list_artifacts(run_id, path)}


def read_artifact(store: Store, run_id: str, path: str, tmp_path: Path) -> str:
    return store.download(run_id, path, tmp_path).read_text()


# -- the parent run ---------------------------------------------------------------------


def test_a_build_is_one_parent_run(published: Published) -> None:
    run = published.store.client.get_run(published.second["run_id"])
    tags = run.data.tags

    assert tags["nbops.kind"] == "build"
    assert tags["nbops.build_id"] == "build-second"
    assert tags["nbops.project"] == "churn-project"
    assert tags["nbops.trigger"] == "manual"
    assert tags["nbops.status"] == "FINISHED"
    assert tags["nbops.command"] == "ploomber build --force"
    assert tags["nbops.tasks"] == "evaluate:executed,ingest:skipped"
    assert tags["git.commit"] == COMMIT
    assert tags["git.branch"] == "main"
    assert tags["git.dirty"] == "true"
    assert tags["python.version"] == "3.11.7"
    assert run.info.status == "FINISHED"
    assert run.info.start_time == int((T0 + 60) * 1000)
    assert run.info.end_time == int((T0 + 90) * 1000)


def test_parent_params_are_the_flattened_env_and_source_hashes(published: Published) -> None:
    params = published.store.client.get_run(published.second["run_id"]).data.params

    assert params["env.data.rows"] == "1500"
    assert params["env.data.source"] == "bundled"
    assert params["env.train.models"] == '["linear", "hgb"]'
    assert len(params["env.notes"]) <= 6000
    assert params["env.notes"].startswith("xxxx")
    assert params["env.notes"].endswith("...")
    assert params["source.pipeline.yaml"] == "sha256:" + "a" * 64
    assert params["source.notebooks/evaluate.ipynb"] == "sha256:bb"


def test_parent_metrics_are_numbers_only(published: Published) -> None:
    metrics = published.store.client.get_run(published.second["run_id"]).data.metrics

    # NaN and booleans are dropped; nested dicts become dotted names.
    assert metrics == {"roc_auc": 0.83, "by_slice.a": 0.8, "by_slice.b": 0.7}


def test_parent_artifacts(published: Published, tmp_path: Path) -> None:
    store, run_id = published.store, published.second["run_id"]

    assert artifact_paths(store, run_id) == {"record.json", "environment", "git", "summary.html"}
    assert read_artifact(store, run_id, "summary.html", tmp_path / "summary") == (
        "<html><body>build summary</body></html>"
    )
    assert artifact_paths(store, run_id, "environment") == {
        "environment/requirements.txt",
        "environment/python.json",
    }
    assert read_artifact(store, run_id, "environment/requirements.txt", tmp_path) == (
        "mlflow==3.17.0\npandas==2.2.2\n"
    )
    assert read_artifact(store, run_id, "git/diff.patch", tmp_path / "git") == DIFF
    assert "notebooks/scratch.py" in read_artifact(
        store, run_id, "git/untracked.txt", tmp_path / "untracked"
    )
    record = json.loads(read_artifact(store, run_id, "record.json", tmp_path / "record"))
    assert record["build_id"] == "build-second"
    assert [t["name"] for t in record["tasks"]] == ["evaluate", "ingest"]
    # The diff is its own artifact; the package list is requirements.txt.
    assert "diff" not in record["git"]
    assert "packages" not in record


def test_clean_build_has_no_git_artifacts(published: Published) -> None:
    run_id = published.first["run_id"]

    assert published.store.client.get_run(run_id).data.tags["git.dirty"] == "false"
    assert "git" not in artifact_paths(published.store, run_id)


# -- one child run per task --------------------------------------------------------------


def test_one_child_run_per_task(published: Published) -> None:
    store, parent = published.store, published.second["run_id"]

    children = store.children(parent)

    assert [c.data.tags["nbops.task"] for c in children] == ["evaluate", "ingest"]
    assert {c.info.run_id for c in children} == set(published.second["tasks"].values())
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent
        assert child.data.tags["nbops.kind"] == "task"
        assert child.data.tags["nbops.build_id"] == "build-second"
        assert child.info.status == "FINISHED"
    assert [c.data.tags["nbops.status"] for c in children] == ["executed", "skipped"]


def test_executed_child_has_reports_params_and_metrics(
    published: Published, tmp_path: Path
) -> None:
    store = published.store
    child = store.client.get_run(published.second["tasks"]["evaluate"])

    assert artifact_paths(store, child.info.run_id, "reports") == {
        "reports/x.ipynb",
        "reports/x.html",
    }
    html = read_artifact(store, child.info.run_id, "reports/x.html", tmp_path)
    assert html == published.report.read_text()
    assert child.data.params["primary_metric"] == "roc_auc"
    assert child.data.params["seed"] == "7"
    assert child.data.params["product.nb"] == str(published.notebook)
    assert child.data.metrics == {
        "roc_auc": 0.83,
        "by_slice.a": 0.8,
        "by_slice.b": 0.7,
        "duration_s": 2.5,
    }


def test_skipped_child_points_at_the_run_that_produced_its_products(
    published: Published,
) -> None:
    child = published.store.client.get_run(published.second["tasks"]["ingest"])

    assert child.data.tags["nbops.produced_by_build"] == "build-first"
    assert child.data.tags["nbops.produced_by_run"] == published.first["tasks"]["ingest"]


# -- data snapshots ---------------------------------------------------------------------


def test_data_snapshot_is_stored_once_per_content_hash(published: Published) -> None:
    store = published.store
    tags = {
        name: store.client.get_run(published_run["run_id"]).data.tags
        for name, published_run in [
            ("first", published.first),
            ("second", published.second),
            ("third", published.third),
        ]
    }
    data_experiment = store.client.get_experiment_by_name(DATA_EXPERIMENT)
    snapshots = store.client.search_runs([data_experiment.experiment_id])

    assert len(snapshots) == 2
    assert tags["first"]["data.run_id"] == tags["second"]["data.run_id"]
    assert tags["third"]["data.run_id"] != tags["first"]["data.run_id"]
    assert {s.info.run_id for s in snapshots} == {
        tags["first"]["data.run_id"],
        tags["third"]["data.run_id"],
    }
    assert tags["first"]["data.content_hash"] == "sha256:" + "1" * 64


def test_data_snapshot_run_holds_the_files(published: Published, tmp_path: Path) -> None:
    store = published.store
    run_id = store.client.get_run(published.first["run_id"]).data.tags["data.run_id"]
    snapshot = store.client.get_run(run_id)

    assert snapshot.data.tags["nbops.kind"] == "snapshot"
    assert snapshot.data.tags["nbops.content_hash"] == "sha256:" + "1" * 64
    assert snapshot.data.tags["nbops.first_build"] == "build-first"
    assert snapshot.data.metrics == {"rows": 20, "columns": 2}
    assert artifact_paths(store, run_id, "snapshot") == {
        "snapshot/snapshot.parquet",
        "snapshot/snapshot.json",
    }
    frame = pd.read_parquet(store.download(run_id, "snapshot/snapshot.parquet", tmp_path))
    assert len(frame) == 20


# -- republishing, location, queries ----------------------------------------------------


def test_publishing_a_build_twice_keeps_one_copy(published: Published) -> None:
    store = published.store
    experiment = store.experiment_id("churn-project")
    query = "tags.`nbops.build_id` = 'build-second'"

    every = store.client.search_runs([experiment], query, run_view_type=ViewType.ALL)

    # Published completely the first time: the retry returns that copy and writes nothing.
    assert published.second == published.second_earlier
    assert len(every) == 1 + 2  # the build and its two tasks, no deleted copies
    assert [b.data.tags["nbops.build_id"] for b in store.builds()].count("build-second") == 1
    assert (
        store.client.get_run(published.second["run_id"]).data.tags["nbops.published"] == "complete"
    )


def test_republishing_a_half_published_build_replaces_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = make_record(tmp_path, "build-half", T0, tasks=[TaskRecord(name="a", status=EXECUTED)])
    first = store.publish(record)
    store.client.delete_tag(first["run_id"], "nbops.published")  # it stopped before the end

    again = store.publish(record)

    assert again["run_id"] != first["run_id"]
    assert [b.info.run_id for b in store.builds()] == [again["run_id"]]
    assert store.client.get_run(first["run_id"]).info.lifecycle_stage == "deleted"


def test_republishing_a_build_with_many_tasks_leaves_no_stale_runs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = make_record(
        tmp_path,
        "build-big",
        T0,
        tasks=[TaskRecord(name=f"train-{i:02d}", status=EXECUTED) for i in range(12)],
    )
    first = store.publish(record)
    store.client.delete_tag(first["run_id"], "nbops.published")  # it stopped before the end

    store.publish(record)

    runs = store.client.search_runs(
        [store.experiment_id(tmp_path.name)],
        filter_string="tags.`nbops.build_id` = 'build-big'",
        max_results=100,
    )
    assert len(runs) == 1 + 12


def test_embedded_store_lives_in_the_project(published: Published) -> None:
    store, nbops_dir = published.store, published.root / ".nbops"
    location = (nbops_dir / "artifacts").resolve()

    assert store.uri == f"sqlite:///{(nbops_dir / 'mlflow.db').resolve()}"
    assert (nbops_dir / "mlflow.db").is_file()
    for name in ("churn-project", DATA_EXPERIMENT):
        experiment = store.client.get_experiment_by_name(name)
        assert experiment.artifact_location == location.as_uri()
    artifact_dir = Path(
        unquote(urlparse(store.client.get_run(published.first["run_id"]).info.artifact_uri).path)
    )
    assert artifact_dir.is_relative_to(location)
    assert (artifact_dir / "record.json").is_file()


def test_builds_newest_first(published: Published) -> None:
    builds = published.store.builds()

    assert [b.data.tags["nbops.build_id"] for b in builds] == [
        "build-third",
        "build-second",
        "build-first",
    ]
    assert [b.data.tags["nbops.build_id"] for b in published.store.builds(limit=1)] == [
        "build-third"
    ]


def test_no_builds_in_a_new_store(tmp_path: Path) -> None:
    assert Store(tmp_path).builds() == []


# -- resolving a build from what a user types -------------------------------------------


@pytest.fixture(scope="module")
def many_builds(module_env: None, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """17 builds: more than 16, so at least two run ids share their first hex digit."""
    root = tmp_path_factory.mktemp("many") / "project"
    root.mkdir()
    store = Store(root)
    for i in range(17):
        store.publish(make_record(root, f"build-{i:02d}", T0 + 60 * i))
    return store


def build_ids(store: Store) -> list[str]:
    return [b.info.run_id for b in store.builds(limit=100)]


def test_resolve_full_id(many_builds: Store) -> None:
    run_id = build_ids(many_builds)[5]

    assert many_builds.resolve(run_id).info.run_id == run_id


def test_resolve_unique_prefix(many_builds: Store) -> None:
    ids = build_ids(many_builds)
    target = ids[3]
    prefix = next(
        target[:n]
        for n in range(1, len(target))
        if not any(other.startswith(target[:n]) for other in ids if other != target)
    )

    assert many_builds.resolve(prefix).info.run_id == target


@pytest.mark.parametrize(("ref", "index"), [("latest", 0), ("latest~1", 1), ("latest~16", 16)])
def test_resolve_latest(many_builds: Store, ref: str, index: int) -> None:
    resolved = many_builds.resolve(ref)

    assert resolved.info.run_id == build_ids(many_builds)[index]
    assert resolved.data.tags["nbops.build_id"] == f"build-{16 - index:02d}"


def test_resolve_unknown_id(many_builds: Store) -> None:
    with pytest.raises(
        TrackingError, match=r"No build run matches 'nope' in sqlite:///.*nbops runs list"
    ):
        many_builds.resolve("nope")


def test_resolve_ambiguous_prefix(many_builds: Store) -> None:
    firsts = [run_id[0] for run_id in build_ids(many_builds)]
    shared = next(c for c in firsts if firsts.count(c) > 1)

    with pytest.raises(
        TrackingError,
        match=rf"'{shared}' matches {firsts.count(shared)} builds; give more characters",
    ):
        many_builds.resolve(shared)


def test_resolve_latest_out_of_range(many_builds: Store) -> None:
    with pytest.raises(
        TrackingError, match=r"There is no build 'latest~17': the store holds 17 build\(s\)"
    ):
        many_builds.resolve("latest~17")


def test_resolve_malformed_latest(many_builds: Store) -> None:
    with pytest.raises(TrackingError, match="latest~one"):
        many_builds.resolve("latest~one")


# -- configuration ----------------------------------------------------------------------


def test_sqlite_store_is_always_reachable(tmp_path: Path) -> None:
    assert reachability_problem(tracking_uri(tmp_path)) is None


def test_closed_port_is_unreachable() -> None:
    uri = f"http://127.0.0.1:{free_port()}"

    problem = reachability_problem(uri)

    assert problem is not None
    assert problem.startswith(f"{uri} is unreachable")


@pytest.fixture
def guarded_server() -> Any:
    """A loopback HTTP server answering ``/health`` 200 to user ``ada`` with password
    ``p@ss:w0rd``, 401 to anyone else (a tracking server behind basic authentication);
    yields its port and the Authorization headers it received."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []
    expected = "Basic " + base64.b64encode(b"ada:p@ss:w0rd").decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            seen.append(self.headers.get("Authorization"))
            self.send_response(200 if seen[-1] == expected else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_store_behind_basic_authentication_is_reached_with_the_uris_credentials(
    guarded_server: Any,
) -> None:
    """MLflow's client sends a URI's user and password as basic authentication; the
    check before it took them for part of the host name and called the store
    unreachable (and ``nbops runs``, the gate's registry and ``nbops score`` with it)."""
    port, seen = guarded_server

    assert reachability_problem(f"http://ada:p%40ss%3Aw0rd@127.0.0.1:{port}") is None
    assert seen[-1] is not None and seen[-1].startswith("Basic ")

    problem = reachability_problem(f"http://ada:wrong-pw@127.0.0.1:{port}/")
    assert problem == f"http://ada:***REDACTED***@127.0.0.1:{port}/ answered HTTP 401"


def test_tracking_uri_defaults_to_the_embedded_store(tmp_path: Path) -> None:
    assert tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / '.nbops' / 'mlflow.db').resolve()}"


@pytest.mark.parametrize("value", ["http://mlflow.example.com:5000", " http://mlflow:5000 "])
def test_tracking_uri_honours_mlflow_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", value)

    assert tracking_uri(tmp_path) == value.strip()


def test_blank_mlflow_tracking_uri_means_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "  ")

    assert tracking_uri(tmp_path).startswith("sqlite:///")


def test_experiment_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "churn-project"

    assert experiment_name(project) == "churn-project"
    monkeypatch.setenv("NBOPS_EXPERIMENT", "team-churn")
    assert experiment_name(project) == "team-churn"
    monkeypatch.setenv("NBOPS_EXPERIMENT", " ")
    assert experiment_name(project) == "churn-project"


def test_store_uses_nbops_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_EXPERIMENT", "team-churn")
    store = Store(tmp_path)

    published = store.publish(make_record(tmp_path, "b1", T0))

    run = store.client.get_run(published["run_id"])
    assert store.client.get_experiment(run.info.experiment_id).name == "team-churn"
    assert [b.info.run_id for b in store.builds()] == [published["run_id"]]
