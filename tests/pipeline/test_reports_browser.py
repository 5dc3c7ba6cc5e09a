"""The HTML reports of real builds, opened in a real browser.

The reference build (and, in a copy of it, a monitoring run on a drifted batch) is
browsed from its summary pages with headless Chromium (Debian's ``chromium`` package,
driven by Playwright; no browser is downloaded): every page loads without console
errors, failed requests or any request leaving ``file://``, its plots decode, and every
link resolves. With ``NBOPS_TEST_ARTIFACTS`` set, a full-page screenshot of each page is
kept in ``$NBOPS_TEST_ARTIFACTS/screenshots/`` (CI uploads it).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from nbconvert import HTMLExporter
from PIL import Image, ImageChops

from nbops.data.datasets import make_churn
from nbops.reports.exporter import ReportExporter
from nbops.reports.page import offline
from tests.conftest import ARTIFACTS, copy_built_with_store, run_cli

pytestmark = pytest.mark.pipeline

#: Where Debian (and .ci/run) installs Chromium, then where GitHub's Ubuntu runners have
#: Chromium or Chrome; NBOPS_CHROMIUM may name another binary.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: A report's size without its embedded images (nbconvert's lab template: 280–330 KB).
PAGE_BUDGET = 100_000
#: The stylesheets inlined in a report (nbconvert's lab template: 257 KB).
CSS_BUDGET = 40_000
_DATA_URI = re.compile(r"data:image/[\w+.-]+;base64,[A-Za-z0-9+/=\s]+")
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S)


def _chromium() -> str:
    for candidate in (os.environ.get("NBOPS_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "Chromium is not installed: apt-get install chromium (.ci/run does this)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()  # before the per-test isolation hides CI and NBOPS_*
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def products(built_project, tmp_path_factory) -> Path:
    """A copy of the reference build with a monitoring run on a drifted batch: the
    products/ of both pipelines."""
    root = copy_built_with_store(
        built_project, tmp_path_factory.mktemp("reports") / built_project.root.name
    ).root
    batch = root / "batch.parquet"
    make_churn(600, seed=11, drift=0.5).to_parquet(batch)
    result = run_cli(root, "monitor", "--data", str(batch), check=False)  # the pages matter
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: drift found
    return root / "products"


@dataclass
class Visit:
    page: Path
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def visit(browser: Any, page_path: Path, screenshots: Path | None) -> Visit:
    """Open one page the way a reviewer would, with the network out of reach."""
    result = Visit(page_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            result.remote.append(url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: result.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.console.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: result.failed.append(f"{r.url}: {r.failure}"))
    page.goto(page_path.as_uri(), wait_until="load")
    result.images = page.eval_on_selector_all(
        "img",
        "els => els.map(e => ({src: e.currentSrc.slice(0, 40), complete: e.complete,"
        " width: e.naturalWidth}))",
    )
    result.links = page.eval_on_selector_all(
        "a[href]", "els => els.map(e => e.getAttribute('href'))"
    )
    if screenshots is not None:
        page.screenshot(path=str(screenshots / _screenshot_name(page_path)), full_page=True)
    context.close()
    return result


def _screenshot_name(page: Path) -> str:
    """``products/train/hgb-1.html`` → ``train__hgb-1.png``."""
    parts = page.parts
    index = len(parts) - 1 - parts[::-1].index("products")
    return "__".join(parts[index + 1 :]).removesuffix(".html") + ".png"


def _target(page: Path, href: str) -> tuple[Path, str] | None:
    """The file a relative link points at, and its fragment (None for other links)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve(), unquote(parts.fragment)


@pytest.fixture(scope="module")
def crawl(browser, products) -> dict[Path, Visit]:
    """Every page reachable from the two summary pages, visited once."""
    screenshots = None
    if ARTIFACTS:
        screenshots = Path(ARTIFACTS) / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
    todo = [(products / "index.html").resolve(), (products / "monitor" / "index.html").resolve()]
    visits: dict[Path, Visit] = {}
    while todo:
        page = todo.pop(0)
        if page in visits or not page.is_file() or page.suffix != ".html":
            continue
        visits[page] = visit(browser, page, screenshots)
        todo += [t[0] for h in visits[page].links if (t := _target(page, h))]
    return visits


