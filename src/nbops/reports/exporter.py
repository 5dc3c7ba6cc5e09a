"""The nbconvert exporter of nbops' HTML reports.

Declared per task in ``pipeline.yaml`` (Ploomber imports it by its dotted path, so it
works from any project folder and from projects made by ``nbops init``)::

    nb_product_key: [nb, html]
    nbconvert_exporter_name: {html: nbops.reports.ReportExporter}

It is nbconvert's :class:`~nbconvert.HTMLExporter` with the ``nbops`` template shipped
in this package (``templates/nbops``: the lab template without the require.js, MathJax,
Mermaid and widget scripts it would load from CDNs) and the inlined stylesheet pruned to
the rules the page uses (:func:`nbops.reports.page.slim_styles`). Reports stay single
self-contained files: they open offline, from an MLflow artifact or a CI artifact.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nbconvert import HTMLExporter
from traitlets import default

from nbops.reports.page import slim_styles

__all__ = ["TEMPLATES", "ReportExporter", "notebook_title", "render_html"]

#: The folder holding the ``nbops`` nbconvert template.
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportExporter(HTMLExporter):
    """HTML report: the lab look, offline, with only the CSS the page uses."""

    @default("template_name")
    def _template_name_default(self) -> str:
        return "nbops"

    @default("extra_template_basedirs")
    def _default_extra_template_basedirs(self) -> list[str]:
        # Only the package's folder: nbconvert's default (the working directory) would
        # let a project folder's own "nbops" directory shadow the template.
        return [str(TEMPLATES)]

    def from_notebook_node(
        self, nb: Any, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        resources = dict(resources or {})
        metadata = dict(resources.get("metadata") or {})
        if not metadata.get("name"):
            # Ploomber passes no file name: the page would be titled "Notebook".
            metadata["name"] = notebook_title(nb)
            resources["metadata"] = metadata
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return slim_styles(output), resources


def notebook_title(nb: Any) -> str:
    """The text of the notebook's first markdown heading, else "Notebook"."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        for line in ("".join(source) if isinstance(source, list) else source).splitlines():
            if line.startswith("#"):
                title = re.sub(r"[*_`]", "", line.lstrip("#")).strip()
                if title:
                    return title
    return "Notebook"


def render_html(notebook: str | Path, html: str | Path) -> None:
    """Render an executed notebook to an HTML report (what Ploomber does for a task that
    finished; nbops does it for a task that failed)."""
    import nbformat

    body, _ = ReportExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    Path(html).write_text(body, encoding="utf-8")
