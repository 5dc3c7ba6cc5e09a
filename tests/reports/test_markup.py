"""Data values in Markdown: shown as the text they are, through the Markdown renderer
nbconvert uses for reports (mistune), never read as HTML or Markdown."""

from __future__ import annotations

import html
import re

import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from nbops.reports import html_text, md, md_code

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![pixel](http://example.com/x.png)",
    "<http://example.com>",
    "**bold** _it_ # not a heading",
    "line one\n# heading\n<div onclick=alert(1)>x</div>",
    "&lt;script&gt; &amp;",
    "back`tick``s",
    "`",
    " padded ",
    "a|b\\<c>",
    "churn rate: 0.85",
    # TeX between dollars: mistune's math showed it with entities and backslashes
    "$5-$10",
    "$<img src=x onerror=alert(1)>$",
    "$$ x^2 $$",
]


def one_line(value: str) -> str:
    return " ".join(value.splitlines())


@pytest.mark.parametrize("value", PAYLOADS)
def test_md_shows_the_value_as_text(value: str) -> None:
    rendered = markdown2html_mistune(f"Worst slice **{md(value)}** here.").strip()

    match = re.fullmatch(r"<p>Worst slice <strong>(.*)</strong> here\.</p>", rendered, re.S)
    assert match, rendered
    assert "<" not in match.group(1)  # no element came from the value
    assert html.unescape(match.group(1)) == one_line(value).strip()


@pytest.mark.parametrize("value", PAYLOADS)
def test_md_code_shows_the_value_verbatim_in_code(value: str) -> None:
    rendered = markdown2html_mistune(f"Column {md_code(value)} dropped.").strip()

    match = re.fullmatch(r"<p>Column <code>(.*)</code> dropped\.</p>", rendered, re.S)
    assert match, rendered
    assert "<" not in match.group(1)
    assert html.unescape(match.group(1)) == one_line(value)


def test_values_that_are_not_strings() -> None:
    assert md(0.85) == "0.85"
    assert md(None) == "None"
    assert md_code("") == "` `"
    assert html_text('"><svg onload=x>') == "&quot;&gt;&lt;svg onload=x&gt;"
