"""The repository's git set-up: pre-commit hooks (.pre-commit-config.yaml, `make lint`)
and nbdime's notebook diffs (.gitattributes, `make hooks`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.build.test_nbclean import notebook, write
from tests.conftest import BIN, ROOT, make_recipe

CONFIG = ROOT / ".pre-commit-config.yaml"
HOOKS = {
    hook["id"]: hook
    for repo in yaml.safe_load(CONFIG.read_text())["repos"]
    for hook in repo["hooks"]
}


def run_hook(hook_id: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """Run a local python hook's entry as pre-commit would, from the repository root,
    with this interpreter standing in for the hook's environment."""
    hook = HOOKS[hook_id]
    command = shlex.split(hook["entry"]) + hook.get("args", []) + [str(f) for f in files]
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_config_is_valid_and_local_only():
    result = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", str(CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    repos = yaml.safe_load(CONFIG.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"], "nothing is fetched from GitHub"
    assert set(HOOKS) == {
        "notebook-outputs",
        "notebook-injected-cells",
        "ruff-check",
        "ruff-format",
        "check-added-large-files",
    }


def test_the_ruff_hooks_use_the_ruff_of_the_environment():
    # One ruff for the editor, `ruff` by hand and the hook, so they never disagree.
    version = subprocess.run(
        [str(BIN / "ruff"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    for hook_id in ("ruff-check", "ruff-format"):
        assert HOOKS[hook_id]["additional_dependencies"] == [f"ruff=={version}"]


def test_the_injected_cell_hook_rejects_a_notebook_with_an_injected_cell(tmp_path):
    path = write(tmp_path / "train.ipynb", notebook(injected=True))
    before = path.read_text()
    result = run_hook("notebook-injected-cells", path)
    assert result.returncode == 1
    assert f"{path}: cell 3: an injected cell (tag injected-parameters)" in result.stderr
    assert "ploomber nb --remove" in result.stderr
    assert path.read_text() == before, "rejected, not rewritten"


def test_the_output_hook_strips_outputs_and_fails_the_commit(tmp_path):
    path = write(tmp_path / "train.ipynb", notebook(outputs=True))
    result = run_hook("notebook-outputs", path)
    assert result.returncode == 1
    assert "fixed: cell 3: 1 output(s)" in result.stderr
    assert json.loads(path.read_text()) == notebook()
    assert run_hook("notebook-outputs", path).returncode == 0, "passes once stripped"


def test_the_notebook_hooks_pass_on_clean_notebooks(tmp_path):
    path = write(tmp_path / "train.ipynb", notebook())
    for hook_id in ("notebook-outputs", "notebook-injected-cells"):
        assert run_hook(hook_id, path).returncode == 0


def test_the_notebook_hooks_pass_on_the_notebooks_in_git():
    listed = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not listed:
        pytest.skip("not a git checkout")
    for hook_id in ("notebook-outputs", "notebook-injected-cells"):
        result = run_hook(hook_id, *[ROOT / p for p in listed])
        assert result.returncode == 0, result.stderr


# -- nbdime ---------------------------------------------------------------------------


def hooks_recipe() -> list[str]:
    """The commands of `make hooks` for this environment, as make would run them."""
    return make_recipe("hooks")


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_hooks_gives_readable_notebook_diffs_without_the_venv(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for name in (".gitattributes", ".pre-commit-config.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    nb = nbformat.from_dict(notebook())
    nbformat.write(nb, repo / "train.ipynb")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")

    for command in hooks_recipe():
        subprocess.run(command, shell=True, cwd=repo, check=True, capture_output=True)
    assert (repo / ".git" / "hooks" / "pre-commit").is_file()
    assert git(repo, "status", "--porcelain") == "", ".gitattributes already had nbdime's lines"

    nb.cells[2].source = "print(product['model'], 'retrained')"
    nbformat.write(nb, repo / "train.ipynb")
    # A shell without the venv on PATH: the drivers are configured by absolute path.
    env = {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    diff = re.sub(r"\x1b\[[0-9;]*m", "", git(repo, "diff", env=env))
    assert "## modified /cells/2/source:" in diff, diff
    assert "-  print(product['model'])\n+  print(product['model'], 'retrained')" in diff
    assert '"source": [' not in diff, "not a diff of the raw JSON"
