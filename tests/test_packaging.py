"""The project as a user receives it: dependencies, offline environment, notebooks in
git, workflows, README quick start."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbformat
import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from tests.conftest import BIN, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
    (ROOT / "notebooks" / "score").glob("*.ipynb")
)
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and not re.match(r"^(python|pip)\b", dep):
            req = Requirement(dep)
            out[req.name.lower()] = str(req.specifier)
    return out


def test_environment_yml_matches_pyproject():
    assert _conda_requirements() == _pyproject_requirements()


def test_every_dependency_has_a_lower_bound():
    unbounded = [name for name, spec in _pyproject_requirements().items() if ">=" not in spec]
    assert not unbounded


def test_the_environment_sends_no_telemetry_even_outside_make():
    # A clean environment, as when a user runs `ploomber build` or `jupyter lab` by hand.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLOOMBER") and k not in {"CI", "READTHEDOCS"}
    }
    code = "from ploomber_core.telemetry.telemetry import check_telemetry_enabled; print(check_telemetry_enabled())"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    check = subprocess.run(
        [sys.executable, "-m", "nbops.build.offline", "--check"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_mlflow_sends_no_telemetry_from_the_environment_or_from_nbops():
    # MLflow 3 reports usage to its vendor (a config fetch, then a sender thread that an
    # offline machine waits on at exit) unless MLFLOW_DISABLE_TELEMETRY or DO_NOT_TRACK
    # is set; it also stays quiet under pytest and in CI, so both are taken out here.
    quiet = {"PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "CI", "GITHUB_ACTIONS", "DO_NOT_TRACK"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in quiet and not k.startswith(("MLFLOW_", "PYTEST"))
    }
    code = (
        "import sys; {}; from mlflow.telemetry.utils import is_telemetry_disabled; "
        "print(is_telemetry_disabled())"
    )
    for setup in ("pass", "import nbops.tracking"):
        result = subprocess.run(
            [sys.executable, *(["-S"] if setup != "pass" else []), "-c", code.format(setup)],
            env=env if setup == "pass" else {**env, "PYTHONPATH": os.pathsep.join(sys.path)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == "True", (setup, result.stderr[-2000:])


def test_ploomber_cloud_extension_is_disabled_but_notebook_integration_is_on():
    result = subprocess.run(
        [str(BIN / "jupyter"), "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert re.search(r"ploomber_extension\s+disabled", listing), listing
    assert re.search(r"ploomber\s+enabled", listing), listing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_in_git_are_stripped_reports_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs or c.execution_count for c in code), "outputs stay out of git"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), (
        "a title a reviewer reads first"
    )
    assert nb.cells[-2].cell_type == "markdown" and "Summary" in nb.cells[-2].source, (
        "ends with a summary"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_every_task_keeps_its_notebook_and_html():
    spec = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    for task in spec["tasks"]:
        assert task["nb_product_key"] == ["nb", "html"], task["source"]
        assert task["product"]["html"].endswith(".html") and task["product"]["nb"].endswith(
            ".ipynb"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_github_actions(path):
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_no_zizmor_findings(path):
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert "make test" in runs


def test_readme_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README has a Quick start section with a code block"
    assert [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ] == ["make build", "make test"]