def test_every_report_is_reachable_from_the_summaries(crawl, products):
    reports = {
        p.resolve()
        for folder in (products, products / "train", products / "monitor")
        for p in folder.glob("*.html")
    }

    assert {p.name for p in reports} >= {
        "index.html",
        "ingest.html",
        "validate.html",
        "split.html",
        "evaluate.html",
        "gate.html",
        "window.html",
        "drift.html",
        "performance.html",
        "alert.html",
    }
    assert len([p for p in reports if p.parent.name == "train"]) == 2
    assert reports <= set(crawl), sorted(str(p) for p in reports - set(crawl))


def test_pages_load_offline_without_errors(crawl):
    problems = {
        str(v.page): {"console": v.console, "failed": v.failed, "remote": v.remote}
        for v in crawl.values()
        if v.console or v.failed or v.remote
    }

    assert problems == {}


def test_plots_render(crawl, products):
    broken = {
        str(v.page): [i for i in v.images if not (i["complete"] and i["width"] > 0)]
        for v in crawl.values()
        if any(not (i["complete"] and i["width"] > 0) for i in v.images)
    }
    plots = {
        v.page.name: len(v.images) for v in crawl.values() if v.page.parent == products.resolve()
    }

    assert broken == {}
    assert plots["index.html"] >= 2, "the summary shows the evaluation plots"
    assert plots["evaluate.html"] >= 4
    monitor = crawl[(products / "monitor" / "index.html").resolve()]
    assert len(monitor.images) >= 1, "the monitoring summary shows the drift plot"


def test_every_link_resolves(crawl):
    broken = []
    for visit_ in crawl.values():
        for href in visit_.links:
            target = _target(visit_.page, href)
            if target is None:
                continue
            path, fragment = target
            # a link to a cell must find it: nbconvert gives each cell id="cell-id=..."
            if not path.is_file() or (fragment and f'id="{fragment}"' not in path.read_text()):
                broken.append((str(visit_.page), href))

    assert broken == []


def test_every_report_links_its_summary(crawl, products):
    for page, visit_ in crawl.items():
        if page.name == "index.html":
            continue
        summary = products / ("monitor" if page.parent.name == "monitor" else "") / "index.html"
        assert any((t := _target(page, h)) and t[0] == summary.resolve() for h in visit_.links), (
            page
        )


def test_screenshots_are_kept_for_ci(crawl):
    if not ARTIFACTS:
        pytest.skip("NBOPS_TEST_ARTIFACTS is not set")
    shots = sorted(p.name for p in (Path(ARTIFACTS) / "screenshots").glob("*.png"))

    assert "index.png" in shots and "monitor__index.png" in shots and "train__hgb-1.png" in shots
    assert len(shots) >= len(crawl)


def test_reports_keep_to_their_size_budget(products):
    sizes = {}
    for page in sorted(products.rglob("*.html")):
        if "release" in page.parts:
            continue  # the model card is not a notebook report
        text = page.read_text()
        css = sum(len(m) for m in _STYLE.findall(text))
        sizes[str(page.relative_to(products))] = (len(_DATA_URI.sub("", text)), css)

    over = {
        name: size for name, size in sizes.items() if size[0] > PAGE_BUDGET or size[1] > CSS_BUDGET
    }
    assert over == {}
    assert len(sizes) >= 13


def test_slimmer_css_changes_nothing_you_can_see(browser, built_project, tmp_path):
    """The same notebook rendered by nbconvert's lab template and by nbops' exporter
    gives the same pixels (the nbops page only drops unused CSS and the CDN scripts)."""
    notebook = nbformat.read(built_project.products / "evaluate.ipynb", as_version=4)
    stock, _ = HTMLExporter().from_notebook_node(notebook)
    slim, _ = ReportExporter().from_notebook_node(notebook, {"metadata": {"name": "Notebook"}})
    pages = {"stock": offline(stock), "nbops": slim}
    shots = {}
    for name, text in pages.items():
        (tmp_path / f"{name}.html").write_text(text)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto((tmp_path / f"{name}.html").as_uri(), wait_until="load")
        shots[name] = page.screenshot(full_page=True)
        context.close()

    assert len(slim) < len(stock) * 0.6
    stock_image, nbops_image = (Image.open(io.BytesIO(shots[n])) for n in ("stock", "nbops"))
    assert nbops_image.size == stock_image.size
    assert (
        ImageChops.difference(nbops_image.convert("RGB"), stock_image.convert("RGB")).getbbox()
        is None
    )
