"""Reviewing builds without rerunning anything: list, show, diff and the static site."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbops.commands.review import diff_runs, list_runs, show_run, write_site
from nbops.tracking.record import EXECUTED, SKIPPED, BuildRecord, TaskRecord
from nbops.tracking.store import Store
from tests.tracking.factories import T0, finished_build

COMMIT = "3f2a9c1d5e7b9a0c1d2e3f405162738495a6b7c8"
CONTENT_HASH = "sha256:" + "5c1e" * 16
# A page loading a script, stylesheet or module from the network (not a plain link text).
REMOTE_RESOURCE = re.compile(
    r"""(?:src|href)\s*=\s*["']?https?://|url\(\s*["']?https?://|(?:import|from)\s*\(?\s*["']https?://"""
)


def write_notebook(folder: Path, name: str, cells: list[Any]) -> dict[str, str]:
    """An executed notebook and its HTML report (rendered by nbconvert, as Ploomber does)."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook = new_notebook(cells=[new_markdown_cell(f"# {name.title()}"), *cells])
    nbformat.write(notebook, folder / f"{name}.ipynb")
    body, _ = HTMLExporter().from_notebook_node(notebook)
    (folder / f"{name}.html").write_text(body)
    return {
        f"reports/{name}.ipynb": str(folder / f"{name}.ipynb"),
        f"reports/{name}.html": str(folder / f"{name}.html"),
    }


def evaluate_cells(*, address: str, score: float) -> list[Any]:
    return [
        new_code_cell("import pandas as pd", execution_count=1),
        new_code_cell(
            "model",
            execution_count=2,
            outputs=[
                new_output(
                    "execute_result",
                    data={"text/plain": f"<HistGradientBoostingClassifier at {address}>"},
                    execution_count=2,
                )
            ],
        ),
        new_code_cell(
            'print(f"roc_auc {score:.2f}")',
            execution_count=3,
            outputs=[new_output("stream", name="stdout", text=f"roc_auc {score:.2f}\n")],
        ),
    ]


def ingest_cells() -> list[Any]:
    return [
        new_code_cell(
            "frame.shape",
            execution_count=1,
            outputs=[new_output("execute_result", data={"text/plain": "(1500, 12)"})],
        )
    ]


def make_record(
    root: Path,
    build_id: str,
    started_at: float,
    *,
    trigger: str,
    dirty: bool,
    max_iter: int,
    roc_auc: float,
    tasks: list[TaskRecord],
) -> BuildRecord:
    return finished_build(
        root,
        build_id=build_id,
        started_at=started_at,
        seconds=42,
        trigger=trigger,
        git={
            "commit": COMMIT,
            "branch": "main",
            "dirty": dirty,
            "diff": "--- a/env.yaml\n+++ b/env.yaml\n" if dirty else None,
            "untracked": [],
        },
        sources={"pipeline.yaml": "sha256:" + "a" * 64},
        env={"data": {"rows": 1500}, "train": {"max_iter": max_iter}},
        python={"python": "3.11.7"},
        data={"content_hash": CONTENT_HASH},
        metrics={"roc_auc": roc_auc, "f1": 0.7},
        tasks=tasks,
    )


@dataclass
class Builds:
    store: Store
    root: Path
    a: dict[str, Any]  # publish() result of the older build
    b: dict[str, Any]  # and of the newer one
    reports: dict[str, Path]


@pytest.fixture(scope="module")
def builds(module_env: None, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """Two builds of ``churn-project``.

    A: ingest and evaluate executed, max_iter 30, roc_auc 0.81, clean checkout, manual.
    B: ingest skipped (products of A), evaluate executed, max_iter 50, roc_auc 0.83,
       uncommitted changes, ci. Evaluate's cell 2 differs only by a memory address,
       cell 3 by the score it prints.
    """
    root = tmp_path_factory.mktemp("review") / "churn-project"
    ingest_a = write_notebook(root / "products-a", "ingest", ingest_cells())
    evaluate_a = write_notebook(
        root / "products-a", "evaluate", evaluate_cells(address="0x7f3a2c1d9e50", score=0.81)
    )
    evaluate_b = write_notebook(
        root / "products-b", "evaluate", evaluate_cells(address="0x7f3b88aa1230", score=0.83)
    )
    store = Store(root)
    a = store.publish(
        make_record(
            root,
            "build-a",
            T0,
            trigger="manual",
            dirty=False,
            max_iter=30,
            roc_auc=0.81,
            tasks=[
                TaskRecord("ingest", EXECUTED, duration_s=1.2, files=ingest_a),
                TaskRecord("evaluate", EXECUTED, duration_s=2.5, files=evaluate_a),
            ],
        )
    )
    b = store.publish(
        make_record(
            root,
            "build-b",
            T0 + 60,
            trigger="ci",
            dirty=True,
            max_iter=50,
            roc_auc=0.83,
            tasks=[
                TaskRecord("ingest", SKIPPED, produced_by={"build_id": "build-a"}),
                TaskRecord("evaluate", EXECUTED, duration_s=2.5, files=evaluate_b),
            ],
        )
    )
    reports = {
        "ingest-a": Path(ingest_a["reports/ingest.html"]),
        "evaluate-a": Path(evaluate_a["reports/evaluate.html"]),
        "evaluate-b": Path(evaluate_b["reports/evaluate.html"]),
    }
    return Builds(store, root, a, b, reports)


# -- nbops runs list --------------------------------------------------------------------


def test_list_runs(builds: Builds) -> None:
    lines = list_runs(builds.store).splitlines()

    assert lines[0].split() == [
        "RUN",
        "STARTED",
        "TRIGGER",
        "STATUS",
        "COMMIT",
        "DATA",
        "roc_auc",
        "f1",
    ]
    # Newest first; STARTED is a date and a time.
    run_b, run_a = lines[1].split(), lines[2].split()
    assert run_b[0] == builds.b["run_id"][:12]
    assert run_b[3:] == ["ci", "FINISHED", "3f2a9c1*", CONTENT_HASH[7:19], "0.8300", "0.7000"]
    assert run_a[0] == builds.a["run_id"][:12]
    assert run_a[3:] == ["manual", "FINISHED", "3f2a9c1", CONTENT_HASH[7:19], "0.8100", "0.7000"]
    assert lines[-1] == "(* = uncommitted changes)"


def test_list_runs_of_an_empty_store(tmp_path: Path) -> None:
    store = Store(tmp_path)

    assert list_runs(store) == (
        f"No builds recorded in {store.uri} yet. Run `ploomber build` (or `make build`)."
    )


# -- nbops runs show --------------------------------------------------------------------


def test_show_run(builds: Builds) -> None:
    text = show_run(builds.store, builds.b["run_id"][:12])
    lines = text.splitlines()

    assert lines[0].startswith(f"Build run {builds.b['run_id']} ")
    assert "  status    FINISHED  (trigger: ci)" in lines
    assert f"  git       {COMMIT} on main — uncommitted changes (artifact git/diff.patch)" in lines
    assert f"  data      {CONTENT_HASH}" in text
    assert "  train.max_iter = 50" in lines
    assert "  data.rows = 1500" in lines
    assert "  roc_auc = 0.83" in lines
    assert "  f1 = 0.7" in lines
    assert f"  pipeline.yaml  sha256:{'a' * 64}" in lines
    tasks = {line.split()[0]: line for line in lines[lines.index("Tasks") + 2 :]}
    assert set(tasks) == {"evaluate", "ingest"}
    assert tasks["evaluate"].split()[1:4] == ["executed", "2.5", "s"]
    assert "skipped" in tasks["ingest"]
    assert (
        f"up to date: products from run {builds.a['tasks']['ingest'][:12]} (build build-a)"
        in tasks["ingest"]
    )


def test_show_run_of_a_clean_build(builds: Builds) -> None:
    text = show_run(builds.store, "latest~1")

    assert f"  git       {COMMIT} on main" in text.splitlines()
    assert "uncommitted" not in text


# -- nbops runs diff --------------------------------------------------------------------


def test_diff_runs(builds: Builds) -> None:
    text = diff_runs(builds.store, "latest~1", "latest")
    lines = text.splitlines()

    assert lines[0].startswith(f"A = {builds.a['run_id']} ")
    assert lines[1].startswith(f"B = {builds.b['run_id']} ")
    assert "commit: 3f2a9c1 → 3f2a9c1*" in lines
    assert f"data: same {CONTENT_HASH}" in lines
    assert "status: same FINISHED" in lines
    assert "Env values: 1 differ:" in lines
    assert "  train.max_iter: 30 → 50" in lines
    assert "Task parameters: 0 differ" in lines
    assert "Sources: 0 differ" in lines
    assert "Metrics: 1 differ:" in lines
    assert "  roc_auc: 0.81 → 0.83 (+0.02)" in lines


def test_diff_runs_names_only_the_cells_whose_output_changed(builds: Builds) -> None:
    lines = diff_runs(builds.store, "latest~1", "latest").splitlines()
    notebooks = lines[lines.index("Notebook outputs:") + 1 :]

    # Cell 2 differs only by a memory address (0x7f3a... vs 0x7f3b...): not a change.
    # The skipped ingest of B is compared through the build that produced its products.
    assert notebooks == [
        "  evaluate: 1 cell(s) changed",
        '    cell 3 (In [3]): print(f"roc_auc {score:.2f}")',
        "  ingest: same",
    ]


def test_diff_of_a_build_with_itself(builds: Builds) -> None:
    ref = builds.a["run_id"]

    text = diff_runs(builds.store, ref, ref)

    assert "Env values: 0 differ" in text
    assert "Task parameters: 0 differ" in text
    assert "Metrics: 0 differ" in text
    assert "  evaluate: same" in text
    assert "  ingest: same" in text


def grid_build(root: Path, build_id: str, started_at: float, *, alpha2: int, module: str):
    """A build of a grid project: fit-1 and fit-2 (function tasks), their own metrics."""

    def fit(n: int, alpha: int) -> TaskRecord:
        return TaskRecord(
            f"fit-{n}",
            EXECUTED,
            params={"alpha": alpha},
            metrics={"score": 10 / alpha},
            source_hashes={"tasks.py": module},
            product_hashes={"product": "sha256:" + str(alpha) * 64},
        )

    return finished_build(
        root,
        build_id=build_id,
        started_at=started_at,
        seconds=5,
        env={"rows": 10},
        tasks=[fit(1, 1), fit(2, alpha2)],
    )


def test_diff_names_the_task_parameter_source_product_and_metric_that_changed(
    module_env: None, tmp_path: Path
) -> None:
    root = tmp_path / "grid-project"
    store = Store(root)
    store.publish(grid_build(root, "g1", T0, alpha2=2, module="sha256:" + "1" * 64))
    store.publish(grid_build(root, "g2", T0 + 60, alpha2=5, module="sha256:" + "2" * 64))

    lines = diff_runs(store, "latest~1", "latest").splitlines()

    assert "Task parameters: 1 differ:" in lines
    assert "  fit-2: alpha: 2 → 5" in lines
    assert "Env values: 0 differ" in lines
    assert "Sources: 2 differ:" in lines
    assert f"  fit-1: tasks.py: sha256:{'1' * 64} → sha256:{'2' * 64}" in lines
    assert "Products: 1 differ:" in lines
    assert f"  fit-2: product: sha256:{'2' * 64} → sha256:{'5' * 64}" in lines
    assert "Metrics: 1 differ:" in lines
    assert "  fit-2.score: 5 → 2 (-3)" in lines


def test_list_shows_a_projects_own_headline_metric(module_env: None, tmp_path: Path) -> None:
    root = tmp_path / "grid-project"
    store = Store(root)
    record = grid_build(root, "g1", T0, alpha2=4, module="sha256:" + "1" * 64)
    record.metrics = {"fit-2.score": 2.5}  # headline_metrics = ["fit-1", "fit-2"]
    store.publish(record)

    lines = list_runs(root).splitlines()

    assert lines[0].split()[-1] == "fit-2.score"
    assert lines[1].split()[-1] == "2.5000"


def test_show_lists_each_tasks_own_metrics(module_env: None, tmp_path: Path) -> None:
    root = tmp_path / "grid-project"
    store = Store(root)
    store.publish(grid_build(root, "g1", T0, alpha2=4, module="sha256:" + "1" * 64))

    lines = show_run(store, "latest").splitlines()

    tasks = {line.split()[0]: line for line in lines[lines.index("Tasks") + 2 :]}
    assert "score=10" in tasks["fit-1"]
    assert "score=2.5" in tasks["fit-2"]


# -- nbops report: the static site ------------------------------------------------------


@pytest.fixture(scope="module")
def site(builds: Builds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_site(builds.store, tmp_path_factory.mktemp("site") / "nbops-report")


def hrefs(page: Path) -> list[str]:
    return re.findall(r'href="([^"]*)"', page.read_text())


def main(page: Path) -> str:
    """The notebook's content in a report (what lies between ``<main>`` and ``</main>``)."""
    text = page.read_text()
    return text[text.index("<main>") : text.index("</main>")]


