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
The page is not parsed again after rendering, as nbconvert's exporter does to add a few
accessibility attributes: they are put on the template's markup directly.

What cell outputs put into the page is sanitised (:func:`clean_html`): a report is read
by people who did not run it (from MLflow, ``nbops report``, CI artifacts), and outputs
carry data, so a value that slipped through unescaped must not become a script. No
scripts, no event-handler attributes, no ``javascript:`` links, images only embedded;
tables, plots and formatting stay as they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bleach
from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, CSSSanitizer
from jinja2.bccache import Bucket, BytecodeCache
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets import default

from nbops.reports.page import slim_styles

__all__ = ["TEMPLATES", "ReportExporter", "clean_html", "notebook_title", "render_html"]

#: The folder holding the ``nbops`` nbconvert template.
TEMPLATES = Path(__file__).resolve().parent / "templates"


#: What an output may keep: formatting, tables (pandas), lists, links, embedded images.
_TAGS = frozenset(
    {
        *bleach.ALLOWED_TAGS,
        *("p", "div", "span", "br", "hr", "pre", "code", "kbd", "samp", "var", "small"),
        *("sub", "sup", "mark", "del", "ins", "s", "u", "q", "cite", "dfn", "time"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "dl", "dt", "dd", "details", "summary"),
        *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup"),
        *("col", "img", "figure", "figcaption", "center", "font"),
    }
)
_ATTRIBUTES_ANYWHERE = frozenset(
    {"class", "id", "title", "style", "align", "valign", "dir", "lang", "data-mime-type"}
)
_ATTRIBUTES = {
    "a": {"href", "rel", "name"},
    "img": {"src", "alt", "width", "height"},
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "th": {"colspan", "rowspan", "scope", "width"},
    "td": {"colspan", "rowspan", "width"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
    "details": {"open"},
    "font": {"color", "size"},
}
# Removed with their content: the text of a script or stylesheet is not worth showing.
_CODE_ELEMENTS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_EMBEDDED_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml)[;,]", re.I)


def _allowed(tag: str, name: str, value: str) -> bool:
    if name not in _ATTRIBUTES_ANYWHERE and name not in _ATTRIBUTES.get(tag, ()):
        return False
    if tag == "img" and name == "src":
        # Embedded only: a report opens offline, and a remote image is a tracking pixel.
        return bool(_EMBEDDED_IMAGE.match(value.strip()))
    if name == "href":
        # bleach allows data: for images; a link to a data: page is a page of the data's
        return not value.strip().lower().startswith("data:")
    return True


_CLEANER = bleach.Cleaner(
    tags=_TAGS,
    attributes=_allowed,
    protocols={"http", "https", "mailto", "data"},
    strip=False,  # other markup is shown as text: a value that looks like HTML stays visible
    strip_comments=True,
    css_sanitizer=CSSSanitizer(allowed_css_properties=ALLOWED_CSS_PROPERTIES),
)


def clean_html(fragment: Any) -> str:
    """``fragment`` (HTML from a cell: an output, rendered Markdown, highlighted code)
    without anything that runs: scripts and stylesheets dropped, other elements not on
    the allow-list shown as text, event-handler attributes and ``javascript:`` URLs
    removed, images only embedded ones. Replaces nbconvert's ``clean_html`` filter,
    which escapes pandas' tables."""
    text = fragment.decode() if isinstance(fragment, bytes) else str(fragment)
    return _CLEANER.clean(_CODE_ELEMENTS.sub("", text))


class _CompiledTemplates(BytecodeCache):
    """The report templates compiled once per process. nbconvert makes a Jinja
    environment per exporter, and Ploomber an exporter per report, so every report
    compiled its ten templates again: a third of its CPU. Jinja keys the code by
    template file and checks it against the template's source, so an edited template
    is compiled again."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


class ReportExporter(HTMLExporter):
    """HTML report: the lab look, offline, with only the CSS the page uses, and what
    cells output sanitised."""

    def _create_environment(self) -> Any:
        environment = super()._create_environment()
        environment.bytecode_cache = _COMPILED
        return environment

    @default("sanitize_html")
    def _sanitize_html_default(self) -> bool:
        # The lab template then passes outputs and Markdown through ``clean_html`` (ours,
        # see default_filters) and drops application/javascript outputs.
        return True

    def default_filters(self) -> Iterator[tuple[str, Any]]:
        yield from super().default_filters()
        yield ("clean_html", clean_html)

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
        output, resources = self._page(nb, resources, **kw)
        return slim_styles(output), resources

    def _page(self, nb: Any, resources: dict[str, Any], **kw: Any) -> tuple[str, dict[str, Any]]:
        """:meth:`HTMLExporter.from_notebook_node` (nbconvert 7) without its last step: a
        BeautifulSoup parse and re-serialisation of the whole page (its inlined
        stylesheet included) to add three attributes, 0.1 s of CPU per report and the
        ``bs4`` import (0.25 s) per build. The same attributes go onto the template's own
        markup here (:func:`_accessible`): the page parses to the same document."""
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
        )
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources
        )
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        output, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return _accessible(output, self.log), resources


#: The markup :meth:`HTMLExporter.from_notebook_node` edits with BeautifulSoup: each
#: cell's input and each output focusable from the keyboard, images without a text
#: alternative given one.
_INPUT_WRAPPER = re.compile(r'<div class="jp-Cell-inputWrapper"(?=[\s>])')
#: A tag's attributes up to its ``>`` (a quoted value may hold one).
_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_OUTPUT = re.compile(
    rf'(<div\b(?={_ATTRS}\sclass="(?:[^"]*\s)?jp-OutputArea-output[\s"]){_ATTRS})>', re.I
)
_IMAGE_WITHOUT_ALT = re.compile(rf"<img\b(?!{_ATTRS}\salt\s*=)", re.I)
_NO_ALT = "No description has been provided for this image"


def _accessible(page: str, log: Any) -> str:
    """``page`` with the attributes nbconvert's HTML exporter adds: ``tabindex="0"`` on
    input wrappers and outputs, an ``alt`` text on images that have none (with its
    warning)."""
    page = _INPUT_WRAPPER.sub('<div class="jp-Cell-inputWrapper" tabindex="0"', page)
    page = _OUTPUT.sub(r'\1 tabindex="0">', page)
    page, missing = _IMAGE_WITHOUT_ALT.subn(f'<img alt="{_NO_ALT}"', page)
    if missing:
        log.warning("Alternative text is missing on %s image(s).", missing)
    return page


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
