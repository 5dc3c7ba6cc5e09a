"""Recording a build from a child of its kernel template: the ``ploomber`` process never
imports MLflow, the record is the one the process would publish, and a template that
dies leaves the publishing to the process (real templates, real stores)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from mlflow.tracking import MlflowClient

from nbops.build import hooks
from nbops.build.forks import KernelTemplate
from nbops.build.kernels import ForkKernelManager, start_template
from nbops.build.recorder import publish_in_template, start_publisher
from nbops.release.prepare import release_build
from nbops.tracking.publish import publish_or_spool
from nbops.tracking.record import EXECUTED, TaskRecord
from tests.conftest import build_env
from tests.release.test_prepare import gate_record, model_folder  # noqa: F401  (a fixture)
from tests.tracking.factories import finished_build

BIN = Path(sys.executable).parent
PIPELINE = """\
executor:
  dotted_path: nbops.build.executor.NotebookExecutor
on_finish: nbops.build.hooks.build_finished
on_failure: nbops.build.hooks.build_failed
tasks:
"""


def _notebook_project(root: Path) -> Path:
    """Two small notebooks recorded by nbops' hooks, run by nbops' executor."""
    (root / "nb").mkdir(parents=True)
    tasks = []
    for name, upstream in (("first", None), ("second", ["first"])):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.cells = [
            nbformat.v4.new_code_cell(
                f"upstream = {upstream!r}\nproduct = None\nrows = 3",
                metadata={"tags": ["parameters"]},
            ),
            nbformat.v4.new_code_cell(f"open(product['out'], 'w').write('{name} ' * rows)"),
        ]
        nbformat.write(nb, root / "nb" / f"{name}.ipynb")
        tasks.append(
            f"  - source: nb/{name}.ipynb\n    product:\n      nb: out/{name}.ipynb\n"
            f"      out: out/{name}.txt\n    params:\n      rows: 3\n"
            "    on_finish: nbops.build.hooks.task_finished\n"
            "    on_failure: nbops.build.hooks.task_failed\n"
        )
    (root / "pipeline.yaml").write_text(PIPELINE + "".join(tasks))
    return root


def _runs(uri: str) -> dict[str, Any]:
    """What a store holds, run ids replaced by names: each run's params, metrics, tags
    and artifact files (with their sizes), and the registry's models."""
    client = MlflowClient(uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=100
    )
    names = {
        r.info.run_id: r.data.tags.get("nbops.task") or r.data.tags.get("nbops.kind", "?")
        for r in runs
    }

    def plain(value: str) -> str:
        for run_id, name in names.items():
            value = value.replace(run_id, f"<{name}>")
        return value

    def files(run_id: str, path: str | None = None) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for item in client.list_artifacts(run_id, path):
            if item.is_dir:
                found.update(files(run_id, item.path))
            else:
                found[item.path] = item.file_size
        return found

    seen = {
        names[r.info.run_id]: {
            "status": r.info.status,
            "params": r.data.params,
            "metrics": r.data.metrics,
            "tags": {k: plain(v) for k, v in r.data.tags.items()},
            "files": files(r.info.run_id),
        }
        for r in runs
    }
    seen["registry"] = {
        m.name: {
            "aliases": dict(m.aliases),
            "versions": [
                {"tags": _untimed(v.tags, plain), "run": plain(v.run_id)}
                for v in client.search_model_versions(f"name = '{m.name}'")
            ],
        }
        for m in client.search_registered_models()
    }
    return seen


def _untimed(tags: dict[str, str], plain: Any) -> dict[str, str]:
    """A model version's tags without the time of the release (its audit entry's key,
    the promotion's date)."""
    out = {}
    for key, value in tags.items():
        if key.startswith("nbops.audit."):
            key = "nbops.audit.<ms>"
        out[key] = "<time>" if key == "nbops.promoted" else plain(value)
    return out


def _template() -> Iterator[KernelTemplate]:
    started = start_template(["nbops.build.recorder"])
    assert started is not None, "this platform forks"
    try:
        yield started
    finally:
        started.discard()


@pytest.fixture(scope="module")
def template(module_env: None) -> Iterator[KernelTemplate]:
    """A kernel template that imports what publishing needs, as a build's does (in
    the tests' environment: it is the prepared child's)."""
    yield from _template()


@pytest.fixture
def doomed_template() -> Iterator[KernelTemplate]:
    """The same, for a test that kills it."""
    yield from _template()


