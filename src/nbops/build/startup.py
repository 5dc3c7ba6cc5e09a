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


def _getattr(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
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
