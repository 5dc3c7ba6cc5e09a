"""Continuous delivery of the model, end to end: real builds, the gate notebook, the
MLflow Model Registry, `nbops models / promote / rollback`."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.pipeline

WEAK = ("--env--train--models", "['hgb']", "--env--train--hyperparams--hgb--max_iter", "2")


def registry(project):
    return MlflowClient(f"sqlite:///{project.root / '.nbops' / 'mlflow.db'}")


def aliases(project, name="churn"):
    client = registry(project)
    return {
        alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()
    }


def decision(project):
    return json.loads((project.products / "release" / "decision.json").read_text())


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """A weak first model, then a clearly better one, then a weak one again."""
    from tests.conftest import _copy_project

    project = _copy_project(tmp_path_factory.mktemp("release") / "churn")
    project.set_env(release={"floors": {"min_metric": 0.55}})
    outputs, decisions = [], []
    for args in (WEAK, (), ("--force", *WEAK)):
        outputs.append(project.build(*args).stderr)
        decisions.append(decision(project))
    return project, outputs, decisions


def test_the_first_model_that_clears_the_floors_becomes_champion(releases):
    project, outputs, decisions = releases
    assert decisions[0]["action"] == "promote" and "no champion yet" in decisions[0]["summary"]
    assert "nbops: registered churn version 1; gate: promote (champion → v1)." in outputs[0]


def test_a_better_model_is_promoted_and_the_old_champion_becomes_previous(releases):
    project, outputs, decisions = releases
    second = decisions[1]
    assert second["action"] == "promote", second["summary"]
    assert second["interval"]["low"] > 0 and second["champion_version"] == "1"
    assert "previous → v1, champion → v2" in outputs[1]


def test_a_worse_model_leaves_the_champion_and_the_report_says_why_with_the_interval(releases):
    project, outputs, decisions = releases
    third = decisions[2]
    assert third["action"] == "reject" and third["summary"].startswith("Champion kept")
    assert "CI [" in third["summary"] and third["interval"]["high"] < 0
    assert "gate: reject" in outputs[2]
    assert aliases(project) == {"champion": "2", "previous": "1"}
    report = (project.products / "gate.html").read_text()
    assert "REJECT" in report and "CI [" in report and "Paired bootstrap" in report


def test_registered_versions_carry_lineage_signature_and_card(releases):
    project, _, _ = releases
    client = registry(project)
    version = client.get_model_version("churn", "2")
    build = client.get_run(version.tags["nbops.build_run"])
    assert (
        build.data.tags["nbops.kind"] == "build"
        and build.data.tags["nbops.release"] == "churn v2: promote"
    )
    assert version.tags["nbops.data_hash"] == build.data.tags["data.content_hash"]
    assert version.tags["nbops.model_sha256"].startswith("sha256:")
    files = {a.path for a in client.list_artifacts(version.run_id, "model")}
    assert {
        "model/MLmodel",
        "model/model.skops",
        "model/model_card.html",
        "model/data_schema.yaml",
        "model/input_example.json",
    } <= files
    mlmodel = (project.products / "release" / "model" / "MLmodel").read_text()
    assert "signature:" in mlmodel and "serialization_format: skops" in mlmodel


def test_models_promote_and_rollback_from_the_cli(releases):
    project, _, _ = releases
    listing = project.nbops("models").stdout
    assert "v2       champion" in listing and "v1       previous" in listing and "reject" in listing
    rolled = project.nbops("rollback", "churn", "--reason", "v2 hurt conversion")
    assert "champion → v1" in rolled.stdout
    assert aliases(project) == {"champion": "1"}
    again = project.nbops("rollback", "churn", "--reason", "again", check=False)
    assert (
        again.returncode == 1
        and "no previous champion" in again.stderr
        and "Traceback" not in again.stderr
    )
    missing = project.nbops("promote", "churn", "42", "--reason", "typo", check=False)
    assert missing.returncode == 1 and "has no version 42" in missing.stderr
    promoted = project.nbops(
        "promote", "churn", "2", "--reason", "reverted the rollback after review"
    )
    assert "previous → v1, champion → v2" in promoted.stdout
    audit = project.nbops("models").stdout
    assert "rollback" in audit and "v2 hurt conversion" in audit and "promote (manual)" in audit


def test_manual_policy_holds_the_challenger_until_approved(make_project):
    project = make_project(release={"policy": "manual"})
    project.build()
    assert decision(project)["action"] == "hold"
    assert aliases(project) == {"challenger": "1"}
    approved = project.nbops("promote", "churn", "1", "--reason", "gate report reviewed")
    assert "champion → v1" in approved.stdout and "challenger → (none)" in approved.stdout
    assert aliases(project) == {"champion": "1"}
    twice = project.nbops("promote", "churn", "1", "--reason", "again", check=False)
    assert twice.returncode == 1 and "already the champion" in twice.stderr
