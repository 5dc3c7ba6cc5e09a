"""Reviewing builds without rerunning anything: list, show, diff, and a static site.

Everything here reads the tracking store through :class:`~nbops.tracking.store.Store`
and returns plain text or files; the CLI only prints.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nbops.tracking.redact import display_url
from nbops.tracking.store import Store, embedded_builds, tracking_uri

__all__ = ["NotebookChange", "diff_runs", "list_runs", "show_run", "write_site"]

KEY_METRICS = ("roc_auc", "pr_auc", "f1", "accuracy", "rmse", "mae", "r2")
#: Metric columns of `nbops runs list` at most.
_MAX_COLUMNS = 5
# Output that differs between identical runs (same rules as tests/nbval_sanitize.cfg).
_VOLATILE = [
    (re.compile(r"0x[0-9a-fA-F]+"), "0xADDRESS"),
    (re.compile(r"in \d+(\.\d+)? s\b"), "in DURATION s"),
]


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _commit(tags: dict[str, str]) -> str:
    commit = tags.get("git.commit", "")[:7] or "-"
    return commit + ("*" if tags.get("git.dirty") == "true" else "")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def list_runs(store: Store | Path, *, limit: int = 20) -> str:
    """A table of the latest builds: id, time, trigger, status, commit, data, key metrics.

    ``store`` may be a project folder: its embedded store is then read directly (fast)
    and MLflow is loaded only for a remote store.
    """
    if isinstance(store, Path):
        root = store
        runs = embedded_builds(root, limit=limit)
        if runs is None:
            store = Store(root)
            runs = store.builds(limit=limit)
        uri = tracking_uri(root)
    else:
        runs, uri = store.builds(limit=limit), store.uri
    if not runs:
        from nbops.tracking.redact import display_url

        return (
            f"No builds recorded in {display_url(uri)} yet. Run `ploomber build` (or `make build`)."
        )
    # The builds' headline metrics: nbops' usual ones first, then a project's own (the
    # headline_metrics setting of an adopted project), a few at most.
    present = {m for r in runs for m in r.data.metrics}
    metrics = [m for m in KEY_METRICS if m in present]
    metrics += sorted(present - set(KEY_METRICS))[: max(0, _MAX_COLUMNS - len(metrics))]
    rows = []
    for r in runs:
        tags = r.data.tags
        rows.append(
            [
                r.info.run_id[:12],
                _when(r.info.start_time),
                tags.get("nbops.trigger", "-"),
                tags.get("nbops.status", r.info.status),
                _commit(tags),
                (tags.get("data.content_hash", "")[7:19] or "-"),
                *(f"{r.data.metrics[m]:.4f}" if m in r.data.metrics else "-" for m in metrics),
            ]
        )
    return (
        _table(rows, ["RUN", "STARTED", "TRIGGER", "STATUS", "COMMIT", "DATA", *metrics])
        + "\n(* = uncommitted changes)"
    )


def show_run(store: Store, ref: str) -> str:
    """Everything recorded about one build: lineage, parameters, metrics, tasks."""
    run = store.resolve(ref)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    duration = (run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None
    git = f"{tags.get('git.commit') or 'not a git repository'}"
    if tags.get("git.branch"):
        git += f" on {tags['git.branch']}"
    if tags.get("git.dirty") == "true":
        git += " — uncommitted changes (artifact git/diff.patch)"
    lines = [
        f"Build run {run.info.run_id} ({tags.get('mlflow.runName', '')})",
        f"  status    {tags.get('nbops.status', run.info.status)}  (trigger: {tags.get('nbops.trigger', '-')})",
        f"  started   {_when(run.info.start_time)}  ended {_when(run.info.end_time)}"
        + (f"  ({duration:.1f} s)" if duration else ""),
        f"  command   {tags.get('nbops.command', '-')}",
        f"  git       {git}",
        f"  data      {tags.get('data.content_hash') or '-'}"
        + (f"  (snapshot run {tags['data.run_id']})" if tags.get("data.run_id") else ""),
        f"  python    {tags.get('python.version', '-')} (packages: artifact environment/requirements.txt)",
        f"  artifacts {display_url(run.info.artifact_uri)}",
    ]
    if tags.get("nbops.error"):
        lines += ["  error     " + tags["nbops.error"].strip().splitlines()[-1]]
    lines += ["", "Sources"] + [
        f"  {k[len('source.') :]}  {v}"
        for k, v in sorted(params.items())
        if k.startswith("source.")
    ]
    lines += ["", "Parameters (env.yaml as used)"] + [
        f"  {k[len('env.') :]} = {v}" for k, v in sorted(params.items()) if k.startswith("env.")
    ]
    if metrics:
        lines += ["", "Metrics"] + [f"  {k} = {v:.6g}" for k, v in sorted(metrics.items())]
    rows = []
    for child in store.children(run.info.run_id):
        ct = child.data.tags
        status = ct.get("nbops.status", child.info.status)
        note = ""
        if status == "skipped":
            note = f"up to date: products from run {ct.get('nbops.produced_by_run', '')[:12] or '?'} (build {ct.get('nbops.produced_by_build', '')[:12]})"
        elif ct.get("nbops.error"):
            note = ct["nbops.error"].strip().splitlines()[0][:100]
        dur = child.data.metrics.get("duration_s")
        own = {k: v for k, v in child.data.metrics.items() if k != "duration_s"}
        rows.append(
            [
                ct.get("nbops.task", "?"),
                status,
                f"{dur:.1f} s" if dur is not None else "-",
                child.info.run_id[:12],
                ", ".join(f"{k}={v:.4g}" for k, v in sorted(own.items()))[:60] or "-",
                note,
            ]
        )
    lines += [
        "",
        "Tasks",
        _table(rows, ["TASK", "STATUS", "DURATION", "RUN", "METRICS", "NOTE"]),
    ]
    return "\n".join(lines)


@dataclass
class NotebookChange:
    task: str
    cells: list[str] = field(default_factory=list)  # "cell 4 (In [5]): first line of source"
    note: str = ""


def diff_runs(store: Store, ref_a: str, ref_b: str) -> str:
    """What differs between two builds: commits, data, parameters, sources, metrics, and
    which notebook cells' outputs changed."""
    a, b = store.resolve(ref_a), store.resolve(ref_b)
    ta, tb = a.data.tags, b.data.tags
    lines = [
        f"A = {a.info.run_id} ({_when(a.info.start_time)})",
        f"B = {b.info.run_id} ({_when(b.info.start_time)})",
        "",
    ]

    def pair(label: str, va: str, vb: str) -> None:
        lines.append(
            f"{label}: " + ("same " + (va or "-") if va == vb else f"{va or '-'} → {vb or '-'}")
        )

    pair("commit", _commit(ta), _commit(tb))
    pair("data", ta.get("data.content_hash", ""), tb.get("data.content_hash", ""))
    pair("status", ta.get("nbops.status", ""), tb.get("nbops.status", ""))
    tasks_a, tasks_b = _task_facts(store, a.info.run_id), _task_facts(store, b.info.run_id)
    build_a, build_b = _build_facts(a.data.params), _build_facts(b.data.params)
    for title, kind in (
        ("Task parameters", "params"),
        ("Env values", "env"),
        ("Sources", "sources"),
        ("Products", "products"),
    ):
        facts_a = {**build_a.get(kind, {}), **_per_task(tasks_a, kind)}
        facts_b = {**build_b.get(kind, {}), **_per_task(tasks_b, kind)}
        lines += ["", *_differ(title, facts_a, facts_b)]
    metrics_a = {**a.data.metrics, **_per_task(tasks_a, "metrics")}
    metrics_b = {**b.data.metrics, **_per_task(tasks_b, "metrics")}
    changed_metrics = [
        (k, metrics_a.get(k), metrics_b.get(k))
        for k in sorted(set(metrics_a) | set(metrics_b))
        if metrics_a.get(k) != metrics_b.get(k) and not k.endswith("duration_s")
    ]
    lines += ["", f"Metrics: {len(changed_metrics)} differ" + (":" if changed_metrics else "")]
    for k, va, vb in changed_metrics:
        delta = f" ({vb - va:+.6g})" if va is not None and vb is not None else ""
        lines.append(f"  {k}: {_num(va)} → {_num(vb)}{delta}")
    lines += ["", "Notebook outputs:"]
    for change in notebook_changes(store, a.info.run_id, b.info.run_id):
        if change.note:
            lines.append(f"  {change.task}: {change.note}")
        elif change.cells:
            lines.append(f"  {change.task}: {len(change.cells)} cell(s) changed")
            lines += [f"    {c}" for c in change.cells]
        else:
            lines.append(f"  {change.task}: same")
    return "\n".join(lines)


