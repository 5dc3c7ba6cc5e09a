"""What a notebook imports, read from its code without running it.

Used to import ahead what a notebook will need: a warm kernel's preload
(:mod:`nbops.build.kernels`), ``nbops score``'s report. Standard library only, so
asking costs nothing.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["imported_modules"]


def imported_modules(notebook: dict[str, Any], *, names: bool = False) -> list[str]:
    """The modules a notebook's code cells import, in order (``import a.b``, ``from a
    import b``); cells that do not parse (magics) are skipped, relative imports ignored.

    With ``names``, ``from a import b`` also gives ``a.b``: a submodule imported by name
    (such as ``from nbops.modeling import plots``) is often most of the import; a name
    that is not a module then fails quietly where it is imported."""
    found: list[str] = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
                if names:
                    found += [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(found))
