"""Pruning a stylesheet to the rules a page can use."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.reports.css import prune


@pytest.mark.parametrize(
    ("css", "classes", "ids", "expected"),
    [
        # a rule stays when every class it names is on the page
        (".a{color:red}.b{color:blue}", {"a"}, set(), ".a{color:red}"),
        (".a .b{color:red}", {"a"}, set(), ""),
        (".a.b>.c{color:red}", {"a", "b", "c"}, set(), ".a.b>.c{color:red}"),
        # a selector list keeps the selectors that can match
        (".a, .b, p{margin:0}", {"b"}, set(), ".b,p{margin:0}"),
        # element, universal and attribute selectors are not checked
        (
            "body{margin:0}*{box-sizing:border-box}",
            set(),
            set(),
            "body{margin:0}\n*{box-sizing:border-box}",
        ),
        ('[data-x="a.b"] p{color:red}', set(), set(), '[data-x="a.b"] p{color:red}'),
        # nor are classes inside :not() and friends
        (".a:not(.gone){color:red}", {"a"}, set(), ".a:not(.gone){color:red}"),
        (".a:is(.x, .y){color:red}", {"a"}, set(), ".a:is(.x, .y){color:red}"),
        # ids are checked like classes
        ("#main{color:red}#menu{color:blue}", set(), {"main"}, "#main{color:red}"),
        # comments and whitespace go, !important stays
        ("/* c */ .a {  color : red  !important ; }", {"a"}, set(), ".a{color:red !important}"),
    ],
)
def test_rules_the_page_can_use_are_kept(css, classes, ids, expected):
    assert prune(css, classes=classes, ids=ids) == expected


def test_at_rules_keep_what_they_hold():
    css = "@media print{.a{color:red}.b{color:blue}}@media screen{.b{color:blue}}"

    assert prune(css, classes={"a"}) == "@media print{\n.a{color:red}\n}"


def test_keyframes_stay_only_when_animated():
    css = "@keyframes spin{to{opacity:0}}@keyframes fade{to{opacity:1}}.a{animation:fade 1s}"

    assert prune(css, classes={"a"}) == "@keyframes fade{to{opacity:1}}\n.a{animation:fade 1s}"


def test_custom_properties_stay_when_read_directly_or_through_another():
    css = ":root{--base:1px;--gap:var(--base);--unused:2px;--unused2:var(--unused)}.a{margin:var(--gap)}.b{padding:var(--unused)}"

    assert prune(css, classes={"a"}) == ":root{--base:1px;--gap:var(--base)}\n.a{margin:var(--gap)}"


def test_imports_are_dropped():
    # an @import would load a stylesheet from elsewhere: a report must open offline
    assert prune("@import url(https://example.com/x.css);.a{color:red}", classes={"a"}) == (
        ".a{color:red}"
    )


def test_a_rule_it_cannot_read_as_declarations_is_kept_as_written():
    assert prune(".a{color:red; .b{color:blue}}", classes={"a"}) == ".a{color:red; .b{color:blue}}"


def test_the_lab_stylesheet_shrinks_to_a_few_percent():
    from jupyter_core.paths import jupyter_path

    found = [Path(p, "lab", "static", "index.css") for p in jupyter_path("nbconvert", "templates")]
    text = next(p for p in found if p.is_file()).read_text()
    classes = {"jp-Cell", "jp-CodeCell", "jp-InputArea", "jp-InputPrompt", "jp-OutputArea"}

    pruned = prune(text, classes=classes)

    assert len(text) > 200_000  # JupyterLab's whole stylesheet, as nbconvert inlines it
    assert len(pruned) < len(text) / 20
    assert ".jp-InputPrompt{" in pruned
    assert "jp-Dialog" not in pruned and "data:image/svg" not in pruned
