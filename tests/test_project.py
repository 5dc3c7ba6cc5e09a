"""The project folder and the model name every command resolves from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.errors import ConfigError
from nbops.project import model_name


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    (tmp_path / "env.yaml").write_text("release:\n  model_name: house-prices\n")
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def test_in_a_project_the_model_is_the_one_env_yaml_names(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project / "notebooks")  # anywhere inside the project
    assert model_name() == "house-prices"


def test_an_explicit_name_wins_then_the_environment(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NBOPS_MODEL", "from-env")
    assert model_name(root=project) == "from-env"
    assert model_name("explicit", root=project) == "explicit"


def test_outside_a_project_the_error_says_how_to_name_the_model(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"No model name: .* pass --model NAME, or set NBOPS_MODEL"
    ):
        model_name(root=tmp_path)
    assert model_name(root=tmp_path, required=False) is None


def test_an_unreadable_env_yaml_is_named(project: Path) -> None:
    (project / "env.yaml").write_text("release: [unclosed\n")
    with pytest.raises(ConfigError, match=r"env.yaml is not valid YAML"):
        model_name(root=project)
