"""Keep only the CSS a page uses.

nbconvert's lab template inlines JupyterLab's whole stylesheet (about 257 KB: every
widget, menu, dialog and icon of the application) into every report, of which a
rendered notebook uses a few percent. :func:`prune` keeps the rules whose selectors can
match the page's classes and ids, the at-rules that still hold rules, the keyframes that
are still animated, and the custom properties (``--jp-...``) that a kept declaration
reads, directly or through other custom properties.

It errs on the side of keeping: selectors inside ``:not()``, ``:is()``, ``:where()``
and ``:has()`` and attribute selectors are not checked, element selectors always match,
and a rule tinycss2 cannot read as declarations is kept as written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import tinycss2

__all__ = ["prune"]

_CLASS = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
_ID = re.compile(r"#(-?[_a-zA-Z][\w-]*)")
_VAR = re.compile(r"var\(\s*(--[\w-]+)")
_FUNCTIONAL = re.compile(r":(?:not|is|where|has|matches|-webkit-any|-moz-any)\(")
_NESTED_AT = {"media", "supports", "container", "layer", "document", "-moz-document"}
_KEYFRAMES = {"keyframes", "-webkit-keyframes", "-moz-keyframes"}


@dataclass
class _Rule:
    #: (selector, classes it needs, ids it needs), one per selector of the list
    selectors: list[tuple[str, frozenset[str], frozenset[str]]]
    declarations: list[tuple[str, str]]  # (name, value with "!important" if any)
    raw: str | None = None  # kept as written when not readable as declarations


@dataclass
class _Block:
    prelude: str  # "@media print"
    rules: list[Any] = field(default_factory=list)  # _Rule | _Block | _Raw


@dataclass
class _Raw:
    text: str
    keyframes: str | None = None  # the animation name, for @keyframes


def prune(css: str, *, classes: AbstractSet[str], ids: AbstractSet[str] = frozenset()) -> str:
    """The rules of ``css`` that can apply to a page with these classes and ids.

    Example:
        >>> prune(".a{color:red}.b{color:blue}p{margin:0}", classes={"a"})
        '.a{color:red}\\np{margin:0}'
    """
    nodes = _select(_parse(css), classes, ids)
    used_vars = _used_custom_properties(nodes)
    animations = " ".join(_declaration_values(nodes))
    return "\n".join(_serialize(nodes, used_vars, animations))


@functools.lru_cache(maxsize=8)
def _parse(css: str) -> tuple[Any, ...]:
    """The stylesheet read once (every report of a build inlines the same one)."""
    return tuple(_read(tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)))


def _read(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item.type == "qualified-rule":
            out.append(_read_rule(item))
        elif item.type == "at-rule":
            keyword = item.lower_at_keyword
            if keyword in _NESTED_AT and item.content is not None:
                rules = tinycss2.parse_rule_list(
                    item.content, skip_comments=True, skip_whitespace=True
                )
                out.append(
                    _Block(f"@{item.at_keyword} {_text(item.prelude)}".strip(), _read(rules))
                )
            elif keyword in _KEYFRAMES:
                out.append(_Raw(item.serialize(), keyframes=_text(item.prelude)))
            elif keyword != "import":  # an @import would load from elsewhere: never wanted
                out.append(_Raw(item.serialize()))
    return out


def _read_rule(rule: Any) -> _Rule:
    selectors = []
    for selector in _split_selectors(_text(rule.prelude)):
        plain = _without_brackets(selector)
        selectors.append(
            (selector, frozenset(_CLASS.findall(plain)), frozenset(_ID.findall(plain)))
        )
    parsed = tinycss2.parse_declaration_list(rule.content, skip_comments=True, skip_whitespace=True)
    if any(d.type != "declaration" for d in parsed):
        return _Rule(selectors, [], raw=tinycss2.serialize(rule.content))
    return _Rule(
        selectors,
        [
            (d.name if d.name.startswith("--") else d.lower_name, _value(d.value, d.important))
            for d in parsed
        ],
    )


def _select(nodes: Any, classes: AbstractSet[str], ids: AbstractSet[str]) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if isinstance(node, _Rule):
            selectors = [s for s in node.selectors if s[1] <= classes and s[2] <= ids]
            if selectors:
                out.append(_Rule(selectors, node.declarations, node.raw))
        elif isinstance(node, _Block):
            inner = _select(node.rules, classes, ids)
            if inner:
                out.append(_Block(node.prelude, inner))
        else:
            out.append(node)
    return out


def _value(tokens: list[Any], important: bool) -> str:
    text = _text(tokens)
    return f"{text} !important" if important else text


def _text(tokens: list[Any]) -> str:
    """Tokens as CSS text, comments dropped and whitespace runs made single spaces."""
    parts = []
    for token in tokens:
        if token.type == "comment":
            continue
        parts.append(" " if token.type == "whitespace" else token.serialize())
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def _split_selectors(selector_list: str) -> list[str]:
    """``a, b:is(c, d)`` → ``["a", "b:is(c, d)"]`` (commas inside brackets stay)."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(selector_list):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            out.append(selector_list[start:i].strip())
            start = i + 1
    out.append(selector_list[start:].strip())
    return [s for s in out if s]


