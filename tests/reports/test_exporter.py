"""The exporter every pipeline task renders its HTML report with."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbconvert
import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbops.reports.exporter import ReportExporter, notebook_title, render_html
from tests.reports.conftest import REMOTE_RESOURCE

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
