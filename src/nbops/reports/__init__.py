"""HTML reports that are worth reading: offline, small, linked into one site per build.

What lives here, and what each module may import:

- ``markup``: :func:`md`, :func:`md_code`, :func:`html_text`, which turn a data value
  into text for Markdown or HTML (wrap every value from data that notebooks or nbops
  put into Markdown or HTML). Standard library only.
- ``css``, ``page``: pure text operations on a rendered page (prune the inlined
  stylesheet to what the page uses, set the navigation bar, drop network loads).
  Standard library and tinycss2 only.
- ``exporter``: the nbconvert exporter every pipeline task renders its report with
  (``nbconvert_exporter_name: {html: nbops.reports.ReportExporter}`` in
  ``pipeline.yaml``) and its template (``templates/nbops``); it also sanitises what
  cell outputs put into the page. nbconvert (and its bleach) only.
- ``site``: the build summary page and the navigation bar of each report, written by
  the build hooks (:mod:`nbops.build.hooks`) from the build record; it reads the gate's
  decision file as :class:`nbops.release.gate.ReleaseDecision` (reports sit above release
  in the import layers). No MLflow, no Ploomber.

``ReportExporter`` is imported lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from nbops.reports.markup import html_text, md, md_code

__all__ = ["ReportExporter", "html_text", "md", "md_code"]


def __getattr__(name: str) -> Any:
    if name == "ReportExporter":
        from nbops.reports.exporter import ReportExporter

        return ReportExporter
    raise AttributeError(f"module 'nbops.reports' has no attribute {name!r}")
