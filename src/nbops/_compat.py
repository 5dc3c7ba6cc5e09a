"""Module names of nbops 0.1, still importable (with a warning) after the move to stage packages.

What users already have names the old modules: notebooks (``from nbops.evaluation
import ...``), ``pipeline.yaml`` dotted paths (``nbops.tracking.hooks.task_finished``,
``nbops.executor.NotebookExecutor``), Makefiles (``python -m nbops.offline``), Jupyter
config (``nbops.lab.PipelineContentsManager``), and models and pickles saved by 0.1,
which name their classes by module (``nbops.features.DateParts``). An import of an old
name returns the new module itself (one module object, so classes stay identical and
``isinstance`` holds) and warns once per name with a ``FutureWarning``, which Python
shows by default. Standard library only; installed by ``nbops/__init__.py``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Iterable
from types import CodeType, ModuleType

#: 0.1 module name -> where it lives now (both under ``nbops.``).
MOVED: dict[str, str] = {
    "sources": "data.sources",
    "tables": "data.tables",
    "datasets": "data.datasets",
    "snapshot": "data.snapshot",
    "target": "data.target",
    "schema": "data.schema",
    "artifacts": "data.artifacts",
    "split": "modeling.split",
    "roles": "modeling.roles",
    "features": "modeling.features",
    "models": "modeling.models",
    "evaluation": "modeling.evaluation",
    "plots": "modeling.plots",
    "gate": "release.gate",
    "drift": "monitoring.drift",
    "monitor": "monitoring.live",
    "watch": "monitoring.watch",
    "registry": "tracking.registry",
    "tracking.hooks": "build.hooks",
    "tracking.review": "commands.review",
    "executor": "build.executor",
    "kernels": "build.kernels",
    "lab": "build.lab",
    "nbclean": "build.nbclean",
    "offline": "build.offline",
    "scaffold": "commands.init",
    "export": "commands.export",
    "reproduce": "commands.reproduce",
}
_OLD = {f"nbops.{old}": f"nbops.{new}" for old, new in MOVED.items()}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds a 0.1 module name and hands back the module it became."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: ANN201
        if fullname not in _OLD:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = _OLD[spec.name]
        _warn(spec.name)
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the old spec on the shared module object: put the
        # real one back, so the module keeps its own identity (reload, pickling, runpy).
        old = module.__spec__.name
        module.__spec__ = self._specs.pop(old, module.__spec__)

    # ``python -m nbops.offline`` (Makefiles of projects made by 0.1) runs the new code.
    def get_code(self, fullname: str) -> CodeType | None:
        new = _OLD[fullname]
        _warn(fullname)
        spec = importlib.util.find_spec(new)
        assert spec is not None and spec.loader is not None
        return spec.loader.get_code(new)  # type: ignore[union-attr]

    def get_source(self, fullname: str) -> str | None:
        return None

    def is_package(self, fullname: str) -> bool:
        return False


def _warn(old: str) -> None:
    warnings.warn(
        f"{old} moved to {_OLD[old]} in nbops 0.2; update the import (or dotted path) "
        "that names it. The old name goes away in 0.3.",
        FutureWarning,
        stacklevel=3,
    )


def legacy_names(names: Iterable[str]) -> frozenset[str]:
    """``names`` plus each one as nbops 0.1 spelled it, for exact trust lists.

    Example: ``nbops.modeling.features.DatetimeFeatures`` also gives
    ``nbops.features.DatetimeFeatures``, the name a model saved by 0.1 records.
    """
    out = set(names)
    for name in names:
        for old, new in _OLD.items():
            if name.startswith(new + "."):
                out.add(old + name[len(new) :])
    return frozenset(out)


def install() -> None:
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
