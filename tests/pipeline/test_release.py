"""Continuous delivery of the model, end to end: real builds, the gate notebook, the
MLflow Model Registry, `nbops models / promote / rollback`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import (
    BIN,
    Project,
    alarms,
    build_env,
    copy_built_project,
    copy_built_with_store,
)

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
def releases(built_project, tmp_path_factory):
    """A weak first model, then a clearly better one, then a weak one again (in a copy of
    the session's build: the data tasks are done, each build trains, evaluates and gates).
    Also the project as it was after the first build (its store: a weak champion, v1),
    copied aside for the racing releases."""
    folder = tmp_path_factory.mktemp("release")
    project = copy_built_project(built_project, folder / "churn")
    project.set_env(release={"floors": {"min_metric": 0.55}})
    outputs, decisions = [], []
    for args in (WEAK, (), WEAK):
        outputs.append(project.build(*args).stderr)
        decisions.append(decision(project))
        if len(outputs) == 1:
            weak_champion = copy_built_with_store(project, folder / "weak" / "churn")
    return project, outputs, decisions, weak_champion


def test_the_first_model_that_clears_the_floors_becomes_champion(releases):
    project, outputs, decisions, _ = releases
    assert decisions[0]["action"] == "promote" and "no champion yet" in decisions[0]["summary"]
    assert "nbops: registered churn version 1; gate: promote (champion → v1)." in outputs[0]
    assert alarms(*outputs) == []  # promoted, then promoted again, then rejected: all went well


def test_a_better_model_is_promoted_and_the_old_champion_becomes_previous(releases):
    project, outputs, decisions, _ = releases
    second = decisions[1]
    assert second["action"] == "promote", second["summary"]
    assert second["interval"]["low"] > 0 and second["champion_version"] == "1"
    assert "previous → v1, champion → v2" in outputs[1]


def test_a_worse_model_leaves_the_champion_and_the_report_says_why_with_the_interval(releases):
    project, outputs, decisions, _ = releases
    third = decisions[2]
    assert third["action"] == "reject" and third["summary"].startswith("Champion kept")
    assert "CI [" in third["summary"] and third["interval"]["high"] < 0
    assert "gate: reject" in outputs[2]
    assert aliases(project) == {"champion": "2", "previous": "1"}
    report = (project.products / "gate.html").read_text()
    assert "REJECT" in report and "CI [" in report and "Paired bootstrap" in report


def test_registered_versions_carry_lineage_signature_and_card(releases):
    project, _, _, _ = releases
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
    project, _, _, _ = releases
    listing = project.cli("models").stdout
    assert "v2       champion" in listing and "v1       previous" in listing and "reject" in listing
    rolled = project.cli("rollback", "churn", "--reason", "v2 hurt conversion")
    assert "champion → v1" in rolled.stdout
    assert aliases(project) == {"champion": "1"}
    # The console script itself: what a deploy script sees (exit 1, one paragraph).
    again = project.nbops("rollback", "churn", "--reason", "again", check=False)
    assert (
        again.returncode == 1
        and "no previous champion" in again.stderr
        and "Traceback" not in again.stderr
    )
    missing = project.cli("promote", "churn", "42", "--reason", "typo", check=False)
    assert missing.returncode == 1 and "has no version 42" in missing.stderr
    promoted = project.cli(
        "promote", "churn", "2", "--reason", "reverted the rollback after review"
    )
    assert "previous → v1, champion → v2" in promoted.stdout
    audit = project.cli("models").stdout
    assert "rollback" in audit and "v2 hurt conversion" in audit and "promote (manual)" in audit


def test_manual_policy_holds_the_challenger_until_approved(copy_built):
    project = copy_built(release={"policy": "manual"})  # the gate runs again, into a new store
    project.build()
    assert decision(project)["action"] == "hold"
    assert aliases(project) == {"challenger": "1"}
    approved = project.cli("promote", "churn", "1", "--reason", "gate report reviewed")
    assert "champion → v1" in approved.stdout and "challenger → (none)" in approved.stdout
    assert aliases(project) == {"champion": "1"}
    twice = project.cli("promote", "churn", "1", "--reason", "again", check=False)
    assert twice.returncode == 1 and "already the champion" in twice.stderr


#: Installed in both racing builds (a sitecustomize on their PYTHONPATH): the release
#: step waits at a barrier until both builds reach it, so both gates have decided
#: against the same champion before either releases. It runs in the build's process, or
#: in a child of its kernel template (nbops.build.recorder): patched in both.
BARRIER = """
import os, sys, time
from pathlib import Path

folder = os.environ.get("NBOPS_TEST_RELEASE_BARRIER")
releasing = sys.argv and sys.argv[0].endswith("ploomber") or "nbops.build.forks" in sys.orig_argv
if folder and releasing:
    import nbops.release.prepare

    release_build = nbops.release.prepare.release_build

    def at_the_barrier(record, **kwargs):
        (Path(folder) / f"ready-{record.build_id}").touch()
        deadline = time.monotonic() + 900
        while len(list(Path(folder).glob("ready-*"))) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the other build never reached its release")
            time.sleep(0.01)
        return release_build(record, **kwargs)

    nbops.release.prepare.release_build = at_the_barrier
"""


@pytest.mark.timeout(1800)  # two partial builds side by side
def test_two_builds_racing_on_one_store_promote_exactly_once(
    releases, built_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One store for both projects (CI runners): the first release build's, with its weak
    # champion v1 that both racers beat.
    store = copy_built_with_store(releases[3], tmp_path / "store" / "churn")
    uri = f"sqlite:///{store.root / '.nbops' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # The racers: copies of the session's build (the default models, better than the
    # weak one), each asked for its gate again: both gate and release, nothing else.
    first, second = (
        copy_built_project(built_project, tmp_path / name / "churn") for name in ("a", "b")
    )
    for project in (first, second):
        (project.products / "release" / "decision.json").unlink()
    client = MlflowClient(uri)
    assert client.get_registered_model("churn").aliases == {"champion": 1}

    barrier, site = tmp_path / "barrier", tmp_path / "site"
    barrier.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(BARRIER)
    env = build_env(
        NBOPS_TEST_RELEASE_BARRIER=str(barrier),
        PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p),
    )
    racers = [
        subprocess.Popen(
            [str(BIN / "ploomber"), "build"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for project in (first, second)
    ]
    outputs = [racer.communicate(timeout=1500) for racer in racers]
    for racer, (out, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, f"a racing build failed:\n{out[-4000:]}\n{err[-4000:]}"

    assert len(list(barrier.glob("ready-*"))) == 2, "both builds reached the release"
    decisions = [decision(project) for project in (first, second)]
    assert [(d["action"], d["champion_version"]) for d in decisions] == [("promote", "1")] * 2
    roles = {alias: str(v) for alias, v in client.get_registered_model("churn").aliases.items()}
    assert sorted(roles) == ["challenger", "champion", "previous"] and roles["previous"] == "1"
    winner, loser = roles["champion"], roles["challenger"]
    assert {winner, loser} == {"2", "3"}
    errors = [err for _, err in outputs]
    promoted = [e for e in errors if f"gate: promote (previous → v1, champion → v{winner})." in e]
    held = [
        e for e in errors if f"gate: promote, hold (challenger → v{loser}). Held as challenger" in e
    ]
    assert len(promoted) == 1 and len(held) == 1, errors
    note = client.get_model_version("churn", loser).tags["nbops.gate_summary"]
    assert f"compared it with champion v1, but the champion is now champion v{winner}" in note
    assert client.get_model_version("churn", loser).tags["nbops.gate"] == "hold"
