"""Data values in Markdown and HTML: shown as text, never read as markup.

A column name, a category, a file name or a model name comes from data someone else
controls; put into ``display(Markdown(f"..."))`` as is, ``<img src=x onerror=...>``
becomes an element of the report (nbconvert passes raw HTML in Markdown through).
Wrap every such value where it meets Markdown or HTML::

    from nbops.reports import md, md_code
    display(Markdown(f"Slices by {md_code(column)}; worst: **{md(value)}**."))

- :func:`md`: a value in Markdown prose (also fine in an HTML text node);
- :func:`md_code`: a value as a complete inline code span, backticks and all;
- :func:`html_text`: a value in HTML text or a quoted attribute (:func:`html.escape`).

Standard library only: notebooks, the service and the build hooks import it.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["html_text", "md", "md_code"]

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that
# start emphasis, links, images, code, tables, headings, lists or autolinks, and "$",
# which starts TeX for nbconvert's Markdown (mistune's math: shown with its entities and
# backslashes as typed) and for JupyterLab's MathJax.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\](){}#+\-!|~:$])")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def _one_line(value: Any) -> str:
    # A line break inside a value would start a new Markdown block (a heading, a list,
    # an indented code block, an HTML block).
    return _LINE_BREAK.sub(" ", str(value))


def md(value: Any) -> str:
    """``value`` as literal text in Markdown: HTML characters as entities (``<`` is
    ``&lt;``), Markdown punctuation backslash-escaped, line breaks as spaces, without
    surrounding spaces (HTML does not show them, and ``** x **`` is not bold).

    >>> md("<img src=x onerror=alert(1)> **bold**")
    '&lt;img src=x onerror=alert\\\\(1\\\\)&gt; \\\\*\\\\*bold\\\\*\\\\*'
    """
    text = html.escape(_one_line(value).strip(), quote=False)  # & < > (no '#' or ';' added)
    return _MD_PUNCTUATION.sub(r"\\\1", text)


def md_code(value: Any) -> str:
    """``value`` as a complete Markdown code span (its backticks included), shown
    verbatim: the fence is longer than any run of backticks inside, and padded with a
    space when the value starts or ends with a backtick or a space.

    >>> md_code("a`b")
    '``a`b``'
    """
    text = _one_line(value)
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def html_text(value: Any) -> str:
    """``value`` as text in HTML (element content or a quoted attribute)."""
    return html.escape(str(value), quote=True)
