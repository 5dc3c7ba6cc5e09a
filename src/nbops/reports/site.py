"""A build's reports as one small site: a summary page and a navigation bar in each report.

At the end of every ``ploomber build`` (failed ones too) the build hooks
(:mod:`nbops.build.hooks`) call :func:`write_build_site`, which

- writes the **build summary** (``index.html``, in the folder that holds all of the
  build's HTML reports: ``products/`` for the training pipeline, ``products/monitor/``
  for the monitoring one): status, when, trigger, commit, data hash, the tasks in
  pipeline order with status, duration and upstream, the error of a failed build, the
  key metrics, the gate's (or the monitor's) decision, and the plots of the notebook
  cells tagged ``summary``;
- puts a navigation bar at the top of every report of the build, linking the summary
  and every other report with relative links, so the folder can be zipped, uploaded as
  a CI artifact or opened from disk (and drops the CDN scripts of a report rendered by
  nbconvert's stock template).

Every page is one self-contained file (plots embedded) and loads nothing from the
network. ``ploomber task NAME`` runs no build hooks: the report it renders gets its bar
back at the next ``ploomber build``.

Pure functions (:func:`nav_html`, :func:`summary_html`, :func:`notebook_plots`,
:func:`key_metrics`) build the HTML; :func:`write_build_site` reads the products and
writes the pages. Nothing here imports MLflow or Ploomber.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nbops.modeling.metrics import GREATER_IS_BETTER
from nbops.reports.page import offline, set_nav
from nbops.tracking.record import EXECUTED, FAILED, NOT_RUN, SKIPPED, BuildRecord, TaskRecord

if TYPE_CHECKING:  # imported where used: the gate's module pulls in scikit-learn
    from nbops.release.gate import ReleaseDecision

__all__ = [
    "GENERATOR",
    "SUMMARY_TAG",
    "Plot",
    "Site",
    "key_metrics",
    "nav_html",
    "notebook_plots",
    "summary_html",
    "summary_path",
    "write_build_site",
]

#: ``<meta name="generator">`` of a summary page (how summaries find each other).
GENERATOR = "nbops build summary"
#: Cells with this tag put their plots on the summary page.
SUMMARY_TAG = "summary"
MAX_PLOTS = 6
MAX_METRICS = 16
#: Shown first, in this order, when present.
_FIRST_METRICS = tuple(GREATER_IS_BETTER)
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_STATUS_TEXT = {
    EXECUTED: "executed",
    FAILED: "failed",
    SKIPPED: "up to date (skipped)",
    NOT_RUN: "not run",
}

_NAV_CSS = """\
.nbops-nav{position:sticky;top:0;z-index:100;display:flex;flex-wrap:wrap;align-items:baseline;\
gap:.3rem 1rem;margin:0 0 1rem;padding:.55rem 1rem;background:#f6f8fa;border-bottom:1px solid #d0d7de;\
font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
.nbops-nav a{color:#0b57d0;text-decoration:none}.nbops-nav a:hover{text-decoration:underline}
.nbops-nav ol{display:flex;flex-wrap:wrap;gap:.3rem .9rem;list-style:none;margin:0;padding:0}
.nbops-nav li{margin:0}.nbops-nav [aria-current]{font-weight:600;color:#1f2328}
.nbops-nav .home{font-weight:600}.nbops-nav .failed,.nbops-nav .FAILED{color:#b3261e}
.nbops-nav .not-run,.nbops-nav .missing{color:#6e7781}
.nbops-nav .badge{font-size:12px;padding:0 .45rem;border-radius:1rem;background:#dafbe1;color:#116329}
.nbops-nav .badge.FAILED{background:#ffebe9;color:#b3261e}"""

_PAGE_CSS = """\
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#fff}
main{max-width:1100px;margin:0 auto;padding:0 1.5rem 3rem}
h1{font-size:1.6rem;margin:1.2rem 0 .8rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{text-align:left;padding:.3rem .8rem .3rem 0;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;color:#57606a}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.tasks td:nth-child(-n+3){white-space:nowrap}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.7rem;overflow:auto;max-height:28rem;white-space:pre-wrap}
a{color:#0b57d0}.status{font-weight:600}.FINISHED,.executed,.pass{color:#116329}.FAILED,.failed,.fail{color:#b3261e}
.skipped{color:#57606a}.not-run{color:#6e7781}.muted{color:#57606a}
.callout{border-left:4px solid #b3261e;background:#ffebe9;padding:.6rem 1rem;margin:1rem 0}
.decision{border-left:4px solid #0b57d0;background:#f1f6ff;padding:.6rem 1rem;margin:.6rem 0}
.decision.alert{border-color:#b3261e;background:#ffebe9}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1rem}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5rem;background:#fff}
figure img{width:100%;height:auto;display:block}figcaption{font-size:13px;color:#57606a;margin-top:.3rem}
ul.checks{padding-left:1.2rem;margin:.4rem 0}footer{margin-top:2.5rem;font-size:13px;color:#57606a}"""


@dataclass
class Plot:
    """One image from an executed notebook, for the summary page."""

    task: str
    mime: str
    data: str  # base64
    caption: str
    cell_id: str | None = None


@dataclass
class Site:
    """Where a build's pages are: the summary, and each task's report that exists."""

    summary: Path
    title: str
    tasks: list[TaskRecord]  # in pipeline order
    reports: dict[str, Path] = field(default_factory=dict)
    upstream: dict[str, list[str]] = field(default_factory=dict)


# -- pure: HTML from plain data -------------------------------------------------------


def href(target: Path, *, page: Path) -> str:
    """A relative link from ``page`` (a file) to ``target``, URL-quoted."""
    return quote(Path(os.path.relpath(target, page.parent)).as_posix())


def summary_path(tasks: Iterable[TaskRecord]) -> Path | None:
    """The summary goes in the innermost folder holding every HTML report of the build:
    ``index.html``, or ``summary.html`` if a report already has that name."""
    reports = [Path(os.path.abspath(t.products["html"])) for t in tasks if t.products.get("html")]
    if not reports:
        return None
    folder = Path(os.path.commonpath([str(p.parent) for p in reports]))
    name = "index.html" if folder / "index.html" not in reports else "summary.html"
    return folder / name


def nav_html(site: Site, *, here: Path, status: str) -> str:
    """The bar at the top of every page of the build (``here`` is the page's path)."""
    items = []
    for task in site.tasks:
        report = site.reports.get(task.name)
        label = html.escape(task.name)
        title = _STATUS_TEXT.get(task.status, task.status)
        if task.duration_s is not None and task.status == EXECUTED:
            title += f", {task.duration_s:.1f} s"
        if report is not None and task.status == NOT_RUN:
            title += ": this report is from an earlier build"
        attrs = f'class="{html.escape(task.status)}" title="{html.escape(title)}"'
        if report is None:
            items.append(f'<li><span class="missing" title="no report">{label}</span></li>')
        elif report == here:
            items.append(f'<li><span {attrs} aria-current="page">{label}</span></li>')
        else:
            items.append(f'<li><a {attrs} href="{href(report, page=here)}">{label}</a></li>')
    home = (
        '<span class="home" aria-current="page">Build summary</span>'
        if here == site.summary
        else f'<a class="home" href="{href(site.summary, page=here)}">Build summary</a>'
    )
    return (
        f'<nav class="nbops-nav" aria-label="Reports of this build"><style>{_NAV_CSS}</style>'
        f'{home}<span class="badge {html.escape(status)}">{html.escape(status.lower())}</span>'
        f"<ol>{''.join(items)}</ol></nav>"
    )


def key_metrics(metrics: dict[str, float], *, limit: int = MAX_METRICS) -> list[tuple[str, float]]:
    """The metrics worth a glance: the usual model metrics first; when there are many,
    only top-level names (``drift_share``, not ``drift.plan.jensenshannon``)."""
    names = [m for m in _FIRST_METRICS if m in metrics]
    rest = [m for m in metrics if m not in names]
    if len(metrics) > limit:
        rest = [m for m in rest if "." not in m]
    return [(m, metrics[m]) for m in (names + rest)[:limit]]


def notebook_plots(
    notebook: dict[str, Any], task: str, *, tag: str | None = SUMMARY_TAG
) -> list[Plot]:
    """Images output by the notebook's cells tagged ``tag`` (every cell when ``tag`` is
    None), captioned with the heading of the markdown cell before them."""
    plots, heading = [], task
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            first = next((line for line in source.splitlines() if line.strip()), "")
            heading = first.lstrip("#").strip() or heading
            continue
        if tag is not None and tag not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            mime = next((m for m in _IMAGE_TYPES if m in data), None)
            if mime is None:
                continue
            value = "".join(data[mime]) if isinstance(data[mime], list) else str(data[mime])
            if mime == "image/svg+xml":
                value = base64.b64encode(value.encode()).decode()
            value = "".join(value.split())
            if not _BASE64.fullmatch(value):
                continue  # not an image: it goes into an attribute of the page, as is
            plots.append(Plot(task, mime, value, heading, cell.get("id")))
    return plots


def summary_html(
    record: BuildRecord,
    site: Site,
    *,
    plots: Sequence[Plot] = (),
    decision: tuple[ReleaseDecision | dict[str, Any], Path] | None = None,
    metrics_file: Path | None = None,
    related: Sequence[tuple[str, Path]] = (),
) -> str:
    """The build summary page."""
    page = site.summary
    status = record.status
    failed = [t for t in site.tasks if t.status == FAILED]
    parts = [
        f"<h1>{html.escape(site.title)}: "
        f'<span class="status {html.escape(status)}">{html.escape(status.lower())}</span></h1>',
        _facts(record, failed),
    ]
    if status == "FAILED":
        parts.append(_failure(record, failed, site, page))
    metrics = key_metrics(record.metrics)
    if metrics:
        rows = "".join(
            f'<tr><th scope="row">{html.escape(name)}</th><td class="num">{_number(value)}</td></tr>'
            for name, value in metrics
        )
        link = (
            f' <a href="{href(metrics_file, page=page)}">all metrics ({html.escape(metrics_file.name)})</a>'
            if metrics_file
            else ""
        )
        parts.append(f"<h2>Key metrics</h2><table>{rows}</table><p>{link.strip()}</p>")
    if decision:
        parts.append(_decision(*decision, page=page))
    parts.append(_tasks_table(site, page))
    if plots:
        figures = []
        for plot in plots:
            report = site.reports.get(plot.task)
            image = (
                f'<img src="data:{plot.mime};base64,{plot.data}" '
                f'alt="{html.escape(plot.task)}: {html.escape(plot.caption)}">'
            )
            if report is not None:
                anchor = f"#cell-id={quote(plot.cell_id)}" if plot.cell_id else ""
                image = f'<a href="{href(report, page=page)}{anchor}">{image}</a>'
            figures.append(
                f"<figure>{image}<figcaption>{html.escape(plot.task)}: "
                f"{html.escape(plot.caption)}</figcaption></figure>"
            )
        parts.append(f'<h2>Plots</h2><div class="plots">{"".join(figures)}</div>')
    footer = [
        f"Generated by nbops at {_when(time.time())} for build <code>{html.escape(record.build_id)}</code>; "
        "this page and every report open offline."
    ]
    if related:
        footer.append(
            "Other summaries here: "
            + ", ".join(
                f'<a href="{href(path, page=page)}">{html.escape(label)}</a>'
                for label, path in related
            )
            + "."
        )
    parts.append(f"<footer>{' '.join(footer)}</footer>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="{GENERATOR}">'
        f"<title>{html.escape(site.title)}: build summary</title><style>{_PAGE_CSS}</style></head>"
        f"<body>\n{nav_html(site, here=page, status=status)}\n<main>{''.join(parts)}</main></body></html>\n"
    )


def _facts(record: BuildRecord, failed: list[TaskRecord]) -> str:
    took = (
        f" (took {record.ended_at - record.started_at:.1f} s)"
        if record.ended_at and record.ended_at >= record.started_at
        else ""
    )
    git = record.git or {}
    commit = "not a git repository"
    if git.get("commit"):
        commit = f"<code>{html.escape(git['commit'][:12])}</code>"
        if git.get("branch"):
            commit += f" on {html.escape(git['branch'])}"
        if git.get("dirty"):
            commit += " with uncommitted changes"
    data = "-"
    if record.data.get("content_hash"):
        data = f"<code>{html.escape(record.data['content_hash'])}</code>"
        if record.data.get("rows") is not None:
            rows, columns = record.data["rows"], record.data.get("columns", "?")
            data += f" ({html.escape(str(rows))} rows × {html.escape(str(columns))} columns)"
    state = html.escape(record.status.lower())
    if failed:
        state += ": " + ", ".join(f"task {html.escape(t.name)} failed" for t in failed)
    counts = Counter(t.status for t in record.tasks)
    order = [*_STATUS_TEXT, *sorted(set(counts) - set(_STATUS_TEXT))]
    tasks = ", ".join(f"{counts[s]} {_STATUS_TEXT.get(s, s)}" for s in order if counts[s])
    rows = [
        ("status", f'<span class="status {html.escape(record.status)}">{state}</span>'),
        ("started", f"{_when(record.started_at)}{took}"),
        ("trigger", html.escape(record.trigger)),
        ("command", f"<code>{html.escape(' '.join(record.command))}</code>"),
        ("commit", commit),
        ("data", data),
        ("tasks", html.escape(tasks)),
    ]
    return (
        "<table>"
        + "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
        + "</table>"
    )


def _failure(record: BuildRecord, failed: list[TaskRecord], site: Site, page: Path) -> str:
    parts = []
    for task in failed:
        report = site.reports.get(task.name)
        link = (
            f' (<a href="{href(report, page=page)}">its report</a> shows the error cell)'
            if report
            else ""
        )
        head = (task.error or "").strip().split("\n\n")[0]
        parts.append(
            f"<p>Task <strong>{html.escape(task.name)}</strong> failed{link}:</p>"
            + (f"<pre>{html.escape(head)}</pre>" if head else "")
        )
    if record.error:
        parts.append(
            f"<details><summary>Ploomber's error</summary><pre>{html.escape(record.error)}</pre></details>"
        )
    return '<h2>What went wrong</h2><div class="callout">' + "".join(parts) + "</div>"


def _decision(decision: ReleaseDecision | dict[str, Any], path: Path, *, page: Path) -> str:
    """The gate's decision (its checks), or the monitor's (``breached`` and reasons)."""
    from nbops.release.gate import ReleaseDecision

    items = []
    if isinstance(decision, ReleaseDecision):
        alert, action, headline = False, decision.action, decision.summary
        for check in decision.checks:
            mark = "✓" if check.passed else "✗"
            items.append(
                f'<li class="{"pass" if check.passed else "fail"}">{mark} <strong>{html.escape(check.name)}</strong>: '
                f"{html.escape(check.detail)}</li>"
            )
    else:
        alert, action = bool(decision.get("breached")), None
        headline = decision.get("error") or (
            "Alert: a monitoring threshold was crossed." if alert else "All clear."
        )
        items += [f"<li>{html.escape(str(r))}</li>" for r in decision.get("reasons") or []]
    return (
        f'<h2>Decision</h2><div class="decision{" alert" if alert else ""}">'
        + (f"<p><strong>{html.escape(str(action))}</strong></p>" if action else "")
        + (f"<p>{html.escape(str(headline))}</p>" if headline else "")
        + (f'<ul class="checks">{"".join(items)}</ul>' if items else "")
        + f'<p><a href="{href(path, page=page)}">{html.escape(path.name)}</a></p></div>'
    )


def _tasks_table(site: Site, page: Path) -> str:
    rows = []
    for task in site.tasks:
        report = site.reports.get(task.name)
        link = f'<a href="{href(report, page=page)}">report</a>' if report else "-"
        if report and task.status == NOT_RUN:
            link += ' <span class="muted">(from an earlier build)</span>'
        note = ""
        if task.status == SKIPPED and task.produced_by:
            note = f"products of build <code>{html.escape(task.produced_by.get('build_id', '')[:12])}</code>"
        elif task.error:
            note = html.escape(_shorten(task.error.strip().splitlines()[0], 160))
        duration = f"{task.duration_s:.1f} s" if task.duration_s is not None else "-"
        after = ", ".join(site.upstream.get(task.name, []))
        rows.append(
            f"<tr><td>{html.escape(task.name)}</td>"
            f'<td class="{html.escape(task.status)}">{html.escape(_STATUS_TEXT.get(task.status, task.status))}</td>'
            f'<td class="num">{duration}</td><td>{html.escape(after) or "-"}</td><td>{link}</td><td>{note}</td></tr>'
        )
    return (
        '<h2>Tasks</h2><table class="tasks"><tr><th>task</th><th>status</th><th>duration</th><th>after</th>'
        f"<th>report</th><th>note</th></tr>{''.join(rows)}</table>"
    )


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


# -- reading products and writing pages -----------------------------------------------


def write_build_site(
    record: BuildRecord,
    *,
    order: Sequence[str] | None = None,
    upstream: dict[str, list[str]] | None = None,
    title: str | None = None,
    scrub: Any = None,
) -> Path | None:
    """Write the build's summary page and the navigation bar of each of its reports.

    Args:
        order: task names in pipeline order (default: the record's order).
        upstream: each task's upstream task names, shown in the task table.
        title: the summary's heading (default: the project's name).
        scrub: a function applied to the summary's text before it is written (secrets).

    Returns the summary page, or None when no task of the build has an HTML report.
    """
    position = {name: i for i, name in enumerate(order or [])}
    tasks = sorted(record.tasks, key=lambda t: position.get(t.name, len(position)))
    summary = summary_path(tasks)
    if summary is None:
        return None
    if summary.is_file() and GENERATOR not in summary.read_text(errors="replace")[:2000]:
        summary = summary.with_name("nbops-summary.html")  # never overwrite a page of yours
    reports = {
        t.name: Path(os.path.abspath(t.products["html"]))
        for t in tasks
        if t.products.get("html") and Path(t.products["html"]).is_file()
    }
    site = Site(summary, title or record.project, tasks, reports, dict(upstream or {}))
    used = [t for t in tasks if t.status in (EXECUTED, SKIPPED)]
    page = summary_html(
        record,
        site,
        plots=_plots(used),
        decision=_decision_file(used),
        metrics_file=_product_file(used, "metrics"),
        related=_related_summaries(summary),
    )
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(scrub(page) if scrub else page, encoding="utf-8")
    for path in reports.values():
        text = path.read_text(encoding="utf-8", errors="replace")
        # offline(): a report rendered by nbconvert's stock template (an up-to-date task
        # of a pipeline that did not use nbops' exporter yet) would load from CDNs.
        updated = set_nav(offline(text), nav_html(site, here=path, status=record.status))
        if updated != text:
            path.write_text(updated, encoding="utf-8")
    return summary


def _notebook(task: TaskRecord) -> dict[str, Any] | None:
    path = task.products.get("nb")
    if not path or not path.endswith(".ipynb") or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError:
        return None


def _plots(tasks: list[TaskRecord]) -> list[Plot]:
    """Plots of the cells tagged ``summary``; without any, the first plot of the task
    that wrote the metrics."""
    notebooks = [(t, nb) for t in tasks if (nb := _notebook(t)) is not None]
    plots = [p for t, nb in notebooks for p in notebook_plots(nb, t.name)]
    if not plots:
        for task, nb in notebooks:
            if task.products.get("metrics"):
                plots = notebook_plots(nb, task.name, tag=None)[:1]
    return plots[:MAX_PLOTS]


def _product_file(tasks: list[TaskRecord], key: str) -> Path | None:
    found = None
    for task in tasks:
        path = task.products.get(key)
        if path and path.endswith(".json") and Path(path).is_file():
            found = Path(os.path.abspath(path))
    return found


def _decision_file(
    tasks: list[TaskRecord],
) -> tuple[ReleaseDecision | dict[str, Any], Path] | None:
    """The build's decision file: the gate's, read as a :class:`ReleaseDecision`, or the
    monitor's (``{"breached", "reasons", ...}``)."""
    from nbops.errors import ReleaseError
    from nbops.release.gate import ReleaseDecision

    path = _product_file(tasks, "decision")
    if path is None:
        return None
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not isinstance(decision, dict):
        return None
    if "breached" in decision:
        return decision, path
    try:
        return ReleaseDecision.from_dict(decision), path
    except ReleaseError as exc:  # the page still shows the build, and says what is wrong
        return {"breached": True, "error": str(exc)}, path


_TITLE = re.compile(r"<title>(.*?): build summary</title>", re.S)


def _related_summaries(summary: Path) -> list[tuple[str, Path]]:
    """Summaries of the project's other pipelines: in the folder above, or one below."""
    candidates = [
        summary.parent.parent / "index.html",
        *sorted(summary.parent.glob("*/index.html")),
    ]
    found = []
    for path in candidates:
        if path == summary or not path.is_file():
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
        if GENERATOR in head:
            match = _TITLE.search(head)
            found.append((html.unescape(match.group(1)) if match else path.parent.name, path))
    return found
