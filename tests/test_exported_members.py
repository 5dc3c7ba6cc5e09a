"""The public API: ``nbops.__all__`` agrees with what ``nbops/__init__.py`` exports.

Modelled on httpx's ``tests/test_exported_members.py``: a name added to ``__init__``
without being listed (or listed without being importable) fails here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import types
from pathlib import Path

import nbops

INIT = Path(nbops.__file__)
#: Dunder names that are part of the public API anyway.
INCLUDED_PRIVATE = {"__version__"}


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name in INCLUDED_PRIVATE


def _names_bound_in_init() -> set[str]:
    """Names bound at the top level of ``nbops/__init__.py``, read from its source."""
    names: set[str] = set()
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    names.discard("__all__")
    return names


def test_all_lists_every_public_name_bound_in_init() -> None:
    public = {name for name in _names_bound_in_init() if _is_public(name)}
    assert set(nbops.__all__) == public


def test_all_matches_public_attributes_of_the_package() -> None:
    # Submodules become attributes once imported (by nbops itself or by other tests), and
    # `from __future__ import annotations` binds `annotations`: neither is API.
    public = {
        name
        for name, value in vars(nbops).items()
        if _is_public(name)
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"
    }
    assert set(nbops.__all__) == public


def test_all_has_no_duplicates_and_every_name_imports() -> None:
    assert len(nbops.__all__) == len(set(nbops.__all__))
    for name in nbops.__all__:
        assert hasattr(nbops, name), f"nbops.__all__ lists {name!r}, which nbops does not define"


def test_exported_errors_share_one_root() -> None:
    # A notebook author catches NbopsError to handle every deliberate nbops failure.
    errors = [
        getattr(nbops, name)
        for name in nbops.__all__
        if isinstance(getattr(nbops, name), type)
        and issubclass(getattr(nbops, name), BaseException)
    ]
    assert nbops.NbopsError in errors
    assert all(issubclass(error, nbops.NbopsError) for error in errors)


def test_version_matches_installed_distribution() -> None:
    assert nbops.__version__ == importlib.metadata.version("nbops")