#: A task run's parameters that are not the task's parameters (nbops' own records).
_NOT_PARAMS = ("product.", "product_hash.", "source.")


def _task_facts(store: Store, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per task of a build: ``{"params", "sources", "products", "metrics"}``, read
    from its task runs (a grid's tasks by name)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for child in store.children(run_id):
        name = child.data.tags.get("nbops.task", child.info.run_id)
        params = child.data.params
        out[name] = {
            "params": {k: v for k, v in params.items() if not k.startswith(_NOT_PARAMS)},
            "sources": _strip(params, "source."),
            "products": _strip(params, "product_hash."),
            "metrics": dict(child.data.metrics),
        }
    return out


def _build_facts(params: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {"env": _strip(params, "env."), "sources": _strip(params, "source.")}


def _strip(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def _per_task(tasks: dict[str, dict[str, dict[str, Any]]], kind: str) -> dict[str, Any]:
    """One kind of fact of every task, keyed ``task: key`` (``task.metric`` for metrics)."""
    sep = "." if kind == "metrics" else ": "
    return {
        f"{task}{sep}{k}": v
        for task, facts in tasks.items()
        for k, v in facts.get(kind, {}).items()
    }


def _differ(title: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``title: N differ`` and one line per key whose value differs (or is absent)."""
    changed = [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    lines = [f"{title}: {len(changed)} differ" + (":" if changed else "")]
    lines += [
        f"  {k}: {va if va is not None else '(absent)'} → {vb if vb is not None else '(absent)'}"
        for k, va, vb in changed
    ]
    return lines


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe_name(name: str) -> str:
    """``name`` (a task name or run id read from the store) as one plain file name.

    The store is input like any other: a task named ``../../x`` must not write outside
    the site's folder. Names that are already plain stay as they are; any other gets
    its unsafe characters replaced and a short hash of the original, so two different
    names never share a file.
    """
    cleaned = _UNSAFE_NAME.sub("_", name).strip(".") or "_"
    if cleaned == name:
        return name
    return f"{cleaned[:80]}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def _inside(folder: Path, name: str, suffix: str = "") -> Path:
    """``folder / (_safe_name(name) + suffix)``, checked to be inside ``folder``."""
    path = folder / (_safe_name(name) + suffix)
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{name!r} would be written outside {folder}")  # safe_name prevents it
    return path


def _num(value: float | None) -> str:
    return "(absent)" if value is None else f"{value:.6g}"


def notebook_changes(store: Store, run_a: str, run_b: str) -> list[NotebookChange]:
    """Per task, the code cells whose (sanitised) outputs differ between two builds."""
    with tempfile.TemporaryDirectory() as tmp:
        nbs_a = _task_notebooks(store, run_a, Path(tmp) / "a")
        nbs_b = _task_notebooks(store, run_b, Path(tmp) / "b")
        out = []
        for task in sorted(set(nbs_a) | set(nbs_b)):
            if task not in nbs_a or task not in nbs_b:
                out.append(NotebookChange(task, note=f"only in {'B' if task in nbs_b else 'A'}"))
                continue
            out.append(NotebookChange(task, cells=_changed_cells(nbs_a[task], nbs_b[task])))
        return out


def _task_notebooks(store: Store, run_id: str, dest: Path) -> dict[str, Path]:
    """The executed notebook of each task, following skipped tasks to their producer."""
    found = {}
    for child in store.children(run_id):
        task = child.data.tags.get("nbops.task")
        source = child.info.run_id
        if child.data.tags.get("nbops.status") == "skipped" and child.data.tags.get(
            "nbops.produced_by_run"
        ):
            source = child.data.tags["nbops.produced_by_run"]
        try:
            entries = store.client.list_artifacts(source, "reports")
        except Exception:
            continue
        notebook = next((e.path for e in entries if e.path.endswith(".ipynb")), None)
        if task and notebook:
            found[task] = store.download(source, notebook, _inside(dest, task))
    return found


def _changed_cells(path_a: Path, path_b: Path) -> list[str]:
    cells_a = [c for c in json.loads(path_a.read_text())["cells"] if c["cell_type"] == "code"]
    cells_b = [c for c in json.loads(path_b.read_text())["cells"] if c["cell_type"] == "code"]
    changed = []
    for number, (ca, cb) in enumerate(zip(cells_a, cells_b, strict=False), start=1):
        if _outputs(ca) != _outputs(cb):
            first = "".join(cb["source"]).strip().splitlines()[:1]
            shown = f" (In [{cb['execution_count']}])" if cb.get("execution_count") else ""
            changed.append(f"cell {number}{shown}: {first[0][:80] if first else '(empty)'}")
    if len(cells_a) != len(cells_b):
        changed.append(f"cell count {len(cells_a)} → {len(cells_b)}")
    return changed


def _outputs(cell: dict[str, Any]) -> list[str]:
    out = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text = "".join(output.get("text", ""))
        elif output.get("output_type") == "error":
            text = f"{output.get('ename')}: {output.get('evalue')}"
        else:
            data = output.get("data", {})
            text = (
                "".join(data.get("text/plain", ""))
                + "".join(data.get("text/markdown", ""))
                + "".join(data.get("image/png", ""))
            )
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        out.append(text)
    return out


# -- static site ------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #ddd;padding:.35rem .7rem;text-align:left;font-size:.92rem}
th{background:#f4f4f4}code{font-size:.85rem}.FAILED,.failed{color:#b00020;font-weight:600}.skipped{color:#777}
a{color:#1a5fb4}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}"""


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def write_site(store: Store, out: Path, *, limit: int = 50) -> Path:
    """Write a static, offline site: an index of builds and, per build, its lineage and
    every task's HTML report. Returns the index page."""
    out.mkdir(parents=True, exist_ok=True)
    runs = store.builds(limit=limit)
    rows = []
    for run in runs:
        tags = run.data.tags
        run_dir = _inside(out / "runs", run.info.run_id)
        _write_run_page(store, run, run_dir)
        metrics = ", ".join(
            f"{m} {run.data.metrics[m]:.4f}" for m in KEY_METRICS if m in run.data.metrics
        )
        status = tags.get("nbops.status", run.info.status)
        rows.append(
            f'<tr><td><a href="runs/{quote(run_dir.name)}/index.html"><code>{html.escape(run.info.run_id[:12])}</code></a></td>'
            f"<td>{_when(run.info.start_time)}</td><td>{html.escape(tags.get('nbops.trigger', '-'))}</td>"
            f'<td class="{html.escape(status)}">{html.escape(status)}</td><td><code>{html.escape(_commit(tags))}</code></td>'
            f"<td><code>{html.escape(tags.get('data.content_hash', '')[7:19])}</code></td><td>{html.escape(metrics)}</td></tr>"
        )
    body = (
        f"<h1>Builds of {html.escape(runs[0].data.tags.get('nbops.project', '') if runs else '')}</h1>"
        f"<p>{len(runs)} latest build(s) from <code>{html.escape(store.uri)}</code>, generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
        "<table><tr><th>run</th><th>started</th><th>trigger</th><th>status</th><th>commit</th><th>data</th><th>key metrics</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    index = out / "index.html"
    index.write_text(_page("nbops builds", body))
    return index


def _write_run_page(store: Store, run: Any, run_dir: Path) -> None:
    from nbops.tracking.record import TaskRecord

    run_dir.mkdir(parents=True, exist_ok=True)
    tags = run.data.tags
    task_rows = []
    tasks: list[TaskRecord] = []  # for the reports' navigation bar
    for child in store.children(run.info.run_id):
        ct = child.data.tags
        task = ct.get("nbops.task", "?")
        status = ct.get("nbops.status", child.info.status)
        source = child.info.run_id
        if status == "skipped" and ct.get("nbops.produced_by_run"):
            source = ct["nbops.produced_by_run"]
        link = "-"
        try:
            report = next(
                (
                    e.path
                    for e in store.client.list_artifacts(source, "reports")
                    if e.path.endswith(".html")
                ),
                None,
            )
        except Exception:
            report = None
        if report:
            with tempfile.TemporaryDirectory() as tmp:
                downloaded = store.download(source, report, Path(tmp))
                shutil.copyfile(downloaded, _inside(run_dir, task, ".html"))
            link = f'<a href="{quote(_safe_name(task))}.html">report</a>' + (
                " (from the producing build)" if source != child.info.run_id else ""
            )
        dur = child.data.metrics.get("duration_s")
        tasks.append(TaskRecord(name=task, status=status, duration_s=dur))
        error = (
            html.escape(ct.get("nbops.error", "").strip().splitlines()[0][:160])
            if ct.get("nbops.error")
            else ""
        )
        task_rows.append(
            f'<tr><td>{html.escape(task)}</td><td class="{html.escape(status)}">{html.escape(status)}</td>'
            f"<td>{f'{dur:.1f} s' if dur is not None else '-'}</td><td>{link}</td><td>{error}</td></tr>"
        )
    params = "".join(
        f"<tr><td><code>{html.escape(k[4:])}</code></td><td>{html.escape(v)}</td></tr>"
        for k, v in sorted(run.data.params.items())
        if k.startswith("env.")
    )
    sources = "".join(
        f"<tr><td><code>{html.escape(k[7:])}</code></td><td><code>{html.escape(v[:23])}…</code></td></tr>"
        for k, v in sorted(run.data.params.items())
        if k.startswith("source.")
    )
    metrics = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>"
        for k, v in sorted(run.data.metrics.items())
    )
    status = tags.get("nbops.status", run.info.status)
    body = (
        '<p><a href="../../index.html">← all builds</a></p>'
        f'<h1>Build <code>{html.escape(run.info.run_id[:12])}</code> — <span class="{html.escape(status)}">{html.escape(status)}</span></h1>'
        "<table>"
        f"<tr><th>started</th><td>{_when(run.info.start_time)}</td></tr><tr><th>ended</th><td>{_when(run.info.end_time)}</td></tr>"
        f"<tr><th>trigger</th><td>{html.escape(tags.get('nbops.trigger', '-'))}</td></tr>"
        f"<tr><th>command</th><td><code>{html.escape(tags.get('nbops.command', '-'))}</code></td></tr>"
        f"<tr><th>commit</th><td><code>{html.escape(tags.get('git.commit') or '-')}</code> {html.escape(tags.get('git.branch', ''))}"
        f"{' (uncommitted changes)' if tags.get('git.dirty') == 'true' else ''}</td></tr>"
        f"<tr><th>data</th><td><code>{html.escape(tags.get('data.content_hash') or '-')}</code></td></tr>"
        f"<tr><th>python</th><td>{html.escape(tags.get('python.version', '-'))}</td></tr></table>"
        f"<h2>Tasks</h2><table><tr><th>task</th><th>status</th><th>duration</th><th>report</th><th>error</th></tr>{''.join(task_rows)}</table>"
        + (f"<h2>Metrics</h2><table>{metrics}</table>" if metrics else "")
        + f"<h2>Parameters</h2><table>{params}</table><h2>Sources</h2><table>{sources}</table>"
    )
    (run_dir / "index.html").write_text(_page(f"build {run.info.run_id[:12]}", body))
    _link_reports(run_dir, tasks, status=status, title=tags.get("nbops.project", ""))


def _link_reports(run_dir: Path, tasks: list[Any], *, status: str, title: str) -> None:
    """Make the copied reports fit the site: nothing loaded from the network (reports of
    older builds load require.js and MathJax from a CDN), and a navigation bar linking
    the build's page and the other reports as laid out here (the bar a report got at
    build time links the products/ folder)."""
    from nbops.reports.page import offline, set_nav
    from nbops.reports.site import Site, nav_html

    reports = {t.name: _inside(run_dir, t.name, ".html") for t in tasks}
    reports = {name: path for name, path in reports.items() if path.is_file()}
    site = Site(run_dir / "index.html", title, tasks, reports)
    for path in reports.values():
        page = offline(path.read_text(encoding="utf-8", errors="replace"))
        path.write_text(set_nav(page, nav_html(site, here=path, status=status)), encoding="utf-8")
