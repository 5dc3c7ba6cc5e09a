"""The build's site: the summary page and the navigation bar of every report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from nbops.reports.exporter import render_html
from nbops.reports.page import NAV_START
from nbops.reports.site import (
    GENERATOR,
    Site,
    href,
    key_metrics,
    nav_html,
    notebook_plots,
    summary_path,
    write_build_site,
)
from nbops.tracking.record import EXECUTED, FAILED, NOT_RUN, SKIPPED, BuildRecord, TaskRecord
from tests.reports.conftest import png, report_cells

COMMIT = "3f2a9c1d5e7b9a0c1d2e3f405162738495a6b7c8"
CONTENT_HASH = "sha256:" + "5c1e" * 16
DECISION = {  # as the gate writes it (nbops.release.gate.ReleaseDecision)
    "model_name": "churn",
    "policy": {"primary_metric": "roc_auc", "min_metric": 0.6},
    "champion_version": None,
    "action": "promote",
    "summary": "Promote to champion: there is no champion yet and every floor is met.",
    "checks": [
        {"name": "floor", "passed": True, "detail": "roc_auc 0.8300 ≥ required 0.6"},
        {"name": "latency", "passed": False, "detail": "9.1 ms per row (budget 5.0 ms)"},
    ],
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("href"):
            self.hrefs.append(values["href"])
        if tag == "img":
            self.images.append(values.get("src", ""))


def links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


def broken_links(pages: list[Path]) -> list[tuple[str, str]]:
    return [
        (page.name, link)
        for page in pages
        for link in links(page).hrefs
        if not link.startswith("#") and not (page.parent / unquote(link.split("#")[0])).is_file()
    ]


@dataclass
class Build:
    record: BuildRecord
    products: Path

    @property
    def reports(self) -> list[Path]:
        return sorted(p for p in self.products.rglob("*.html") if p.name != "index.html")

    def write(self, **kw) -> Path:
        summary = write_build_site(self.record, **kw)
        assert summary is not None
        return summary


@pytest.fixture
def build(tmp_path: Path, make_notebook) -> Build:
    """A finished build of ingest → train-linear → evaluate → gate, the gate skipped
    (its products from an earlier build), with real reports rendered by nbops."""
    products = tmp_path / "churn" / "products"

    def task(name: str, nb: str, status: str = EXECUTED, cells=None, **products_) -> TaskRecord:
        notebook = make_notebook(products / nb, cells)
        html = notebook.with_suffix(".html")
        render_html(notebook, html)
        return TaskRecord(
            name=name,
            status=status,
            duration_s=1.5 if status == EXECUTED else None,
            products={"nb": str(notebook), "html": str(html), **products_},
        )

    (products / "release").mkdir(parents=True)
    (products / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": 0.83}}))
    (products / "release" / "decision.json").write_text(json.dumps(DECISION))
    plain = [new_markdown_cell("# Ingest"), new_code_cell("1", execution_count=1)]
    tasks = [
        task(
            "gate",
            "gate.ipynb",
            SKIPPED,
            plain,
            decision=str(products / "release" / "decision.json"),
        ),
        task("ingest", "ingest.ipynb", cells=plain),
        task("train-linear", "train/linear-0.ipynb", cells=plain),
        task("evaluate", "evaluate.ipynb", metrics=str(products / "metrics.json")),
    ]
    tasks[0].produced_by = {"build_id": "b" * 32}
    record = BuildRecord(
        build_id="a" * 32,
        project="churn",
        root=str(products.parent),
        command=["ploomber", "build", "--env--warehouse--password", "hunter2"],
        trigger="ci",
        started_at=1_700_000_000.0,
        ended_at=1_700_000_042.0,
        status="FINISHED",
        git={"commit": COMMIT, "branch": "main", "dirty": True},
        data={"content_hash": CONTENT_HASH, "rows": 1500, "columns": 16},
        metrics={"roc_auc": 0.83, "accuracy": 0.79, "f1": 0.4, "log_loss": 0.45},
        tasks=tasks,
    )
    return Build(record, products)


ORDER = ["ingest", "train-linear", "evaluate", "gate"]
UPSTREAM = {"train-linear": ["ingest"], "evaluate": ["train-linear"], "gate": ["evaluate"]}


# -- where pages go and how they link ---------------------------------------------------


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        (["products/a.html", "products/train/b.html"], "products/index.html"),
        (["products/monitor/a.html", "products/monitor/b.html"], "products/monitor/index.html"),
        (["products/index.html", "products/b.html"], "products/summary.html"),
        ([], None),
    ],
)
def test_the_summary_goes_in_the_folder_holding_every_report(tmp_path, reports, expected):
    tasks = [
        TaskRecord(f"t{i}", EXECUTED, products={"html": str(tmp_path / r)})
        for i, r in enumerate(reports)
    ]
    tasks.append(TaskRecord("no-report", EXECUTED, products={"data": str(tmp_path / "x.csv")}))

    found = summary_path(tasks)

    assert found == (tmp_path / expected if expected else None)


@pytest.mark.parametrize(
    ("target", "page", "expected"),
    [
        ("products/train/a b.html", "products/index.html", "train/a%20b.html"),
        ("products/index.html", "products/train/a.html", "../index.html"),
        ("products/evaluate.html", "products/gate.html", "evaluate.html"),
    ],
)
def test_links_are_relative(tmp_path, target, page, expected):
    assert href(tmp_path / target, page=tmp_path / page) == expected


def test_the_bar_marks_the_current_page_and_skips_missing_reports(tmp_path):
    reports = {"ingest": tmp_path / "ingest.html", "train": tmp_path / "train" / "a.html"}
    site = Site(
        tmp_path / "index.html",
        "churn",
        [
            TaskRecord("ingest", EXECUTED, duration_s=2.0),
            TaskRecord("train", FAILED),
            TaskRecord("evaluate", NOT_RUN),
        ],
        reports,
    )

    bar = nav_html(site, here=reports["train"], status="FAILED")

    assert '<a class="home" href="../index.html">Build summary</a>' in bar
    assert '<a class="executed" title="executed, 2.0 s" href="../ingest.html">ingest</a>' in bar
    assert '<span class="failed" title="failed" aria-current="page">train</span>' in bar
    assert '<span class="missing" title="no report">evaluate</span>' in bar
    assert '<span class="badge FAILED">failed</span>' in bar


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"f1": 0.4, "zeta": 1.0, "roc_auc": 0.8}, ["roc_auc", "f1", "zeta"]),
        # many metrics: the top-level names only
        (
            {"drift_share": 0.4, **{f"drift.c{i}.psi": 0.1 for i in range(20)}, "rows": 10.0},
            ["drift_share", "rows"],
        ),
    ],
)
def test_key_metrics(metrics, expected):
    assert [name for name, _ in key_metrics(metrics)] == expected


def test_plots_come_from_cells_tagged_summary():
    cells = report_cells()
    cells.append(
        new_code_cell(
            "svg()",
            execution_count=9,
            metadata={"tags": ["summary"]},
            outputs=[new_output("display_data", data={"image/svg+xml": "<svg/>"})],
        )
    )
    notebook = {"cells": [c for c in cells]}

    tagged = notebook_plots(notebook, "evaluate")
    every = notebook_plots(notebook, "evaluate", tag=None)

    assert [(p.mime, p.caption) for p in tagged] == [
        ("image/png", "How the models are right and wrong"),
        ("image/svg+xml", "How the models are right and wrong"),
    ]
    assert tagged[0].data == png() and tagged[1].data == "PHN2Zy8+"
    assert len(every) == 2
    assert notebook_plots({"cells": report_cells(tag_plot=False)}, "evaluate") == []


# -- the pages a build leaves -----------------------------------------------------------


def test_every_page_links_the_summary_and_every_other_report(build):
    summary = build.write(order=ORDER, upstream=UPSTREAM)

    assert summary == build.products / "index.html"
    pages = [summary, *build.reports]
    assert broken_links(pages) == []
    for report in build.reports:
        text = report.read_text()
        assert text.count(NAV_START) == 1
        targets = {
            (report.parent / unquote(h)).resolve()
            for h in links(report).hrefs
            if not h.startswith("#")
        }
        assert targets >= {p.resolve() for p in pages if p != report}, report.name
    # in pipeline order, whatever order the tasks finished in
    bar = (build.products / "train" / "linear-0.html").read_text()
    assert [bar.index(f">{n}<") for n in ORDER] == sorted(bar.index(f">{n}<") for n in ORDER)


def test_a_decision_file_the_gate_cannot_have_written_is_named_not_shown_as_a_release(build):
    decision = build.products / "release" / "decision.json"
    decision.write_text(json.dumps({"action": "promote", "summary": "ship it"}))

    text = build.write(order=ORDER, upstream=UPSTREAM).read_text()

    assert "ship it" not in text
    assert '<div class="decision alert">' in text
    assert "The gate&#x27;s decision lacks model_name, policy" in text


def test_the_summary_tells_status_lineage_metrics_decision_and_shows_plots(build):
    text = build.write(order=ORDER, upstream=UPSTREAM).read_text()

    assert f'<meta name="generator" content="{GENERATOR}">' in text
    assert "<title>churn: build summary</title>" in text
    assert '<span class="status FINISHED">finished</span>' in text
    assert f"<code>{COMMIT[:12]}</code> on main with uncommitted changes" in text
    assert f"<code>{CONTENT_HASH}</code> (1500 rows × 16 columns)" in text
    assert "<td>ci</td>" in text
    assert "3 executed, 1 up to date (skipped)" in text
    # key metrics, the usual ones first, and the file with all of them
    assert re.findall(r'<th scope="row">(\w+)</th><td class="num">', text) == [
        "roc_auc",
        "f1",
        "accuracy",
        "log_loss",
    ]
    assert '<td class="num">0.8300</td>' in text
    assert '<a href="metrics.json">all metrics (metrics.json)</a>' in text
    # the gate's decision, every check
    assert "Promote to champion" in text and '<a href="release/decision.json">' in text
    assert (
        '<li class="fail">✗ <strong>latency</strong>: 9.1 ms per row (budget 5.0 ms)</li>' in text
    )
    # the tasks in pipeline order with status, duration, upstream, report
    rows = re.findall(r"<tr><td>([\w-]+)</td><td class=\"([\w-]+)\">", text)
    assert rows == [
        ("ingest", "executed"),
        ("train-linear", "executed"),
        ("evaluate", "executed"),
        ("gate", "skipped"),
    ]
    assert "<td>train-linear</td>" in text and '<a href="train/linear-0.html">report</a>' in text
    assert f"products of build <code>{'b' * 12}</code>" in text
    # the tagged plot, linked to its cell in the report
    assert links(build.products / "index.html").images == [f"data:image/png;base64,{png()}"]
    assert '<a href="evaluate.html#cell-id=' in text


def test_writing_again_replaces_the_bar(build):
    build.write(order=ORDER)
    build.record.status = "FAILED"
    build.write(order=ORDER)

    for report in build.reports:
        text = report.read_text()
        assert text.count(NAV_START) == 1 and '<span class="badge FAILED">failed</span>' in text


def test_a_failed_build_says_which_task_failed_and_why(build):
    evaluate = build.record.task("evaluate")
    evaluate.status, evaluate.duration_s = FAILED, 0.7
    evaluate.error = "DataSourceError: Data file 'x.csv' does not exist.\n\nTraceback ..."
    gate = build.record.task("gate")
    gate.status, gate.produced_by = NOT_RUN, None
    build.record.status = "FAILED"
    build.record.error = "DAGBuildError: Failed to build the DAG"

    text = build.write(order=ORDER).read_text()

    assert '<span class="status FAILED">failed: task evaluate failed</span>' in text
    assert "<h2>What went wrong</h2>" in text
    assert (
        'Task <strong>evaluate</strong> failed (<a href="evaluate.html">its report</a> shows the error cell)'
        in text
    )
    assert "<pre>DataSourceError: Data file &#x27;x.csv&#x27; does not exist.</pre>" in text
    assert "DAGBuildError: Failed to build the DAG" in text
    # a report left over from an earlier build is linked, and said to be so
    assert (
        '<a href="gate.html">report</a> <span class="muted">(from an earlier build)</span>' in text
    )
    bar = (build.products / "ingest.html").read_text()
    assert 'title="not run: this report is from an earlier build" href="gate.html"' in bar
    # a failed build has no decision of its own to show
    assert "<h2>Decision</h2>" not in text


def test_secrets_are_scrubbed_from_the_summary(build):
    text = build.write(scrub=lambda page: page.replace("hunter2", "***REDACTED***")).read_text()

    assert "hunter2" not in text and "***REDACTED***" in text


def test_summaries_of_the_project_s_other_pipelines_are_linked(build, tmp_path):
    monitor = build.products / "monitor"
    monitor.mkdir()
    report = monitor / "drift.html"
    report.write_text("<html><body>drift</body></html>")
    record = BuildRecord(
        build_id="c" * 32,
        project="churn",
        root=str(build.products.parent),
        command=["ploomber", "build", "-e", "pipeline.monitor.yaml"],
        trigger="schedule",
        started_at=1_700_000_100.0,
        status="FINISHED",
        tasks=[TaskRecord("monitor-drift", EXECUTED, products={"html": str(report)})],
    )
    training = build.write()

    monitoring = write_build_site(record, title="churn (pipeline.monitor.yaml)")

    assert monitoring == monitor / "index.html"
    assert '<a href="../index.html">churn</a>' in monitoring.read_text()
    assert (
        '<a href="monitor/index.html">churn (pipeline.monitor.yaml)</a>'
        in build.write().read_text()
    )
    assert broken_links([training, monitoring, report]) == []


def test_a_build_without_html_reports_has_no_summary(tmp_path):
    record = BuildRecord("d" * 32, "p", str(tmp_path), ["ploomber", "build"], "manual", 0.0)
    record.tasks = [TaskRecord("t", EXECUTED, products={"data": str(tmp_path / "x.csv")})]

    assert write_build_site(record) is None
    assert list(tmp_path.iterdir()) == []


def test_a_page_that_is_not_a_summary_is_never_overwritten(build):
    (build.products / "index.html").write_text("<html><body>my own page</body></html>")

    summary = build.write()

    assert summary == build.products / "nbops-summary.html"
    assert (build.products / "index.html").read_text() == "<html><body>my own page</body></html>"
    assert build.write() == summary


def test_without_tagged_cells_the_summary_shows_the_first_plot_of_the_metrics_task(
    build, make_notebook
):
    evaluate = build.record.task("evaluate")
    make_notebook(evaluate.products["nb"], report_cells(tag_plot=False))

    summary = build.write()

    assert len(links(summary).images) == 1


def test_a_report_rendered_by_nbconvert_s_own_template_is_made_offline(build):
    stock = build.products / "ingest.html"
    stock.write_text(
        '<html><head><script src="https://cdnjs.cloudflare.com/x/require.min.js"></script>'
        "</head><body><main>ingest</main></body></html>"
    )

    build.write()

    text = stock.read_text()
    assert "cdnjs" not in text and NAV_START in text and "<main>ingest</main>" in text