def test_index_links_every_build(site: Path, builds: Builds) -> None:
    text = site.read_text()

    assert site.name == "index.html"
    assert [h for h in hrefs(site) if h.startswith("runs/")] == [
        f"runs/{builds.b['run_id']}/index.html",
        f"runs/{builds.a['run_id']}/index.html",
    ]
    assert builds.b["run_id"][:12] in text
    assert "3f2a9c1*" in text
    assert "roc_auc 0.8300" in text
    assert "Builds of churn-project" in text


def test_every_link_in_the_site_resolves(site: Path) -> None:
    pages = sorted(site.parent.rglob("*.html"))
    assert len(pages) == 1 + 2 + 4  # index, a page per build, a report per task and build

    broken = [
        (str(page.relative_to(site.parent)), href)
        for page in pages
        for href in hrefs(page)
        if not href.startswith("#")  # a heading anchor in the same page
        and not (page.parent / href.split("#")[0]).is_file()
    ]

    assert broken == []


def test_run_page_links_task_reports(site: Path, builds: Builds) -> None:
    run_b = site.parent / "runs" / builds.b["run_id"]
    page = (run_b / "index.html").read_text()

    assert hrefs(run_b / "index.html")[0] == "../../index.html"
    assert '<a href="ingest.html">report</a> (from the producing build)' in page
    assert '<a href="evaluate.html">report</a></td>' in page
    # The reports are the builds' own (a skipped task's from the producing build), with
    # the site's navigation bar on top.
    assert main(run_b / "ingest.html") == main(builds.reports["ingest-a"])
    assert main(run_b / "evaluate.html") == main(builds.reports["evaluate-b"])
    assert hrefs(run_b / "evaluate.html")[:2] == ["index.html", "ingest.html"]
    assert "<code>train.max_iter</code></td><td>50</td>" in page
    assert "(uncommitted changes)" in page


