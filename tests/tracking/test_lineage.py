"""Where a build came from: git state of a real repository, file hashes, versions."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from nbops.hashing import file_sha256 as file_hash
from nbops.tracking.lineage import freeze, git_state, python_info, source_hashes


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def make_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Factory: a committed git repository holding a project at ``subdir`` (default: its root)."""
    # The developer's own git configuration must not change what git prints.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    def make(subdir: str = "") -> Path:
        repo = tmp_path / "repo"
        project = repo / subdir if subdir else repo
        (project / "notebooks").mkdir(parents=True)
        (project / "pipeline.yaml").write_text("tasks: []\n")
        (project / "notebooks" / "train.py").write_text("print('train')\n")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "initial")
        return project

    return make


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo()


def test_clean_checkout(repo: Path) -> None:
    state = git_state(repo)

    assert state == {
        "commit": git(repo, "rev-parse", "HEAD").strip(),
        "branch": "main",
        "dirty": False,
        "diff": None,
        "untracked": [],
    }


def test_modified_tracked_file_makes_the_build_dirty_with_its_diff(repo: Path) -> None:
    (repo / "notebooks" / "train.py").write_text("print('train')\nprint('tuned')\n")

    state = git_state(repo)

    assert state["dirty"] is True
    assert "notebooks/train.py" in state["diff"]
    assert "+print('tuned')" in state["diff"]
    assert state["untracked"] == []


def test_untracked_file_is_listed(repo: Path) -> None:
    (repo / "notebooks" / "features.py").write_text("x = 1\n")

    state = git_state(repo)

    assert state["dirty"] is True
    assert state["untracked"] == ["notebooks/features.py"]


@pytest.mark.parametrize(
    "output",
    [
        "products/evaluate.html",
        "products/data/snapshot.parquet",
        ".nbops/mlflow.db",
        ".nbops/spool/abc/record.json",
        "notebooks/train.ipynb.metadata",
    ],
)
def test_pipeline_outputs_do_not_make_the_build_dirty(repo: Path, output: str) -> None:
    (repo / output).parent.mkdir(parents=True, exist_ok=True)
    (repo / output).write_text("generated\n")

    state = git_state(repo)

    assert state["dirty"] is False
    assert state["diff"] is None
    assert state["untracked"] == []


def test_outputs_of_a_project_in_a_repo_subfolder_do_not_make_it_dirty(
    make_repo: Callable[..., Path],
) -> None:
    project = make_repo("ml")
    (project / "products").mkdir()
    (project / "products" / "evaluate.html").write_text("generated\n")
    (project / ".nbops").mkdir()
    (project / ".nbops" / "mlflow.db").write_text("generated\n")

    assert git_state(project)["dirty"] is False


def test_an_output_with_a_space_in_its_name_does_not_make_the_build_dirty(repo: Path) -> None:
    (repo / "products").mkdir()
    (repo / "products" / "my report.html").write_text("generated\n")

    assert git_state(repo)["dirty"] is False


def test_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stop git from finding a repository above the temporary folder.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = tmp_path / "plain"
    project.mkdir()

    assert git_state(project) == {
        "commit": None,
        "branch": None,
        "dirty": None,
        "diff": None,
        "untracked": [],
    }


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_source_hashes_are_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    pipeline = tmp_path / "pipeline.yaml"
    notebook = tmp_path / "notebooks" / "train.ipynb"
    pipeline.write_text("tasks: []\n")
    notebook.write_text("{}\n")

    hashes = source_hashes(tmp_path, [notebook, pipeline, tmp_path / "missing.yaml"])

    assert hashes == {"notebooks/train.ipynb": sha256(notebook), "pipeline.yaml": sha256(pipeline)}
    assert file_hash(pipeline) == sha256(pipeline)


def test_source_hash_changes_with_the_file_only(tmp_path: Path) -> None:
    first, second = tmp_path / "env.yaml", tmp_path / "pipeline.yaml"
    first.write_text("rows: 100\n")
    second.write_text("tasks: []\n")
    before = source_hashes(tmp_path, [first, second])

    first.write_text("rows: 200\n")
    after = source_hashes(tmp_path, [first, second])

    assert after["env.yaml"] != before["env.yaml"]
    assert after["pipeline.yaml"] == before["pipeline.yaml"]


def test_source_outside_the_project_keeps_its_path(tmp_path: Path) -> None:
    project, shared = tmp_path / "project", tmp_path / "shared.yaml"
    project.mkdir()
    shared.write_text("a: 1\n")

    assert source_hashes(project, [shared]) == {str(shared): sha256(shared)}


def test_freeze_lists_installed_packages_sorted() -> None:
    packages = freeze()

    assert f"pandas=={pd.__version__}" in packages
    assert packages == sorted(packages, key=str.lower)
    names = [p.split("==")[0].lower() for p in packages]
    assert len(names) == len(set(names))


def test_python_info_is_the_running_interpreter() -> None:
    info = python_info()

    assert info["python"] == platform.python_version()
    assert info["implementation"] == platform.python_implementation()
    assert info["platform"]
