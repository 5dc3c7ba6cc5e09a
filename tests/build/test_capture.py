"""What the hooks capture of task shapes users write, on real Ploomber DAGs built in
this process (fast; the real `ploomber build`s are in tests/pipeline/test_adopt.py):
single-file products, the user's own hooks beside nbops', failed builds' errors, and a
capture problem that is loud, kept and fails the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ploomber import DAG
from ploomber.exceptions import DAGBuildError
from ploomber.products import File
from ploomber.tasks import PythonCallable

from nbops.tracking import hooks


def get(product, rows):
    Path(str(product)).write_text("x\n" + "\n".join(map(str, range(rows))))


def broken(product):
    raise ValueError("the source table is empty")


# The user's hooks leave a line in calls.txt: Ploomber's serial executor builds each
# task in a forked process, so a file is what the test can see.
def users_hook(task):
    with open("calls.txt", "a") as fh:
        fh.write(f"finish {task.name}\n")


def users_dag_hook(dag, report):
    with open("calls.txt", "a") as fh:
        fh.write(f"dag finished with {len(report.values['name'])} tasks\n")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    hooks._build = None
    yield tmp_path
    hooks._build = None


def adopted_dag(*tasks):
    """A DAG wired the way `nbops adopt` wires a spec: only the DAG-level on_render."""
    dag = DAG(executor="serial")
    dag.on_render = hooks.build_rendered
    for fn, product, kwargs in tasks:
        PythonCallable(fn, File(product), dag, **kwargs)
    return dag


def task_runs(root):
    client = MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    build = next(r for r in runs if r.data.tags.get("nbops.kind") == "build")
    tasks = {r.data.tags["nbops.task"]: r for r in runs if r.data.tags.get("nbops.kind") == "task"}
    return build, tasks


def test_a_single_file_product_is_recorded_with_params_and_hashes(project):
    dag = adopted_dag((get, "get.csv", {"params": {"rows": 3}, "name": "get"}))
    dag.build()
    build, tasks = task_runs(project)
    run = tasks["get"]
    assert run.data.tags["nbops.status"] == "executed"
    assert run.data.params["rows"] == "3"
    assert run.data.params["product.product"].endswith("get.csv")
    assert run.data.params["product_hash.product"].startswith("sha256:")
    # A function's source is its module file (this one, outside the project).
    (source,) = [k for k in run.data.params if k.startswith("source.")]
    assert source.endswith("test_capture.py")
    assert run.data.params[source].startswith("sha256:")
    assert run.data.metrics["duration_s"] >= 0


def test_the_users_own_task_and_dag_hooks_still_run_beside_nbops(project):
    dag = adopted_dag((get, "get.csv", {"params": {"rows": 3}, "name": "get"}))
    dag["get"].on_finish = users_hook
    dag.on_finish = users_dag_hook
    dag.build()
    assert (project / "calls.txt").read_text().splitlines() == [
        "finish get",
        "dag finished with 1 tasks",
    ]
    _, tasks = task_runs(project)
    assert tasks["get"].data.tags["nbops.status"] == "executed"


@pytest.mark.parametrize("wiring", ["adopted", "by hand"])
def test_a_failed_build_records_its_error(project, wiring):
    dag = adopted_dag(
        (get, "get.csv", {"params": {"rows": 3}, "name": "get"}),
        (broken, "broken.csv", {"name": "broken"}),
    )
    if wiring == "by hand":  # as nbops' reference pipeline.yaml declares them
        dag.on_render = None
        dag.on_finish, dag.on_failure = hooks.build_finished, hooks.build_failed
        for task in dag.values():
            task.on_finish, task.on_failure = hooks.task_finished, hooks.task_failed
    with pytest.raises(DAGBuildError):
        dag.build()
    build, tasks = task_runs(project)
    assert build.info.status == "FAILED"
    assert "the source table is empty" in build.data.tags["nbops.error"]
    assert tasks["broken"].data.tags["nbops.status"] == "failed"
    assert tasks["get"].data.tags["nbops.status"] == "executed"


def test_a_capture_problem_is_loud_keeps_the_task_and_fails_the_build(project, monkeypatch):
    def unreadable(products):
        raise OSError("products/ is not readable")

    monkeypatch.setattr(hooks, "_product_hashes", unreadable)
    dag = adopted_dag((get, "get.csv", {"params": {"rows": 3}, "name": "get"}))
    with pytest.raises(DAGBuildError) as raised:
        dag.build()
    message = str(raised.value.__cause__)
    assert "nbops could not capture all of this build" in message
    assert "task 'get': OSError: products/ is not readable" in message
    _, tasks = task_runs(project)
    run = tasks["get"]
    assert "products/ is not readable" in run.data.tags["nbops.capture_error"]
    assert run.data.tags["nbops.status"] == "executed"  # what was captured is kept


def test_product_paths_of_every_product_shape():
    from ploomber.products import MetaProduct

    assert hooks.product_paths(File("a.csv")) == {"product": "a.csv"}
    assert hooks.product_paths(MetaProduct([File("a.csv"), File("b.csv")])) == {
        "0": "a.csv",
        "1": "b.csv",
    }
    assert hooks.product_paths(MetaProduct({"nb": File("n.html"), "d": File("d.csv")})) == {
        "nb": "n.html",
        "d": "d.csv",
    }


def test_a_task_record_round_trips_its_new_fields(tmp_path):
    from nbops.tracking.record import BuildRecord, TaskRecord

    record = BuildRecord("b", "p", str(tmp_path), [], "manual", 0.0)
    record.tasks.append(
        TaskRecord("t", "executed", source_hashes={"a.py": "sha256:1"}, capture_error="x")
    )
    again = BuildRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.tasks[0].source_hashes == {"a.py": "sha256:1"}
    assert again.tasks[0].capture_error == "x"


def fit(product, alpha):
    Path(str(product)).write_text(str(alpha))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_tasks_built_in_worker_processes_are_one_build(project, start_method):
    from ploomber.executors import Parallel

    dag = adopted_dag(
        *[(fit, f"fit-{a}.txt", {"params": {"alpha": a}, "name": f"fit-{a}"}) for a in (1, 2)]
    )
    dag.executor = Parallel(processes=2, start_method=start_method)
    dag["fit-1"].on_finish = users_hook
    dag.build()
    client = MlflowClient(f"sqlite:///{project / '.nbops' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project.name)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert [r.data.tags["nbops.kind"] for r in runs].count("build") == 1
    _, tasks = task_runs(project)
    assert {name: run.data.params["alpha"] for name, run in tasks.items()} == {
        "fit-1": "1",
        "fit-2": "2",
    }
    assert all(run.data.tags["nbops.status"] == "executed" for run in tasks.values())
    assert (project / "calls.txt").read_text() == "finish fit-1\n"


def test_a_build_with_nothing_to_do_touches_nothing_and_records_nothing(
    project, monkeypatch, capsys
):
    def files():
        return {
            p: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in project.rglob("*")
            if p.is_file() and ".nbops" not in p.relative_to(project).parts
        }

    def build_runs():
        client = MlflowClient(f"sqlite:///{project / '.nbops' / 'mlflow.db'}")
        experiment = client.get_experiment_by_name(project.name)
        runs = client.search_runs([experiment.experiment_id], max_results=100)
        return [r for r in runs if r.data.tags.get("nbops.kind") == "build"]

    task = (get, "get.csv", {"params": {"rows": 3}, "name": "get"})
    adopted_dag(task).build()
    before, recorded = files(), build_runs()
    capsys.readouterr()

    adopted_dag(task).build()

    assert "nbops: nothing to do: all 1 task(s) are up to date" in capsys.readouterr().err
    assert files() == before, "no file rewritten"
    assert len(build_runs()) == len(recorded) == 1, "no run for a build that did nothing"

    # Asked to (a scheduler's last step records the whole pipeline), it is recorded.
    monkeypatch.setenv("NBOPS_RECORD_UP_TO_DATE", "1")
    adopted_dag(task).build()
    assert len(build_runs()) == 2
    client = MlflowClient(f"sqlite:///{project / '.nbops' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(project.name).experiment_id])
    skipped = [r for r in runs if r.data.tags.get("nbops.status") == "skipped"]
    assert [r.data.tags["nbops.task"] for r in skipped] == ["get"]
    assert "nothing to do" not in capsys.readouterr().err


def report(product):
    path = Path(str(product["html"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html><body><p>report</p></body></html>")


def reporting_dag():
    """One task with an HTML report (the ``html`` product, as the summary looks for)."""
    dag = adopted_dag()
    PythonCallable(report, {"html": File("products/report.html")}, dag, name="report")
    return dag


def test_a_build_with_nothing_to_do_writes_a_missing_summary_page_back(project, capsys):
    reporting_dag().build()
    summary = project / "products" / "index.html"
    assert summary.is_file()
    summary.unlink()
    capsys.readouterr()

    reporting_dag().build()

    err = capsys.readouterr().err
    assert "nothing to do" in err and "build summary in" in err
    assert "up to date (skipped)" in summary.read_text()