def test_site_pages_load_nothing_from_the_network(site: Path) -> None:
    pages = [site, *sorted((site.parent / "runs").glob("*/index.html"))]
    assert len(pages) == 3

    for page in pages:
        text = page.read_text()
        assert "http://" not in text, page
        assert "https://" not in text, page


def test_copied_reports_load_nothing_from_the_network(site: Path, builds: Builds) -> None:
    # The fixture's reports are rendered by nbconvert's stock template, as builds before
    # nbops.reports were: they load require.js and MathJax from a CDN, the site's copies
    # must not.
    assert all(REMOTE_RESOURCE.search(p.read_text()) for p in builds.reports.values())
    reports = [p for p in (site.parent / "runs").rglob("*.html") if p.name != "index.html"]
    assert reports

    assert [p.name for p in reports if REMOTE_RESOURCE.search(p.read_text())] == []


@pytest.mark.parametrize("task", ["../../../escaped", "TMP/absolute", "..", "a/b\\c"])
def test_site_keeps_reports_inside_out_whatever_the_task_name(tmp_path: Path, task: str) -> None:
    # The store is input: a task name read from a crafted (or hostile) run record must
    # not choose where `nbops report` writes.
    task = task.replace("TMP", str(tmp_path))
    root = tmp_path / "project"
    files = write_notebook(root / "products", "evil", ingest_cells())
    store = Store(root)
    store.publish(
        make_record(
            root,
            "build-evil",
            T0,
            trigger="manual",
            dirty=False,
            max_iter=30,
            roc_auc=0.8,
            tasks=[TaskRecord(task, EXECUTED, duration_s=1.0, files=files)],
        )
    )
    before = {p for p in tmp_path.rglob("*") if "site" not in p.parts}
    out = tmp_path / "site" / "nbops-report"

    index = write_site(store, out)

    written = {p for p in tmp_path.rglob("*") if "site" not in p.parts} - before
    assert [p for p in written if ".nbops" not in p.parts and "mlruns" not in p.parts] == []
    (run_dir,) = (out / "runs").iterdir()
    run_page = run_dir / "index.html"
    (report,) = [p for p in run_dir.iterdir() if p.name != "index.html"]
    assert report.parent == run_dir
    link = next(h for h in hrefs(run_page) if h.endswith(".html") and "index" not in h)
    assert (run_dir / unquote(link)).resolve() == report.resolve()
    assert html.escape(task) in run_page.read_text()  # the name is shown as it is
    assert index.is_file()