def _without_brackets(selector: str) -> str:
    """The selector without attribute selectors and functional pseudo-classes, which
    are not checked (a class inside ``:not()`` need not be on the page)."""
    out, depth, i = [], 0, 0
    while i < len(selector):
        char = selector[i]
        match = _FUNCTIONAL.match(selector, i) if depth == 0 else None
        if match:
            depth, i = 1, match.end()
            continue
        if char == "[" and depth == 0:
            depth = 1
        elif depth and char in "([":
            depth += 1
        elif depth and char in ")]":
            depth -= 1
        elif depth == 0:
            out.append(char)
        i += 1
    return "".join(out)


def _walk(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        if isinstance(node, _Block):
            yield from _walk(node.rules)
        else:
            yield node


def _declaration_values(nodes: list[Any]) -> list[str]:
    values = []
    for node in _walk(nodes):
        if isinstance(node, _Rule):
            values += [v for n, v in node.declarations if not n.startswith("--")]
            if node.raw:
                values.append(node.raw)
    return values


def _used_custom_properties(nodes: list[Any]) -> set[str]:
    """Custom properties read by a kept declaration, directly or through another."""
    definitions: dict[str, list[str]] = {}
    for node in _walk(nodes):
        if isinstance(node, _Rule):
            for name, value in node.declarations:
                if name.startswith("--"):
                    definitions.setdefault(name, []).append(value)
    used: set[str] = set()
    todo = [v for value in _declaration_values(nodes) for v in _VAR.findall(value)]
    for node in _walk(nodes):
        if isinstance(node, _Raw):
            todo += _VAR.findall(node.text)
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        for value in definitions.get(name, []):
            todo += _VAR.findall(value)
    return used


def _serialize(nodes: list[Any], used_vars: set[str], animations: str) -> list[str]:
    lines = []
    for node in nodes:
        if isinstance(node, _Block):
            inner = _serialize(node.rules, used_vars, animations)
            if inner:
                lines.append(node.prelude + "{\n" + "\n".join(inner) + "\n}")
        elif isinstance(node, _Raw):
            if node.keyframes is None or re.search(
                rf"(?<![\w-]){re.escape(node.keyframes)}(?![\w-])", animations
            ):
                lines.append(node.text)
        elif node.raw is not None:
            lines.append(f"{_selector(node)}{{{node.raw}}}")
        else:
            body = ";".join(
                f"{name}:{value}"
                for name, value in node.declarations
                if not name.startswith("--") or name in used_vars
            )
            if body:
                lines.append(f"{_selector(node)}{{{body}}}")
    return lines


def _selector(rule: _Rule) -> str:
    return ",".join(s[0] for s in rule.selectors)
