"""Data that carries HTML and JavaScript, in its values and its column names, through a
real build (twice, so the gate compares slices with a champion), a monitoring run on a
drifted batch, ``nbops score`` of it, and ``nbops report``: every page shows the
payloads as text and runs none of them, in ``products/``, in the tracking store's copies
and in the static site. With Chromium installed, every page is also opened and no dialog
may fire. A category with dollar signs (TeX to matplotlib and to Markdown's math) is
plotted and shown as written."""

from __future__ import annotations

import hashlib
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from nbops.data.datasets import make_churn
from tests.conftest import BIN, alarms, build_env

pytestmark = pytest.mark.pipeline

ID = "id<script>alert(1)</script>"
PLAN = "plan<img src=x onerror=alert(2)>"
TENURE = 'tenure"><svg onload=alert(3)>'
PAYMENT = "pay[x](javascript:alert(4))"
CHARGES = "charges<iframe src=javascript:alert(5)>"
PLAN_VALUES = {
    "basic": "<img src=x onerror=alert(6)>",
    "standard": "<script>alert(7)</script>",
    "premium": "**premium** <b onmouseover=alert(8)>x</b>",
    "enterprise": "[enterprise](javascript:alert(9)) $$",
}
REGION_SUFFIX = '"><svg onload=alert(10)>'


def hostile(frame: pd.DataFrame) -> pd.DataFrame:
    """The bundled table with payloads in its column names and category values."""
    frame = frame.assign(
        plan=frame["plan"].map(PLAN_VALUES).astype("string"),
        region=(frame["region"] + REGION_SUFFIX).astype("string"),
    )
    return frame.rename(
        columns={
            "customer_id": ID,
            "plan": PLAN,
            "tenure_months": TENURE,
            "payment_method": PAYMENT,
            "monthly_charges": CHARGES,
        }
    )


class Markup(HTMLParser):
    """What in a page would run: script elements, event-handler attributes,
    javascript: URLs, frames."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def scan(page: Path) -> tuple[list[str], str]:
    parser = Markup()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser.found, "".join(parser.text)


def run(args: list[str], cwd: Path, *, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=900, env=build_env()
    )
    assert result.returncode in ok, (
        f"{args} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout + result.stderr


def test_payloads_in_data_are_shown_and_never_run(make_project, tmp_path: Path) -> None:
    project = make_project()
    data = project.root / "data" / "hostile.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    # 600 rows: enough for four slices of the test rows; the payloads are in every row.
    hostile(make_churn(600, seed=3)).to_parquet(data)
    (project.root / "schema" / "hostile.yaml").write_text(
        project.cli("schema", "infer", str(data)).stdout
    )
    project.set_env(
        data={"source": str(data), "target": "churned"},
        schema="schema/hostile.yaml",
        evaluate={"slice_column": PLAN},
        # the slice floor (max_slice_drop_share, on by default) names the worst slice
        release={"floors": {"min_metric": None}},
    )
    project.build()
    # The gate again, now with a champion: it compares the slices of PLAN.
    gated = run([str(BIN / "ploomber"), "task", "gate", "--force"], project.root)
    assert "nbops: recorded build as run" in gated, gated[-3000:]
    assert alarms(gated) == []  # no ERROR from the kernel's shutdown, no library's warning
    batch = project.root / "batch.parquet"
    hostile(make_churn(600, seed=11, drift=0.5)).to_parquet(batch)
    # In this process: the pages matter, not the processes.
    monitored = project.cli("monitor", "--data", str(batch), check=False)
    assert monitored.returncode in (0, 1), monitored.stdout + monitored.stderr
    scored = project.cli("score", str(batch), "--out", str(project.root / "scores" / "b.csv"))
    assert "Report: " in scored.stdout, scored.stdout + scored.stderr
    project.cli("report", "--out", str(tmp_path / "site"))

    pages = sorted(project.root.rglob("*.html")) + sorted((tmp_path / "site").rglob("*.html"))
    assert project.root / "scores" / "b.report.html" in pages
    stored = [p for p in pages if ".nbops" in p.parts or "mlruns" in p.parts]
    assert len(stored) >= 8, "the tracking store keeps a copy of every report"
    running = {}
    text = ""
    for page in pages:
        found, shown = scan(page)
        if found:
            running[str(page)] = found
        text += shown
    assert running == {}

    # The payloads reached the pages, as text.
    for payload in (ID, PLAN, TENURE, CHARGES, *PLAN_VALUES.values()):
        assert payload in text, payload
    _, gate = scan(project.products / "gate.html")
    assert "worst slice" in gate and f"'{PLAN}=" in gate
    assert "dropped: " in (project.products / "split.html").read_text()

    browse(pages)


def browse(pages: list[Path]) -> None:
    """Open every page in headless Chromium (when installed): no dialog fires. A page
    with the same bytes as one already opened is not opened again (the pages may run
    nothing but what is in them: scan() finds no script, frame or object elements)."""
    chromium = os.environ.get("NBOPS_CHROMIUM") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        return
    pages = list({hashlib.sha256(p.read_bytes()).digest(): p for p in reversed(pages)}.values())
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        context = browser.new_context()
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else route.abort()
            ),
        )
        for path in pages:
            page = context.new_page()
            page.on(
                "dialog", lambda d, path=path: (dialogs.append(f"{path}: {d.message}"), d.dismiss())
            )
            page.goto(path.as_uri(), wait_until="load")
            # hover and click everything a reader could touch
            page.evaluate(
                "() => document.querySelectorAll('body *').forEach(e => {"
                " e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); })"
            )
            page.close()
        browser.close()
    assert dialogs == []
