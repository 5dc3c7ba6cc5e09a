"""Start-up of every Python process in the project's environment: no grammar compiled at import.

``ploomber``, ``papermill`` and ``nbformat`` import ``jsonschema``, whose format checker
imports ``rfc3987_syntax`` when it is installed (``jupyter-events`` asks for it through
``jsonschema[format-nongpl]``). That package compiles an Earley grammar when imported:
1.5 s of every ``ploomber build``, ``nbops monitor`` and Jupyter server start-up, for
the ``iri`` formats that no notebook or pipeline schema uses.

:func:`defer_iri_grammar` puts a stand-in for the package in ``sys.modules`` whose
functions compile the grammar on their first call: the same checks with the same
answers, paid only by a schema that uses them. ``python -m nbops.build.offline`` (run by
``make build``) copies this file into site-packages as ``_nbops_startup.py``, and a
``.pth`` file calls it at interpreter start-up, so it imports nothing but the standard
library (importing :mod:`nbops` costs 0.4 s).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

#: The package that compiles a grammar when imported, and the module that does it.
PACKAGE = "rfc3987_syntax"
HELPERS = f"{PACKAGE}.syntax_helpers"


def _helpers() -> Any:
    import importlib

    return importlib.import_module(HELPERS)


def _parse(term: str, value: str) -> Any:
    return _helpers().parse(term, value)


def _is_valid_syntax(term: str, value: str) -> bool:
    return _helpers().is_valid_syntax(term, value)


_names: frozenset[str] | None = None


def _helper_names() -> frozenset[str]:
    """The names the real package has (``from .syntax_helpers import *``), read from the
    source without running it: a module scan (pickle's and skops' ``whichmodule`` call
    ``getattr`` on every module in ``sys.modules``) must not compile the grammar."""
    global _names
    if _names is None:
        import ast

        spec = importlib.util.find_spec(HELPERS)
        from pathlib import Path

        source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        tree = ast.parse(source)
        found = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
        _names = frozenset(n for n in found if not n.startswith("_"))
    return _names


def _getattr(name: str) -> Any:
    if name.startswith("_") or name not in _helper_names():
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    return getattr(_helpers(), name)


def defer_iri_grammar() -> bool:
    """Stand in for ``rfc3987_syntax`` until its grammar is needed; True if installed.

    Nothing happens if the package is missing or already imported.
    """
    if PACKAGE in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    module = types.ModuleType(PACKAGE, "Deferred rfc3987_syntax (nbops.build.startup).")
    # The real package's folder: `import rfc3987_syntax.syntax_helpers` finds the real
    # submodule (and its sibling `utils`) through it.
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin
    module.__spec__ = spec
    module.parse = _parse  # type: ignore[attr-defined]
    module.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    module.__getattr__ = _getattr  # type: ignore[method-assign]
    sys.modules[PACKAGE] = module
    return True
