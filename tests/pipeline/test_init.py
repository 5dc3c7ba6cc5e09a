"""`nbops init` on a CSV nbops did not ship with, then `make build` in the new folder."""

from __future__ import annotations

import json
import subprocess

import pytest
from sklearn.datasets import load_wine

from tests.conftest import BIN, build_env

pytestmark = pytest.mark.pipeline


def test_a_new_project_on_a_users_csv_builds_at_once(tmp_path):
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    wine["cultivar"] = wine["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    csv = tmp_path / "wine.csv"
    wine.to_csv(csv, index=False)
    project = tmp_path / "wine-model"
    subprocess.run(
        [str(BIN / "nbops"), "init", str(project), "--data", str(csv), "--target", "cultivar"],
        check=True,
        capture_output=True,
    )

    # The new project's Makefile uses the environment that created it (no install).
    result = subprocess.run(
        ["make", "build"], cwd=project, capture_output=True, text=True, timeout=900, env=build_env()
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    metrics = json.loads((project / "products" / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["metrics"]["accuracy"] > 0.85
    assert (project / "products" / "release" / "decision.json").is_file()
    assert "registered wine-model version 1" in result.stdout + result.stderr
