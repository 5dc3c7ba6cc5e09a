"""The exporter every pipeline task renders its HTML report with."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import nbconvert
import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbops.reports.exporter import TEMPLATES, ReportExporter, notebook_title, render_html
from tests.reports.conftest import REMOTE_RESOURCE, png

#: The inlined stylesheet of a report: JupyterLab's is about 257 KB.
CSS_BUDGET = 40_000
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S)


def test_pipeline_yaml_names_the_exporter_as_ploomber_resolves_it():
    # Ploomber passes nbconvert_exporter_name to nbconvert.get_exporter.
    assert nbconvert.get_exporter("nbops.reports.ReportExporter") is ReportExporter


def test_a_report_loads_nothing_from_the_network(make_notebook, tmp_path):
    notebook = make_notebook("products/evaluate.ipynb")
    stock, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    assert re.search(REMOTE_RESOURCE, stock), "nbconvert's own template loads from CDNs"

    render_html(notebook, tmp_path / "evaluate.html")
    page = (tmp_path / "evaluate.html").read_text()

    assert not re.search(REMOTE_RESOURCE, page)
    assert "<title>Evaluate the candidates</title>" in page, "titled by its first heading"
    assert "Evaluate the candidates" in page and "done" in page
    assert 'src="data:image/png;base64,' in page


def test_a_report_inlines_only_the_css_it_uses(make_notebook):
    nb = nbformat.read(make_notebook("evaluate.ipynb"), as_version=4)
    stock, _ = HTMLExporter().from_notebook_node(nb)
    page, _ = ReportExporter().from_notebook_node(nb)

    css = sum(len(m) for m in _STYLE.findall(page))
    stock_css = sum(len(m) for m in _STYLE.findall(stock))
    assert stock_css > 250_000
    assert css < CSS_BUDGET
    assert len(page) < len(stock) / 5
    # what the page shows is still styled: prompts, code, tables
    for rule in (".jp-InputPrompt{", ".jp-RenderedHTMLCommon table{", ".highlight .kc{"):
        assert rule in page, rule


def test_the_template_is_the_package_s_whatever_the_working_directory(
    make_notebook, tmp_path, monkeypatch
):
    # nbconvert looks for templates in the working directory by default: a project's
    # own "nbops" folder must not replace the report template.
    (tmp_path / "project" / "nbops").mkdir(parents=True)
    (tmp_path / "project" / "nbops" / "index.html.j2").write_text("not a report")
    (tmp_path / "project" / "nbops" / "conf.json").write_text('{"base_template": "lab"}')
    monkeypatch.chdir(tmp_path / "project")
    notebook = make_notebook("evaluate.ipynb")

    render_html(notebook, Path("evaluate.html"))

    page = Path("evaluate.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Evaluate the candidates" in page
    assert os.getcwd() == str(tmp_path / "project")


def test_reports_after_the_first_reuse_its_compiled_templates_and_read_the_same(
    make_notebook, tmp_path, monkeypatch
):
    # Ploomber makes an exporter, so a Jinja environment, per report: each compiled the
    # template's ten files again, a third of a report's CPU.
    import jinja2

    nb = nbformat.read(make_notebook("evaluate.ipynb"), as_version=4)
    first, _ = ReportExporter().from_notebook_node(nb)
    compiled: list[str] = []
    compile_ = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, *args, **kwargs):
        compiled.append(name)
        return compile_(self, source, name, filename, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    again, _ = ReportExporter().from_notebook_node(nb)

    assert again == first
    assert compiled == []
    # A template edited in the meantime is compiled again: Jinja checks the code it
    # keeps against the template's source.
    copy = tmp_path / "nbops"
    copy.mkdir()
    for name in ("conf.json", "index.html.j2"):
        (copy / name).write_text((TEMPLATES / "nbops" / name).read_text())
    before, _ = ReportExporter(extra_template_basedirs=[str(tmp_path)]).from_notebook_node(nb)
    index = copy / "index.html.j2"
    index.write_text(index.read_text().replace('content="nbops report"', 'content="edited"'))
    after, _ = ReportExporter(extra_template_basedirs=[str(tmp_path)]).from_notebook_node(nb)
    assert 'content="nbops report"' in before and 'content="edited"' in after


@pytest.mark.parametrize(
    ("cells", "title"),
    [
        ([new_markdown_cell("# Evaluate the *candidates*\n\ntext")], "Evaluate the candidates"),
        ([new_code_cell("x = 1"), new_markdown_cell("intro\n## `gate`: release")], "gate: release"),
        ([new_markdown_cell("no heading")], "Notebook"),
        ([], "Notebook"),
    ],
)
def test_a_report_is_titled_by_its_first_heading(cells, title):
    assert notebook_title(new_notebook(cells=cells)) == title


# -- what outputs put into the page ------------------------------------------------------

XSS = "<img src=x onerror=alert(1)>"
#: An element that runs script, an event-handler attribute, a javascript: URL.
RUNS_SCRIPT = re.compile(
    r"<script\b(?![^>]*application/vnd\.jupyter)|<[^>]*\son\w+\s*="
    r"|<[^>]*\s(?:href|src)\s*=\s*[\"']?\s*javascript:",
    re.I,
)


def payload_notebook() -> Any:
    """Outputs as a notebook holds them after displaying data that carries HTML/JS: a
    pandas table, Markdown that interpolated a value unescaped, raw HTML, JavaScript,
    an SVG, and a plot."""
    table = (
        "<div>\n<style scoped>\n.dataframe tbody tr th {vertical-align: top;}\n</style>\n"
        '<table border="1" class="dataframe">\n<thead>\n<tr style="text-align: right;">\n'
        f"<th></th>\n<th>{html.escape(XSS)}</th>\n</tr>\n</thead>\n<tbody>\n"
        f"<tr>\n<th>0</th>\n<td>{html.escape(XSS)}</td>\n</tr>\n</tbody>\n</table>\n</div>"
    )
    outputs = [
        new_output("display_data", data={"text/html": table, "text/plain": "frame"}),
        new_output(
            "display_data",
            data={
                "text/markdown": f"Worst slice **{XSS}** <script>alert(2)</script> "
                "[more](javascript:alert(3)) <a href='javascript:alert(4)'>a</a>",
                "text/plain": "<Markdown>",
            },
        ),
        new_output(
            "display_data",
            data={
                "text/html": '<div onclick="alert(5)"><svg onload="alert(6)"></svg>'
                '<img src="http://example.com/pixel.png"><iframe src="javascript:alert(7)">'
                "</iframe></div>",
                "text/plain": "<HTML>",
            },
        ),
        new_output("display_data", data={"application/javascript": "alert(8)"}),
        new_output(
            "display_data",
            data={"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(9)"/>'},
        ),
        new_output("display_data", data={"image/png": png(), "text/plain": "<Figure>"}),
    ]
    return new_notebook(
        cells=[
            new_markdown_cell("# Payloads"),
            new_code_cell("show(data)", execution_count=1, outputs=outputs),
        ]
    )


def test_a_report_runs_nothing_that_outputs_carry() -> None:
    stock, _ = HTMLExporter().from_notebook_node(payload_notebook())
    assert RUNS_SCRIPT.search(stock[stock.index("<main") :]), "nbconvert passes them through"

    page, _ = ReportExporter().from_notebook_node(payload_notebook())
    body = page[page.index("<main") :]

    assert [m.group(0) for m in RUNS_SCRIPT.finditer(body)] == []
    assert "<iframe" not in body and "http://example.com" not in body
    # What the outputs show stays: the table (with the value as text), the plot, the
    # Markdown's formatting, and markup that is not allowed shown as text.
    assert '<table border="1" class="dataframe">' in body
    assert f"<td>{html.escape(XSS)}</td>" in body
    assert body.count('src="data:image/png;base64,') == 1
    assert "<strong>" in body
    assert ".dataframe tbody" not in body, "the table's stylesheet is dropped, not shown"


def _no_alt_image_cell() -> Any:
    image = f'<img src="data:image/png;base64,{png()}" title="a > b">'
    return new_code_cell(
        "show()",
        execution_count=9,
        outputs=[new_output("display_data", data={"text/html": image, "text/plain": "img"})],
    )


@pytest.mark.parametrize("notebook", ["report", "payload"])
def test_a_report_is_the_page_nbconvert_would_make_without_parsing_it_again(
    notebook, make_notebook, monkeypatch
):
    # nbconvert's HTML exporter parses and re-serialises the whole page with
    # BeautifulSoup to add three attributes (0.1 s a report, the bs4 import 0.25 s a
    # build); nbops adds them to the template's markup, and the page parses the same.
    from bs4 import BeautifulSoup
    from nbconvert.exporters import html as nbconvert_html

    if notebook == "report":
        nb = nbformat.read(make_notebook("evaluate.ipynb"), as_version=4)
        nb.cells.append(_no_alt_image_cell())
    else:
        nb = payload_notebook()

    class Stock(ReportExporter):  # nbops' report through nbconvert's own last step
        def _page(self, nb, resources, **kw):
            return HTMLExporter.from_notebook_node(self, nb, resources, **kw)

    expected, _ = Stock().from_notebook_node(nb)

    def parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the report's page was parsed again with BeautifulSoup")

    monkeypatch.setattr(nbconvert_html, "BeautifulSoup", parse)
    page, _ = ReportExporter().from_notebook_node(nb)

    monkeypatch.undo()

    def document(text: str) -> str:  # a JavaScript output's element gets a fresh uuid
        return re.sub(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", "ID", text)

    parsed = (str(BeautifulSoup(p, "html.parser")) for p in (page, expected))
    assert document(next(parsed)) == document(next(parsed))
    assert page.count('tabindex="0"') == expected.count('tabindex="0"') > 0
    if notebook == "report":
        assert 'alt="No description has been provided for this image"' in page
