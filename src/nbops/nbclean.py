"""Notebooks as git holds them: no outputs, no injected parameters cell.

A pipeline notebook in git is source: its outputs belong to the executed copy in
``products/``, and the cell Ploomber injects with the task's ``upstream`` and
``product`` paths (tag ``injected-parameters``) belongs to the machine that injected
it. This module finds both and removes them. It is used by the JupyterLab integration
(``nbops.lab``, on save) and by the repository's pre-commit hooks::

    python -I src/nbops/nbclean.py --only injected notebooks/*.ipynb    # reject
    python -I src/nbops/nbclean.py --fix --only outputs notebooks/*.ipynb  # strip

It reads notebooks as plain JSON and imports only the standard library, so pre-commit
runs it as a script in a bare environment, without installing nbops.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["INJECTED_TAGS", "KINDS", "clean", "main", "problems"]

#: Cell tags of what Ploomber adds to a notebook: its parameters and a debugging cell.
INJECTED_TAGS = ("injected-parameters", "debugging-settings")
#: What can be wrong with a notebook, each checked (and fixed) on its own.
KINDS = ("injected", "outputs")
#: Notebook metadata added by cell injection (papermill's record of the parameters and
#: Ploomber's ``injected_manually`` flag from ``ploomber nb --inject``).
_INJECTED_METADATA = ("papermill", "ploomber")
#: Cell metadata that records a run rather than the source.
_RUN_METADATA = ("execution", "papermill")


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_injected(cell: dict[str, Any]) -> bool:
    return any(tag in INJECTED_TAGS for tag in _tags(cell))


def problems(nb: dict[str, Any], *, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """What keeps ``nb`` (a notebook as parsed JSON) out of git, one line each.

    Example:
        >>> problems({"cells": [{"cell_type": "code", "metadata": {}, "source": "1",
        ...                      "outputs": [], "execution_count": 3}], "metadata": {}})
        ['cell 1: execution count 3 (run it through `make lab` or strip it)']
    """
    found = []
    for number, cell in enumerate(nb.get("cells", []), start=1):
        if "injected" in kinds and _is_injected(cell):
            tag = next(t for t in _tags(cell) if t in INJECTED_TAGS)
            found.append(
                f"cell {number}: an injected cell (tag {tag}) with one machine's paths; "
                "remove it with `ploomber nb --remove`, or save the notebook from `make lab`"
            )
            continue
        if "outputs" in kinds and cell.get("cell_type") == "code":
            if cell.get("outputs"):
                found.append(f"cell {number}: {len(cell['outputs'])} output(s)")
            if cell.get("execution_count") is not None:
                found.append(
                    f"cell {number}: execution count {cell['execution_count']} "
                    "(run it through `make lab` or strip it)"
                )
            run_keys = sorted(set(_RUN_METADATA) & set(cell.get("metadata", {})))
            if run_keys:
                found.append(f"cell {number}: run metadata {', '.join(run_keys)}")
    if "injected" in kinds:
        keys = sorted(set(_INJECTED_METADATA) & set(nb.get("metadata", {})))
        if keys:
            found.append(f"notebook metadata: {', '.join(keys)} left by cell injection")
    return found


def clean(nb: dict[str, Any], *, kinds: tuple[str, ...] = KINDS) -> bool:
    """Remove in place what :func:`problems` reports; return whether anything changed."""
    before = json.dumps(nb, sort_keys=True)
    if "injected" in kinds:
        nb["cells"] = [cell for cell in nb.get("cells", []) if not _is_injected(cell)]
        for key in _INJECTED_METADATA:
            nb.get("metadata", {}).pop(key, None)
        for cell in nb["cells"]:
            # papermill tags every cell while injecting; an empty list is its leftover.
            if cell.get("metadata", {}).get("tags") == []:
                del cell["metadata"]["tags"]
    if "outputs" in kinds:
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
                for key in _RUN_METADATA:
                    cell.get("metadata", {}).pop(key, None)
    return json.dumps(nb, sort_keys=True) != before


def _write(path: Path, nb: dict[str, Any]) -> None:
    # nbformat's own layout, so a notebook saved by Jupyter and one fixed here agree.
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Check (or ``--fix``) notebooks; exit 1 when any had a problem."""
    parser = argparse.ArgumentParser(
        prog="python -m nbops.nbclean",
        description="Check that notebooks are fit for git: no Ploomber-injected parameters "
        "cell, no outputs. Exits 1 listing every problem.",
        epilog="Example: python -m nbops.nbclean --fix notebooks/*.ipynb",
    )
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument(
        "--only", choices=KINDS, action="append", help="check only this (repeatable)"
    )
    parser.add_argument(
        "--fix", action="store_true", help="remove what is found, in place (still exits 1)"
    )
    args = parser.parse_args(argv)
    kinds = tuple(args.only or KINDS)
    status = 0
    for path in args.notebooks:
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"{path}: not a readable notebook ({exc})", file=sys.stderr)
            status = 1
            continue
        found = problems(nb, kinds=kinds)
        if not found:
            continue
        status = 1
        if args.fix:
            clean(nb, kinds=kinds)
            _write(path, nb)
            print(f"{path}: fixed: {'; '.join(found)}", file=sys.stderr)
        else:
            for line in found:
                print(f"{path}: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
