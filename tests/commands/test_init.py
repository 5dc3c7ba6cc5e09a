"""`nbops init`: a new project on the user's own data, ready to build."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import yaml

from nbops.commands.init import init_project, template_root
from nbops.errors import ConfigError
from tests.conftest import BIN, ROOT


@pytest.fixture
def csv(tmp_path):
    rng = pd.Series(range(120))
    frame = pd.DataFrame(
        {
            "age": (rng % 50 + 18).astype(int),
            "income": rng * 1000.5,
            "city": ["north", "south", "east"] * 40,
            "bought": ["yes", "no"] * 60,
        }
    )
    path = tmp_path / "Shop Customers.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_template_is_the_reference_project():
    assert template_root() == ROOT


def test_init_sets_the_project_up_for_the_data(tmp_path, csv):
    project = init_project(tmp_path / "Shop Model", data=csv, target="bought")

    env = yaml.safe_load((project / "env.yaml").read_text())
    assert env["data"]["source"] == "data/Shop Customers.csv"
    assert (project / env["data"]["source"]).read_bytes() == csv.read_bytes()
    assert (env["data"]["target"], env["task"]) == ("bought", "classification")
    assert env["release"]["model_name"] == "shop-model"
    schema = yaml.safe_load((project / env["schema"]).read_text())
    assert set(schema["columns"]) == {"age", "income", "city", "bought"}
    assert "# the column to predict" in (project / "env.yaml").read_text(), "comments kept"
    for item in (
        "pipeline.yaml",
        "pipeline.monitor.yaml",
        "notebooks/gate.ipynb",
        "notebooks/monitor/drift.ipynb",
        "notebooks/score/report.ipynb",
        ".github/workflows/cd.yml",
        ".github/workflows/monitor.yml",
        ".github/workflows/score.yml",
        ".jupyter/jupyter_server_config.py",
        ".jupyter/labconfig/page_config.json",
        "Makefile",
        "README.md",
        ".gitignore",
    ):
        assert (project / item).is_file(), item
    assert "make build" in (project / "README.md").read_text()


def test_without_data_the_project_is_the_churn_example(tmp_path):
    project = init_project(tmp_path / "example")
    env = yaml.safe_load((project / "env.yaml").read_text())
    assert env["data"]["source"] == "bundled" and (project / env["schema"]).is_file()


@pytest.mark.parametrize(
    ("column", "task"),
    [("income", "regression"), ("city", "classification"), ("age", "regression")],
)
def test_the_task_is_guessed_from_the_target(tmp_path, csv, column, task):
    env = yaml.safe_load(
        (init_project(tmp_path / "p", data=csv, target=column) / "env.yaml").read_text()
    )
    assert env["task"] == task


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": None}, "--data needs --target"),
        (
            {"target": "price"},
            "Target column 'price' is not in Shop Customers.csv; its columns: age",
        ),
    ],
)
def test_bad_arguments_are_named(tmp_path, csv, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        init_project(tmp_path / "p", data=csv, **kwargs)
    assert not (tmp_path / "p").exists(), "nothing is left half-made"


def test_an_existing_project_is_never_overwritten(tmp_path, csv):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty"):
        init_project(tmp_path / "p", data=csv, target="bought")
    assert (tmp_path / "p" / "notes.txt").read_text() == "mine"


def test_the_command_line(tmp_path, csv):
    result = subprocess.run(
        [
            str(BIN / "nbops"),
            "init",
            str(tmp_path / "cli"),
            "--data",
            str(csv),
            "--target",
            "bought",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "make build" in result.stdout and (tmp_path / "cli" / "Makefile").is_file()


@pytest.mark.parametrize(
    ("column", "floors"),
    [
        (
            "income",
            {"min_metric": None, "min_gain_over_baseline": 0.1, "min_r2": 0.0},
        ),
        (
            "bought",
            {"min_metric": 0.6, "min_gain_over_baseline": 0.1, "min_r2": None},
        ),
    ],
)
def test_init_writes_the_release_floors_of_the_guessed_task(tmp_path, csv, column, floors):
    project = init_project(tmp_path / "p", data=csv, target=column)
    text = (project / "env.yaml").read_text()
    written = yaml.safe_load(text)["release"]["floors"]
    assert {k: written[k] for k in floors} == floors
    assert written["max_slice_drop_share"] == 0.05
    # Each floor keeps its explanation in the project's env.yaml.
    assert "min_r2: " + ("0.0" if column == "income" else "null") + "  # regression: R²" in text
    assert "# beat the evaluate step's naive baseline" in text


def test_every_release_floor_in_env_yaml_reaches_the_gate(tmp_path):
    """A floor the gate never sees is silently ignored: each key of release.floors (the
    pre-0.2 absolute max_slice_drop too) is a parameter of the gate notebook."""
    from ploomber.spec import DAGSpec

    from nbops.project import in_folder

    project = init_project(tmp_path / "churn")
    env = yaml.safe_load((project / "env.yaml").read_text())
    floors = env["release"]["floors"]
    floors["max_slice_drop"] = 0.07  # what a user upgrading from 0.1 may have set
    (project / "env.yaml").write_text(yaml.safe_dump(env))

    with in_folder(project):
        gate = DAGSpec(str(project / "pipeline.yaml")).to_dag()["gate"]

    assert {key: gate.params[key] for key in floors} == floors
