"""Operations on one rendered report page: text in, text out, no I/O.

- :func:`slim_styles`: the stylesheets between nbops' markers (see the ``nbops``
  nbconvert template) cut down to the rules the page uses (:mod:`nbops.reports.css`).
- :func:`set_nav`: put (or replace) the navigation bar at the top of the page.
- :func:`offline`: drop what a page would load from the network (a report rendered by
  nbconvert's stock template loads require.js and MathJax from a CDN).
"""

from __future__ import annotations

import re

from nbops.reports.css import prune

__all__ = ["NAV_END", "NAV_START", "class_names", "offline", "set_nav", "slim_styles"]

STYLES_START, STYLES_END = "<!-- nbops:styles -->", "<!-- /nbops:styles -->"
NAV_START, NAV_END = "<!-- nbops:nav -->", "<!-- /nbops:nav -->"

_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)
_CLASS_ATTR = re.compile(r"""\bclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_ID_ATTR = re.compile(r"""\bid\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_BODY = re.compile(r"<body\b[^>]*>", re.I)
_NAV = re.compile(re.escape(NAV_START) + r".*?" + re.escape(NAV_END) + r"\n?", re.S)
_REMOTE_SCRIPT = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//[^>]*>\s*</script>\s*""", re.I
)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>\s*", re.S | re.I)
_REMOTE_IMPORT = re.compile(r"""(?:import\s*\(?|from)\s*["'](?:https?:)?//""")
_REMOTE_LINK = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^>]*>\s*""", re.I)


def _attr_values(pattern: re.Pattern[str], page: str) -> set[str]:
    return {word for match in pattern.finditer(page) for word in "".join(match.groups("")).split()}


def class_names(page: str) -> tuple[set[str], set[str]]:
    """The class names and ids used in ``page``'s markup."""
    return _attr_values(_CLASS_ATTR, page), _attr_values(_ID_ATTR, page)


def slim_styles(page: str) -> str:
    """``page`` with the stylesheets between the nbops markers pruned to what it uses.

    A page without the markers (not rendered by the ``nbops`` template) is returned as is.
    """
    start, end = page.find(STYLES_START), page.find(STYLES_END)
    if start < 0 or end < start:
        return page
    head = page[start + len(STYLES_START) : end]
    rest = page[:start] + page[end:]
    css = "\n".join(m.group(1) for m in _STYLE.finditer(head))
    classes, ids = class_names(_STYLE.sub("", rest))
    pruned = prune(css, classes=classes, ids=ids)
    return (
        page[: start + len(STYLES_START)]
        + f'\n<style type="text/css">\n{pruned}\n</style>\n'
        + page[end:]
    )


def set_nav(page: str, nav: str) -> str:
    """``page`` with ``nav`` (HTML) as the first thing in its body, replacing an earlier one."""
    block = f"{NAV_START}\n{nav}\n{NAV_END}\n"
    if NAV_START in page:
        return _NAV.sub(lambda _: block, page, count=1)
    body = _BODY.search(page)
    if body is None:
        return block + page
    return page[: body.end()] + "\n" + block + page[body.end() :]


def offline(page: str) -> str:
    """``page`` without scripts, modules and stylesheets it would fetch from the network."""
    page = _REMOTE_SCRIPT.sub("", page)
    page = _REMOTE_LINK.sub("", page)
    return _INLINE_SCRIPT.sub(
        lambda m: "" if _REMOTE_IMPORT.search(m.group(1)) else m.group(0), page
    )
