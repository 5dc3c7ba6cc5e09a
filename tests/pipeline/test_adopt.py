"""Existing Ploomber projects adopted with `nbops adopt` and built with the real
`ploomber build`: every task of every shape gets a finished run in the store with its
status, duration, parameters, source and product hashes, and its notebook and HTML
report where it runs a notebook; the user's own hooks and executor keep working.

One project per shape, built once per module (see tests/pipeline/adopted.py):
`ploomber scaffold`'s sample, a mixed serial project (functions, a script, `.py`
notebooks in percent and light format, `nb: out.html`, a task with its own hook, tasks
imported from another spec) and a grid on the parallel executor.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from tests.commands.test_adopt import added_lines
from tests.conftest import run_cli
from tests.pipeline.adopted import GRID, MIXED, artifacts, builds, make, run
from tests.serving.conftest import Service

pytestmark = pytest.mark.pipeline

HOOK_LINE = "on_render: nbops.build.hooks.build_rendered"


def adopt_and_build(root):
    before = (root / "pipeline.yaml").read_text()
    adopted = run_cli(root, "adopt")  # in this process: what it writes is the point
    build = run(root, "ploomber", "build")
    return before, adopted, build


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    parent = tmp_path_factory.mktemp("scaffold")
    run(parent, "ploomber", "scaffold", "sample")
    root = parent / "sample"
    return root, *adopt_and_build(root)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = make(tmp_path_factory.mktemp("adopted") / "mixed", MIXED)
    commit(root)  # a git project, so a build can be reproduced
    before, adopted, build = adopt_and_build(root)
    # One task on its own, then a partial build: both recorded too.
    single = run(root, "ploomber", "task", "load", "--force")
    partial = run(root, "ploomber", "build", "--partially", "split", "--force")
    return root, before, adopted, build, single, partial


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = make(tmp_path_factory.mktemp("adopted") / "grid", GRID)
    return root, *adopt_and_build(root)


def commit(root):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "the project"]):
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True)


def assert_complete(root, task_run, *, notebook):
    """A finished task run with everything a task run holds."""
    data, tags = task_run.data, task_run.data.tags
    assert task_run.info.status == "FINISHED", tags
    assert tags["nbops.status"] == "executed"
    assert "nbops.capture_error" not in tags
    assert data.metrics["duration_s"] >= 0
    sources = [k for k in data.params if k.startswith("source.")]
    assert sources and all(data.params[k].startswith("sha256:") for k in sources)
    assert any(k.startswith("product_hash.") for k in data.params)
    reports = artifacts(root, task_run, "reports")
    if notebook:
        assert any(name.endswith(".ipynb") for name in reports), reports
        assert any(name.endswith(".html") for name in reports), reports
    else:
        assert reports == []


def test_a_scaffolded_project_records_every_task(scaffolded):
    root, before, adopted, build = scaffolded
    assert "pipeline.yaml: added" in adopted.stdout
    ((parent, tasks),) = builds(root)
    assert parent.info.status == "FINISHED"
    assert sorted(tasks) == ["features", "fit", "get", "petal", "sepal"]
    for name, task_run in tasks.items():
        assert_complete(root, task_run, notebook=name == "fit")


def test_every_task_shape_of_a_serial_project_is_recorded(mixed):
    root, *_ = mixed
    parent, tasks = builds(root)[0]
    assert sorted(tasks) == [
        "clean",
        "explore",
        "light",
        "load",
        "score",
        "split",
        "summary",
        "train",
    ]
    for name, task_run in tasks.items():
        assert_complete(root, task_run, notebook=name in {"explore", "light", "train"})
    assert tasks["load"].data.params["rows"] == "20"
    assert set(k for k in tasks["split"].data.params if k.startswith("product_hash.")) == {
        "product_hash.head",
        "product_hash.tail",
    }
    assert any(k.endswith("tasks.py") for k in tasks["summary"].data.params)  # imported


def test_a_notebook_rendered_straight_to_html_keeps_its_executed_notebook(mixed):
    root, *_ = mixed
    _, tasks = builds(root)[0]
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    local = client.download_artifacts(tasks["explore"].info.run_id, "reports/explore.ipynb")
    notebook = json.loads(Path(local).read_text())
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    assert any("20" in "".join(o.get("text", "")) for o in outputs)  # it ran
    assert (root / "output" / "explore.html").read_text().lstrip().startswith("<!DOCTYPE html>")


def test_the_users_own_task_hook_still_runs(mixed, grid):
    assert (mixed[0] / "hook-ran.txt").read_text().split() == ["light"]
    assert sorted((grid[0] / "hook-ran.txt").read_text().split()) == ["fit-1", "fit-2", "fit-3"]
    assert (grid[0] / "dag-hook-ran.txt").read_text() == "yes"


def test_ploomber_task_and_partial_builds_are_recorded(mixed):
    root, *_ = mixed
    recorded = builds(root)
    assert len(recorded) == 3
    (_, single), (_, partial) = recorded[1], recorded[2]
    assert sorted(single) == ["load"]
    assert_complete(root, single["load"], notebook=False)
    assert sorted(partial) == ["load", "split"]


def test_a_grid_on_the_parallel_executor_records_every_task_with_its_grid_value(grid):
    root, before, adopted, build = grid
    ((parent, tasks),) = builds(root)
    assert parent.info.status == "FINISHED"
    assert sorted(tasks) == ["fit-1", "fit-2", "fit-3", "make", "report"]
    for name, task_run in tasks.items():
        assert_complete(root, task_run, notebook=name == "report")
    assert {tasks[f"fit-{a}"].data.params["alpha"] for a in (1, 2, 3)} == {"1", "2", "3"}
    # The executor stays the user's choice.
    assert "executor: parallel" in (root / "pipeline.yaml").read_text()


@pytest.mark.parametrize("shape", ["scaffolded", "mixed", "grid"])
def test_adopt_keeps_every_line_and_a_second_run_changes_nothing(shape, request):
    root, before, *_ = request.getfixturevalue(shape)
    after = (root / "pipeline.yaml").read_text()
    assert HOOK_LINE in after
    added = added_lines(before, after)  # fails if a line was removed or moved
    assert [line for line in added if line.strip() and not line.startswith("#")] == [HOOK_LINE]
    again = run_cli(root, "adopt")
    assert "nothing changed" in again.stdout
    assert (root / "pipeline.yaml").read_text() == after
    assert not (root / ".nbops" / "spool").exists()  # every build reached the store


def test_mlflow_calls_in_a_notebook_and_a_function_land_in_their_task_runs(mixed):
    root, *_ = mixed
    parent, tasks = builds(root)[0]
    train, score = tasks["train"], tasks["score"]
    assert train.data.metrics["r2"] == pytest.approx(1.0)
    assert train.data.params["fit_intercept"] == "True"
    assert score.data.metrics["rows"] == 20
    assert "r2" not in score.data.metrics and "rows" not in train.data.metrics
    assert artifacts(root, train, "figures") == ["x.png"]
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    models = client.search_logged_models(
        experiment_ids=[train.info.experiment_id],
        filter_string=f"source_run_id = '{train.info.run_id}'",
    )
    assert [m.name for m in models] == ["model"]
    # The headline is the setting in pyproject.toml, not whichever task ran last.
    assert {k: v for k, v in parent.data.metrics.items()} == {"r2": pytest.approx(1.0)}
    # No second store and nothing else in the work tree.
    assert not (root / "mlruns").exists()
    assert [p.relative_to(root) for p in root.rglob("*.db")] == [Path(".nbops/mlflow.db")]
    # Every build keeps only the runs of the tasks it ran (`ploomber task load`).
    runs = client.search_runs([train.info.experiment_id], max_results=1000)
    assert all(r.data.tags.get("nbops.kind") in {"build", "task"} for r in runs)


def test_runs_show_lists_each_tasks_metrics(mixed):
    root, *_ = mixed
    shown = run_cli(root, "runs", "show", builds(root)[0][0].info.run_id).stdout
    tasks = {
        line.split()[0]: line for line in shown.splitlines() if line.startswith(("train", "score"))
    }
    assert "r2=1" in tasks["train"] and "rows=20" in tasks["score"]


def test_reproduce_rebuilds_an_adopted_project_from_its_commit(mixed):
    root, *_ = mixed
    first = builds(root)[0][0].info.run_id  # the whole build (later ones are partial)
    result = run_cli(root, "reproduce", first, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "no data snapshot was recorded" in out
    assert "train.r2" in out and "score.rows" in out
    # The user's hook wrote it beside the project: not in the commit, named.
    assert "inputs not restored (not in the commit: git-ignored or untracked): hook-ran.txt" in out
    verdict = re.match(r"REPRODUCED: (\d+)/(\d+) metrics match", out.splitlines()[-1])
    assert verdict and verdict[1] == verdict[2] and int(verdict[1]) >= 2, out


def test_a_model_from_the_users_notebook_is_gated_registered_and_served(mixed, tmp_path):
    from nbops.tracking.registry import Registry

    root, *_ = mixed
    parent, tasks = builds(root)[0]
    assert parent.data.tags["nbops.release"] == "mixed v1: promote"
    registry = Registry(root)
    champion = registry.alias("mixed", "champion")
    assert champion.version == "1" and champion.run_id == tasks["train"].info.run_id
    assert champion.tags["nbops.model_sha256"].startswith("sha256:")
    service = Service(SimpleNamespace(root=root), tmp_path)  # `nbops serve`: the champion
    try:
        status, answer = service.call("POST", "/predict", {"records": [{"x": 3}]})
    finally:
        service.stop()
    assert status == 200, answer
    assert answer["predictions"] == [pytest.approx(7.0)]


def test_serve_without_a_model_says_so_in_one_paragraph(grid):
    root, *_ = grid
    result = run_cli(root, "serve", "--port", "9", check=False)
    assert result.returncode == 1
    assert "There is no registered model 'grid' to serve" in result.stderr
    assert "nbops.log_model" in result.stderr
    assert "Traceback" not in result.stderr


# -- Ploomber's own sample projects (tests/assets/ploomber-samples/README.md) ---------

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "ploomber-samples"


@pytest.fixture(
    scope="module",
    params=[
        ("nbs", {"load", "clean", "plot"}),
        ("nbs-nested", {"load", "clean"}),
        ("spec-with-functions-flat", set()),
    ],
    ids=lambda p: p[0],
)
def sample(request, tmp_path_factory):
    name, notebooks = request.param
    root = tmp_path_factory.mktemp("samples") / name
    shutil.copytree(SAMPLES / name, root)
    return root, notebooks, *adopt_and_build(root)


def test_ploombers_own_samples_are_adopted_and_every_task_recorded(sample):
    root, notebooks, before, adopted, build = sample
    assert "pipeline.yaml: added" in adopted.stdout
    assert "recorded build as run" in build.stderr, build.stderr[-3000:]
    ((parent, tasks),) = builds(root)
    assert parent.info.status == "FINISHED"
    tasks_in_spec = {
        line.split()[0]
        for line in build.stdout.splitlines()
        if line.split()[1:2] == ["True"]  # Ploomber's own table: every task ran
    }
    assert set(tasks) == tasks_in_spec and tasks
    for name, task_run in tasks.items():
        assert_complete(root, task_run, notebook=name in notebooks)
