"""Operations on one rendered page: slim styles, the navigation bar, offline."""

from __future__ import annotations

import re

import pytest

from nbops.reports.page import NAV_END, NAV_START, class_names, offline, set_nav, slim_styles
from tests.reports.conftest import REMOTE_RESOURCE

PAGE = """<!DOCTYPE html>
<html><head><title>t</title>
<!-- nbops:styles -->
<style type="text/css">.jp-Cell{margin:0}.jp-Dialog{z-index:10}</style>
<style>.highlight .k{color:green}.highlight .zz{color:red}</style>
<!-- /nbops:styles -->
</head>
<body class="jp-Notebook" data-jp-theme-light="true"><main>
<div class="jp-Cell" id="cell-id=a"><div class='highlight'><span class=k>def</span></div>
<style>.own{color:blue}</style></div>
</main></body></html>
"""


def test_class_names_are_read_from_the_markup():
    assert class_names(PAGE) == (
        {"jp-Notebook", "jp-Cell", "highlight", "k"},
        {"cell-id=a"},
    )


def test_slim_styles_keeps_the_rules_the_page_uses():
    slim = slim_styles(PAGE)

    assert ".jp-Cell{margin:0}" in slim and ".highlight .k{color:green}" in slim
    assert "jp-Dialog" not in slim and ".zz" not in slim
    # styles outside the markers (a notebook output's own) are left alone
    assert "<style>.own{color:blue}</style>" in slim
    assert slim_styles(slim) == slim


def test_a_page_without_markers_is_left_as_is():
    page = PAGE.replace("<!-- nbops:styles -->", "")

    assert slim_styles(page) == page


def test_set_nav_puts_the_bar_first_in_the_body_and_replaces_an_earlier_one():
    once = set_nav(PAGE, "<nav>first</nav>")
    twice = set_nav(once, "<nav>second</nav>")

    body = once.index('<body class="jp-Notebook" data-jp-theme-light="true">')
    assert once.index(NAV_START) > body
    assert once.index("<nav>first</nav>") < once.index("<main>")
    assert "first" not in twice and twice.count(NAV_START) == twice.count(NAV_END) == 1
    assert set_nav(twice, "<nav>second</nav>") == twice


@pytest.mark.parametrize(
    "remote",
    [
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>',
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"> </script>',
        '<script type="module">\n  const m = (await import("https://cdnjs.cloudflare.com/x.mjs")).default;\n</script>',
        '<link rel="stylesheet" href="https://example.com/x.css">',
        "<script src='//unpkg.com/x.js'></script>",
    ],
)
def test_offline_drops_what_would_come_from_the_network(remote):
    page = PAGE.replace("</head>", remote + "\n</head>")
    assert REMOTE_RESOURCE and page != PAGE

    cleaned = offline(page)

    assert cleaned == PAGE
    assert not re.search(REMOTE_RESOURCE, cleaned)


def test_offline_keeps_local_scripts_and_plain_links():
    page = PAGE.replace(
        "<main>",
        '<main><script>document.title = "x";</script><a href="https://example.com">docs</a>',
    )

    assert offline(page) == page
