"""What users of nbops 0.1 already have keeps working after the move to stage packages:
their notebooks' imports, their pipeline.yaml dotted paths, `python -m nbops.offline` in
their Makefiles, and models whose classes are named by 0.1 module paths."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest
import yaml

import nbops
from nbops._compat import MOVED
from tests.conftest import ROOT

ASSETS = ROOT / "tests" / "assets" / "nbops-0.1"


def _dotted_paths(spec: object) -> list[str]:
    found: list[str] = []
    if isinstance(spec, dict):
        for value in spec.values():
            found += _dotted_paths(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _dotted_paths(value)
    elif isinstance(spec, str) and spec.startswith("nbops."):
        found.append(spec)
    return found


def test_every_old_module_name_is_the_new_module_and_warns() -> None:
    for old, new in MOVED.items():
        sys.modules.pop(f"nbops.{old}", None)
        with pytest.warns(
            FutureWarning, match=rf"nbops\.{re.escape(old)} moved to nbops\.{re.escape(new)}"
        ):
            module = __import__(f"nbops.{old}", fromlist=["_"])
        # One module object: classes stay identical, isinstance and pickles hold.
        assert module is sys.modules[f"nbops.{new}"]
        assert module.__spec__.name == f"nbops.{new}"


def test_the_notebooks_of_a_0_1_project_import() -> None:
    code = (ASSETS / "notebook_imports.py").read_text()
    namespace: dict[str, object] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, "notebook_imports.py", "exec"), namespace)
    from nbops.modeling.evaluation import score_model
    from nbops.release.prepare import find_champion

    assert namespace["score_model"] is score_model
    assert namespace["find_champion"] is find_champion
    assert any(issubclass(w.category, FutureWarning) for w in caught)


@pytest.mark.parametrize("spec", ["pipeline.yaml", "pipeline.monitor.yaml"])
def test_the_dotted_paths_of_a_0_1_pipeline_resolve(spec: str) -> None:
    from ploomber.util.dotted_path import load_dotted_path

    paths = sorted(set(_dotted_paths(yaml.safe_load((ASSETS / spec).read_text()))))
    assert "nbops.tracking.hooks.task_finished" in paths
    assert "nbops.executor.NotebookExecutor" in paths
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            assert callable(load_dotted_path(path)), path


def test_python_dash_m_with_an_old_name_runs_the_new_module() -> None:
    # Makefiles written by `nbops init` 0.1 run `python -m nbops.offline`.
    result = subprocess.run(
        [sys.executable, "-m", "nbops.offline", "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "moved to nbops.build.offline" in result.stderr


def test_the_package_shows_its_stages() -> None:
    top = sorted(p.name for p in (ROOT / "src" / "nbops").iterdir() if not p.name.startswith("__"))
    modules = [name for name in top if name.endswith(".py")]
    assert len(modules) <= 10, modules
    for stage in (
        "data",
        "modeling",
        "release",
        "monitoring",
        "tracking",
        "serving",
        "build",
        "commands",
    ):
        assert stage in top
        assert (ROOT / "src" / "nbops" / stage / "__init__.py").read_text().startswith('"""')
    assert nbops.__version__