@pytest.mark.pipeline  # real kernels
def test_a_single_task_is_recorded_from_its_kernels_template_without_mlflow_in_ploomber(
    tmp_path: Path,
) -> None:
    # `ploomber task NAME` builds without the executor: its one kernel is forked from a
    # template of its own, and a child of that template publishes the task's record.
    root = _notebook_project(tmp_path / "project")
    env = build_env(NBOPS_TIMING="1")
    subprocess.run([str(BIN / "ploomber"), "build"], cwd=root, env=env, check=True, timeout=300)

    task = [str(BIN / "ploomber"), "task", "second", "--force"]
    done = subprocess.run(task, cwd=root, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert "nbops: recorded build as run" in done.stderr and "(1 executed)" in done.stderr
    assert (
        "published (or spooled) in a child of the kernel template; MLflow imported in this "
        "process: no" in done.stderr
    )
    spool = root / ".nbops" / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "published, not spooled"
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    builds = [r for r in runs if r.data.tags.get("nbops.kind") == "build"]
    assert len(builds) == 2, "the build, then the task's rerun"
    assert (root / "out" / "second.txt").read_text() == "second " * 3


@pytest.mark.pipeline  # real kernels
def test_a_build_with_forked_kernels_is_recorded_without_importing_mlflow_in_the_build(
    tmp_path: Path,
) -> None:
    root = _notebook_project(tmp_path / "project")

    done = subprocess.run(
        [str(BIN / "ploomber"), "build"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=build_env(NBOPS_TIMING="1"),
    )

    assert done.returncode == 0, done.stderr
    assert "nbops: recorded build as run" in done.stderr and "(2 executed)" in done.stderr
    assert (
        "published (or spooled) in a child of the kernel template; MLflow imported in this "
        "process: no" in done.stderr
    )
    runs = _runs(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    assert runs["first"]["params"]["rows"] == "3" and runs["second"]["status"] == "FINISHED"
    assert {"reports/first.ipynb"} <= runs["first"]["files"].keys()


def test_the_record_a_templates_child_publishes_is_the_one_the_build_would(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    template: KernelTemplate,
    model_folder: Path,  # noqa: F811  (the fixture imported above)
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    report = root / "products" / "train.html"
    report.parent.mkdir()
    report.write_text("<html>the report</html>")
    record = gate_record(root, "b1", model_folder, champion_version=None, started=1.7e9)
    record.tasks.append(
        TaskRecord(
            name="train",
            status=EXECUTED,
            params={"seed": 7, "hyperparams": {"C": 0.5}},
            metrics={"roc_auc": 0.81},
            files={"reports/train.html": str(report)},
            duration_s=1.5,
        )
    )
    record.metrics = {"roc_auc": 0.81}
    published = {}
    for where in ("child", "process"):
        uri = f"sqlite:///{tmp_path / where}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        if where == "child":
            assert template.hold()
            publisher = start_publisher(template, root=root)
            assert publisher is not None, "forked once the template had imported"
            outcome = publish_in_template(publisher, record, root=root)
            template.release()
            assert outcome is not None and outcome["release"]["action"] == "promote"
        else:
            publish_or_spool(record, root=root, release=release_build)
        printed = capfd.readouterr().err
        assert "nbops: registered churn version 1; gate: promote" in printed
        assert "nbops: recorded build as run" in printed
        published[where] = _runs(uri)

    assert published["child"] == published["process"]
    assert published["child"]["train"]["params"]["seed"] == "7"
    assert published["child"]["registry"]["churn"]["aliases"] == {"champion": 1}


def test_a_template_that_dies_before_the_end_leaves_the_build_to_publish_itself(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    doomed_template: KernelTemplate,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    template = doomed_template
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ForkKernelManager, "template", template)  # the build's
    monkeypatch.setattr(hooks, "_WARMING", [])
    build = hooks._Build(tmp_path)
    build.record.tasks.append(TaskRecord(name="load", status=EXECUTED, params={"rows": 3}))
    build.warm_up()  # as the first task's capture does: holds the template
    build._warm_thread.join(120)
    assert build.template is template and build.publisher is not None
    # The template and the child waiting to publish die (the OOM killer, say).
    subprocess.run(["kill", "-9", str(build.publisher.pid), str(template.process.pid)], check=True)
    template.process.wait()

    with caplog.at_level(logging.DEBUG, logger="nbops.build.recorder"):
        hooks._safely(lambda: build.finish(None, "FINISHED"), build=build)

    assert "build recorded in this process: the template's child" in caplog.text
    assert "nbops: recorded build as run" in capsys.readouterr().err
    runs = _runs(f"sqlite:///{tmp_path / '.nbops' / 'mlflow.db'}")
    assert runs["load"]["params"]["rows"] == "3"
    assert build.template is None, "given back"


def test_a_record_that_is_not_plain_json_is_published_by_the_build(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    template: KernelTemplate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    record = finished_build(tmp_path, metrics={"score": float("nan")})
    assert template.hold()
    publisher = start_publisher(template, root=tmp_path)
    try:
        with caplog.at_level(logging.DEBUG, logger="nbops.build.recorder"):
            assert publish_in_template(publisher, record, root=tmp_path) is None
    finally:
        template.release()
    assert "its record is not plain JSON" in caplog.text
