"""``nbops reproduce``: a recorded build rebuilt from its commit, data snapshot and
parameters, in a git worktree, and compared metric by metric."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import Project, run_cli

pytestmark = pytest.mark.pipeline

GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project in git, built on an uncommitted change and command-line overrides: all
    must be restored for the metrics to match. The models train on a sample of the
    training rows (train.max_rows), which must be drawn the same way again."""
    from tests.conftest import _copy_project

    project = _copy_project(tmp_path_factory.mktemp("repro") / "project")
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=project.root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "pipeline"], cwd=project.root, check=True)
    project.set_env(split={"seed": 7})  # uncommitted: the build runs on a dirty tree
    project.build("--env--data--seed", "11", "--env--train--max_rows", "600")
    return project


def test_big_training_sets_are_sampled_for_the_fit_and_the_roles(recorded: Project) -> None:
    import json

    features = json.loads((recorded.products / "data" / "features.json").read_text())
    assert features["rows"]["train"] == 1_125  # 1,500 rows, a quarter held out
    metas = sorted((recorded.products / "train").glob("*.json"))
    assert len(metas) == 2  # one per model family
    for meta in metas:
        assert json.loads(meta.read_text())["train_rows"] == 600
        assert (
            "Training on a stratified sample of 600 of the 1,125 training rows"
            in meta.with_suffix(".html").read_text()
        )
    assert (
        "Roles inferred on a sample of 600 training rows"
        in (recorded.products / "split.html").read_text()
    )


def test_a_build_on_a_dirty_tree_with_overrides_reproduces_exactly(recorded: Project) -> None:
    before = run_cli(recorded.root, "runs", "list").stdout

    result = run_cli(recorded.root, "reproduce", "latest", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "sources: every pipeline file matches its recorded hash" in out
    assert "the recorded diff was applied" in out
    assert "data: match" in out
    assert "evaluate.metrics.roc_auc" in out
    assert "REPRODUCED:" in out and "NOT REPRODUCED" not in out
    # The rebuild was recorded in its own store; the worktree is gone.
    assert run_cli(recorded.root, "runs", "list").stdout == before
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=recorded.root, capture_output=True, text=True
    ).stdout
    assert len(worktrees.strip().splitlines()) == 1


def test_an_unknown_run_is_a_clear_error(recorded: Project) -> None:
    result = run_cli(recorded.root, "reproduce", "ffffffffffff", check=False)

    assert result.returncode == 2
    assert "No build run matches 'ffffffffffff'" in result.stderr


def test_a_build_made_outside_git_cannot_be_reproduced_and_says_why(built_project: Project) -> None:
    result = run_cli(built_project.root, "reproduce", "latest", check=False)

    assert result.returncode == 2
    assert "outside a git repository" in result.stderr
    assert "Commit the project to git" in result.stderr
