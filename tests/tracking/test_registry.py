"""The model registry against a real embedded MLflow store (SQLite in the project's .nbops/):
saving with skops, registering, aliases, approvals, rollback, the audit trail, hash-checked
loading and the lock that keeps concurrent promotions consistent."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from nbops.data.datasets import make_churn
from nbops.errors import ReleaseError
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.release.prepare import find_champion, release_requirements
from nbops.tracking.registry import (
    TRUST_RECORD,
    Registry,
    actor,
    alias_version,
    describe_models,
    load_skops,
    model_sha256,
    save_release_model,
)
from tests.conftest import free_port

pytestmark = [
    pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Operation with range is deprecated"),  # inside mlflow
]

NAME = "churn"
FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Released:
    """A fitted model, its test rows and the MLflow model folder it was saved to."""

    model: Pipeline
    X: pd.DataFrame
    folder: Path
    saved: dict


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    frame = make_churn(600)
    X, y = frame.drop(columns="churned"), frame["churned"]
    roles = infer_roles(frame, target="churned")
    model = make_model("linear", task="classification", roles=roles, seed=0).fit(X, y)
    base = tmp_path_factory.mktemp("release")
    schema = base / "data_schema.yaml"
    schema.write_text("columns: {}\n")
    card = base / "card.html"
    card.write_text("<h1>Model card</h1>\n")
    saved = save_release_model(
        model,
        base / "model",
        input_example=X.head(5),
        pip_requirements=release_requirements(),
        extra_files={"data_schema.yaml": str(schema), "model_card.html": str(card)},
    )
    return Released(model, X, base / "model", saved)


def test_saving_pins_the_running_environment_without_scanning_every_installed_package(
    released: Released, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # MLflow's mismatch check maps every file of every installed package (4.4 s a model);
    # the pins come from this environment, so it is skipped, and the pins are still written.
    import importlib_metadata
    import mlflow.utils.environment as environment
    import mlflow.utils.requirements_utils as requirements_utils

    scans: list[bool] = []  # MLflow swallows any error the check raises

    def scan() -> dict:
        scans.append(True)
        return {}

    monkeypatch.setattr(importlib_metadata, "packages_distributions", scan)
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)  # MLflow's cache
    check = environment.warn_dependency_requirement_mismatches
    save_release_model(
        released.model,
        tmp_path / "model",
        input_example=released.X.head(5),
        pip_requirements=release_requirements(),
    )
    pins = (tmp_path / "model" / "requirements.txt").read_text().splitlines()
    assert f"scikit-learn=={importlib_metadata.version('scikit-learn')}" in pins
    assert not scans, "every installed package was scanned"
    assert environment.warn_dependency_requirement_mismatches is check  # put back


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A fresh project with an empty embedded store."""
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    return Registry(tmp_path)


@pytest.fixture
def register(registry: Registry, released: Released) -> Callable[..., str]:
    """Factory: upload the saved model as a build run's ``model/`` artifacts and register
    it; returns the new version number."""

    def make(name: str = NAME, metric: float = 0.8123) -> str:
        client = registry.client
        run = client.create_run(registry.store.experiment_id("builds"))
        client.log_artifacts(run.info.run_id, str(released.folder), "model")
        client.set_terminated(run.info.run_id)
        tags = {
            "nbops.build_run": run.info.run_id,
            "nbops.primary_metric": "roc_auc",
            "nbops.metric": str(metric),
        }
        return registry.register_uploaded(name, run_id=run.info.run_id, tags=tags).version

    return make


def roles(registry: Registry, name: str = NAME) -> dict[str, str | None]:
    """Which version holds each alias (None: nobody)."""
    found = {role: registry.alias(name, role) for role in ("champion", "challenger", "previous")}
    return {role: v.version if v else None for role, v in found.items()}


def stored_file(registry: Registry, version: str, file: str = "model.skops") -> Path:
    """The file of ``version`` in the embedded artifact store (tmp_path/.nbops/artifacts)."""
    run_id = registry.client.get_model_version(NAME, version).run_id
    (path,) = (registry.root / ".nbops" / "artifacts").glob(f"**/{run_id}/**/model/{file}")
    return path


# -- saving ----------------------------------------------------------------------------


def test_the_release_model_is_an_mlflow_model_saved_with_skops(released: Released) -> None:
    folder = released.folder
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    sklearn_flavor = mlmodel["flavors"]["sklearn"]
    assert sklearn_flavor["serialization_format"] == "skops"
    assert sklearn_flavor["pickled_model"] == "model.skops"
    assert (folder / "model.skops").is_file()
    assert not list(folder.glob("*.pkl"))
    inputs = yaml.safe_load(mlmodel["signature"]["inputs"])
    assert {c["name"] for c in inputs} == set(released.X.columns)
    assert "tensor" in mlmodel["signature"]["outputs"]  # predict_proba's (n, 2) output
    assert (folder / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()
    assert (folder / "data_schema.yaml").read_text() == "columns: {}\n"
    assert (folder / "model_card.html").read_text() == "<h1>Model card</h1>\n"
    requirements = (folder / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "skops==" in requirements

    digest = hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    assert released.saved["sha256"] == model_sha256(folder) == f"sha256:{digest}"
    # The types loading will trust are recorded inside the hash-covered model file.
    with zipfile.ZipFile(folder / "model.skops") as archive:
        recorded = json.loads(archive.read(TRUST_RECORD))["trusted_types"]
    assert recorded == sorted(released.saved["trusted_types"])
    assert "nbops.modeling.features.DatetimeFeatures" in recorded


def double(values: np.ndarray) -> np.ndarray:
    return values * 2


def test_a_model_with_foreign_code_is_refused(tmp_path: Path) -> None:
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 2
    model = Pipeline(
        [("double", FunctionTransformer(double)), ("model", LogisticRegression())]
    ).fit(X, y)
    with pytest.raises(
        ReleaseError, match=r"will not trust on load: tests\.tracking\.test_registry\.double"
    ):
        save_release_model(
            model, tmp_path / "model", input_example=X[:3], pip_requirements=["scikit-learn"]
        )
    assert not (tmp_path / "model").exists()


# -- registering and the gate ----------------------------------------------------------


def test_registering_records_the_model_hash(
    registry: Registry, register: Callable[..., str], released: Released
) -> None:
    assert register() == "1"
    assert register() == "2"
    (v1, v2) = registry.versions(NAME)
    assert v1.tags["nbops.model_sha256"] == released.saved["sha256"]
    assert v1.tags["nbops.primary_metric"] == "roc_auc"
    assert v1.aliases == [] and v2.aliases == []
    assert v1.run_id != v2.run_id
    assert registry.models() == [NAME]


def test_gate_promotions_move_champion_and_previous(
    registry: Registry, register: Callable[..., str]
) -> None:
    first, second = register(), register()

    changes = registry.apply_gate(NAME, first, action="promote", summary="first", run_id=None)
    assert changes == ["champion → v1"]
    assert roles(registry) == {"champion": "1", "challenger": None, "previous": None}

    changes = registry.apply_gate(
        NAME, second, action="promote", summary="better", run_id=None, compared_with="1"
    )
    assert changes == ["previous → v1", "champion → v2"]
    assert roles(registry) == {"champion": "2", "challenger": None, "previous": "1"}
    assert registry.versions(NAME)[1].tags["nbops.gate"] == "promote"


def test_the_version_holding_an_alias_is_read_without_mlflow_as_mlflow_reads_it(
    registry: Registry, register: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `nbops monitor`'s notebooks ask which version serves: the embedded store answers.
    first, second = register(), register()
    registry.apply_gate(NAME, first, action="promote", summary="first", run_id=None)
    registry.apply_gate(
        NAME, second, action="promote", summary="better", run_id=None, compared_with="1"
    )
    expected = {role: registry.alias(NAME, role) for role in ("champion", "previous")}

    monkeypatch.setattr(Registry, "alias", lambda *args: pytest.fail("MLflow was asked"))
    found = {role: alias_version(registry.root, NAME, role) for role in expected}

    assert found == expected and found["champion"].version == "2"
    monkeypatch.undo()
    assert alias_version(registry.root, NAME, "challenger") is None  # nobody holds it
    assert alias_version(registry.root, NAME, "1") is None  # a number is not an alias


def test_a_held_model_becomes_challenger_only(
    registry: Registry, register: Callable[..., str]
) -> None:
    champion, held = register(), register()
    registry.apply_gate(NAME, champion, action="promote", summary="first", run_id=None)

    changes = registry.apply_gate(NAME, held, action="hold", summary="awaiting", run_id="r1")

    assert changes == ["challenger → v2"]
    assert roles(registry) == {"champion": "1", "challenger": "2", "previous": None}
    assert registry.audit(NAME)[0]["action"] == "hold (gate)"
    assert registry.audit(NAME)[0]["build_run"] == "r1"


def test_a_rejected_model_gets_no_alias_but_is_tagged(
    registry: Registry, register: Callable[..., str]
) -> None:
    champion, rejected = register(), register()
    registry.apply_gate(NAME, champion, action="promote", summary="first", run_id=None)

    changes = registry.apply_gate(
        NAME, rejected, action="reject", summary="Champion kept: CI [-0.01, +0.02]", run_id=None
    )

    assert changes == []
    assert roles(registry) == {"champion": "1", "challenger": None, "previous": None}
    version = registry.versions(NAME)[1]
    assert version.aliases == []
    assert version.tags["nbops.gate"] == "reject"
    assert version.tags["nbops.gate_summary"] == "Champion kept: CI [-0.01, +0.02]"
    assert registry.audit(NAME)[0]["action"] == "reject (gate)"


def test_a_promotion_decided_against_another_champion_is_held_with_a_note(
    registry: Registry, register: Callable[..., str]
) -> None:
    first, second, late = register(), register(), register()
    registry.apply_gate(NAME, first, action="promote", summary="first", run_id=None)
    registry.apply_gate(
        NAME, second, action="promote", summary="beats v1", run_id=None, compared_with="1"
    )

    # This gate also compared with v1, but v2 was released in the meantime.
    changes = registry.apply_gate(
        NAME, late, action="promote", summary="beats v1 too", run_id="r3", compared_with="1"
    )

    assert changes == ["challenger → v3"]
    assert roles(registry) == {"champion": "2", "challenger": "3", "previous": "1"}
    entry = registry.audit(NAME)[0]
    assert (entry["action"], entry["version"], entry["build_run"]) == (
        "hold (stale decision)",
        "3",
        "r3",
    )
    assert entry["why"].startswith(
        "Held as challenger, not promoted: the gate compared it with champion v1, "
        "but the champion is now champion v2"
    )
    assert entry["why"].endswith("Gate: beats v1 too")
    assert registry.versions(NAME)[2].tags["nbops.gate"] == "hold"


# -- promote and rollback --------------------------------------------------------------


def test_promoting_the_challenger(registry: Registry, register: Callable[..., str]) -> None:
    champion, held = register(), register()
    registry.apply_gate(NAME, champion, action="promote", summary="first", run_id=None)
    registry.apply_gate(NAME, held, action="hold", summary="awaiting", run_id=None)

    changes = registry.promote(NAME, held, reason="reviewed the report")

    assert changes == ["previous → v1", "champion → v2", "challenger → (none)"]
    assert roles(registry) == {"champion": "2", "challenger": None, "previous": "1"}


def test_promoting_another_version_keeps_the_challenger(
    registry: Registry, register: Callable[..., str]
) -> None:
    for action in ("promote", "hold", None):
        version = register()
        if action:
            registry.apply_gate(NAME, version, action=action, summary=action, run_id=None)

    registry.promote(NAME, "3", reason="hotfix")

    assert roles(registry) == {"champion": "3", "challenger": "2", "previous": "1"}


@pytest.mark.parametrize(
    ("name", "version", "reason", "message"),
    [
        (NAME, "1", "again", r"Version 1 of 'churn' is already the champion; nothing to do"),
        (NAME, "7", "typo", r"Model 'churn' has no version 7; its versions are 1, 2\."),
        ("churm", "1", "typo", r"no registered model 'churm' \(registered: churn\)"),
        (NAME, "2", "  ", r"A promotion needs a reason"),
    ],
)
def test_promote_refuses_with_a_clear_message(
    registry: Registry,
    register: Callable[..., str],
    name: str,
    version: str,
    reason: str,
    message: str,
) -> None:
    registry.apply_gate(NAME, register(), action="promote", summary="first", run_id=None)
    register()
    before = len(registry.audit())

    with pytest.raises(ReleaseError, match=message):
        registry.promote(name, version, reason=reason)

    assert roles(registry) == {"champion": "1", "challenger": None, "previous": None}
    assert len(registry.audit()) == before


def test_rollback_restores_the_previous_champion(
    registry: Registry, register: Callable[..., str]
) -> None:
    first, second = register(), register()
    registry.apply_gate(NAME, first, action="promote", summary="first", run_id=None)
    registry.promote(NAME, second, reason="better")

    changes = registry.rollback(NAME, reason="errors in production")

    assert changes == ["champion → v1", "previous → (none)"]
    assert roles(registry) == {"champion": "1", "challenger": None, "previous": None}
    assert "nbops.rolled_back" in registry.versions(NAME)[1].tags
    assert registry.audit(NAME)[0]["replaced"] == "2"

    with pytest.raises(
        ReleaseError, match=r"no previous champion to roll back to \(champion is v1\)"
    ):
        registry.rollback(NAME, reason="again")


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        (NAME, "incident", r"Model 'churn' has no previous champion.*nbops promote churn VERSION"),
        ("nope", "incident", r"There is no registered model 'nope'"),
        (NAME, "", r"A rollback needs a reason"),
    ],
)
def test_rollback_refuses_with_a_clear_message(
    registry: Registry, register: Callable[..., str], name: str, reason: str, message: str
) -> None:
    registry.apply_gate(NAME, register(), action="promote", summary="first", run_id=None)
    with pytest.raises(ReleaseError, match=message):
        registry.rollback(name, reason=reason)
    assert roles(registry)["champion"] == "1"


# -- the audit trail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NBOPS_ACTOR": "alice", "GITHUB_ACTOR": "ci-bot"}, "alice"),
        ({"GITHUB_ACTOR": "ci-bot"}, "ci-bot"),
    ],
)
def test_actor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert actor() == expected


def test_every_change_is_audited_newest_first(
    registry: Registry, register: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    first, second, third = register(), register(), register()
    monkeypatch.setenv("NBOPS_ACTOR", "build-bot")
    registry.apply_gate(NAME, first, action="promote", summary="first model", run_id="run-1")
    registry.apply_gate(NAME, second, action="hold", summary="looks better", run_id="run-2")
    registry.apply_gate(NAME, third, action="reject", summary="Champion kept", run_id="run-3")
    monkeypatch.setenv("NBOPS_ACTOR", "alice")
    registry.promote(NAME, second, reason="reviewed the card")
    registry.rollback(NAME, reason="latency alarms")

    entries = registry.audit(NAME)

    assert [(e["action"], e["version"], e["who"], e["why"]) for e in entries] == [
        ("rollback", "1", "alice", "latency alarms"),
        ("promote (manual)", "2", "alice", "reviewed the card"),
        ("reject (gate)", "3", "build-bot", "Champion kept"),
        ("hold (gate)", "2", "build-bot", "looks better"),
        ("promote (gate)", "1", "build-bot", "first model"),
    ]
    assert [e["changes"] for e in entries] == [
        "champion → v1; previous → (none)",
        "previous → v1; champion → v2; challenger → (none)",
        "",
        "challenger → v2",
        "champion → v1",
    ]
    assert entries[-1]["build_run"] == "run-1"
    assert all(e["model"] == NAME and e["time"] for e in entries)
    # The version keeps its own history as tags too.
    history = [
        v for k, v in registry.versions(NAME)[1].tags.items() if k.startswith("nbops.audit.")
    ]
    assert sorted(history) == [
        "hold (gate) by build-bot: looks better",
        "promote (manual) by alice: reviewed the card",
    ]


def test_describe_models(
    registry: Registry, register: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert describe_models(registry).startswith("No registered models yet.")
    monkeypatch.setenv("NBOPS_ACTOR", "alice")
    first, second = register(metric=0.8123), register(metric=0.8456)
    registry.apply_gate(NAME, first, action="promote", summary="first model", run_id=None)
    registry.promote(NAME, second, reason="reviewed the card")

    text = describe_models(registry)

    lines = text.splitlines()
    assert lines[0] == NAME
    assert lines[1].split() == ["VERSION", "ALIASES", "CREATED", "METRIC", "GATE", "BUILD", "RUN"]
    assert lines[2].split()[:2] == ["v2", "champion"]
    assert "roc_auc 0.8456" in lines[2]
    assert lines[3].split()[:2] == ["v1", "previous"]
    assert "roc_auc 0.8123" in lines[3] and "promote" in lines[3]
    assert "  audit (latest first):" in lines
    assert any(
        "v2" in line and "promote (manual)" in line and "by alice: reviewed the card" in line
        for line in lines
    )
    assert any(
        "v1" in line and "promote (gate)" in line and "by alice: first model" in line
        for line in lines
    )


# -- loading ---------------------------------------------------------------------------


def test_loading_the_champion_gives_the_same_predictions(
    registry: Registry, register: Callable[..., str], released: Released
) -> None:
    registry.apply_gate(NAME, register(), action="promote", summary="first", run_id=None)

    version, model = registry.load(NAME, "champion")

    assert version.version == "1" and "champion" in version.aliases
    np.testing.assert_allclose(
        model.predict_proba(released.X), released.model.predict_proba(released.X)
    )


def test_a_tampered_model_file_is_refused(registry: Registry, register: Callable[..., str]) -> None:
    version = register()
    registry.apply_gate(NAME, version, action="promote", summary="first", run_id=None)
    stored = stored_file(registry, version)
    stored.write_bytes(stored.read_bytes() + b"\0")

    with pytest.raises(
        ReleaseError, match=r"version 1 \(champion\) does not match its recorded hash"
    ):
        registry.load(NAME, "champion")


class _TouchOnUnpickle:
    """A pickle that, when loaded, creates a file: stands for any code an attacker runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_mlmodel_cannot_swap_in_a_pickle(
    registry: Registry, register: Callable[..., str], tmp_path: Path
) -> None:
    import pickle

    version = register()
    registry.apply_gate(NAME, version, action="promote", summary="first", run_id=None)
    mlmodel_path = stored_file(registry, version, "MLmodel")
    marker = tmp_path / "code-ran"
    (mlmodel_path.parent / "evil.pkl").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    mlmodel["flavors"]["sklearn"].update(
        pickled_model="evil.pkl", serialization_format="cloudpickle"
    )
    mlmodel_path.write_text(yaml.safe_dump(mlmodel))

    # The MLmodel file does not decide how nbops loads a model: only the hash-checked
    # model.skops is read, so the swapped-in pickle is never touched.
    try:
        _, model = registry.load(NAME, "champion")
        assert hasattr(model, "predict_proba")
    finally:
        assert not marker.exists(), "loading the champion ran code from a swapped-in pickle"


def test_loading_a_role_nobody_holds_is_refused(
    registry: Registry, register: Callable[..., str]
) -> None:
    registry.apply_gate(NAME, register(), action="promote", summary="first", run_id=None)
    with pytest.raises(ReleaseError, match=r"Model 'churn' has no challenger.*nbops promote churn"):
        registry.load(NAME, "challenger")
    with pytest.raises(ReleaseError, match=r"Model 'other' has no champion"):
        registry.load("other")


def test_a_version_number_loads_that_version_with_its_hash_checked(
    registry: Registry, register: Callable[..., str]
) -> None:
    first = register()
    registry.apply_gate(NAME, first, action="promote", summary="first", run_id=None)
    second = register()  # no alias

    assert registry.load(NAME, second)[0].version == second  # `nbops score --alias 2`
    assert registry.load(NAME, f"v{second}")[0].version == second
    assert registry.load(NAME, first)[0].version == first
    with pytest.raises(ReleaseError, match=r"Model 'churn' has no 9\b"):
        registry.load(NAME, "9")
    stored = stored_file(registry, first)
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match=r"version 1 \(1\) does not match its recorded hash"):
        registry.load(NAME, first)


# -- concurrency -----------------------------------------------------------------------

# One Python imports the registry and MLflow's SQL layer once (seconds of CPU, the same
# in every racer; no store is opened before a fork), then, for each round it reads on
# stdin, forks one process per racer: separate processes contending for the registry
# lock, as two `nbops promote` commands would.
RACERS = """
import json, os, sys, time, traceback
from pathlib import Path
import mlflow.store.db.utils, mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
from mlflow.tracking import MlflowClient  # noqa: F401
from nbops.tracking.registry import Registry

root = Path(sys.argv[1])


def race(version, actor, ready, go):
    os.environ["NBOPS_ACTOR"] = actor
    registry = Registry(root)
    registry.versions("churn")  # connected and warm before the start signal
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.0005)
    print(registry.promote("churn", version, reason=f"race to v{version}"), flush=True)


for line in sys.stdin:
    children = []
    for racer in json.loads(line):
        pid = os.fork()
        if pid == 0:
            try:
                race(**racer)
                code = 0
            except BaseException:
                Path(racer["ready"] + ".error").write_text(traceback.format_exc())
                code = 1
            sys.stdout.flush()
            os._exit(code)
        children.append(pid)
    failed = sum(1 for pid in children if os.waitpid(pid, 0)[1])
    print(json.dumps({"failed": failed}), flush=True)
"""


def wait_for(paths: list[Path], racers: subprocess.Popen, timeout: float = 300) -> None:
    # A deadline, not a wait: getting ready is connecting to the store, seconds on a CI
    # runner busy with builds.
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        errors = [p.with_name(p.name + ".error") for p in paths]
        if failed := [e.read_text() for e in errors if e.exists()]:
            pytest.fail("a racer failed before the start:\n" + "\n".join(failed))
        if racers.poll() is not None:
            out, err = racers.communicate()
            pytest.fail(f"the racers exited early ({racers.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail("the racers did not get ready in time")
        time.sleep(0.02)


def test_concurrent_promotions_leave_consistent_aliases(
    registry: Registry, register: Callable[..., str], tmp_path: Path
) -> None:
    for _ in range(4):
        register()
    registry.apply_gate(NAME, "1", action="promote", summary="first", run_id=None)

    racers = subprocess.Popen(
        [sys.executable, "-c", RACERS, str(registry.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for round_ in range(3):
            before = roles(registry)["champion"]
            racing = [v for v in ("1", "2", "3", "4") if v != before][round_ % 2 :][:2]
            go = tmp_path / f"go-{round_}"
            ready = [tmp_path / f"ready-{round_}-{v}" for v in racing]
            actors = {v: f"racer{round_}-v{v}" for v in racing}
            spec = [
                {"version": v, "actor": actors[v], "ready": str(flag), "go": str(go)}
                for v, flag in zip(racing, ready, strict=True)
            ]
            racers.stdin.write(json.dumps(spec) + "\n")
            racers.stdin.flush()
            wait_for(ready, racers)
            go.touch()
            said = []
            while not (line := racers.stdout.readline()).startswith('{"failed"'):
                assert line, f"the racers exited:\n{''.join(said)}\n{racers.stderr.read()}"
                said.append(line)
            errors = [p.with_name(p.name + ".error") for p in ready]
            assert json.loads(line)["failed"] == 0, [e.read_text() for e in errors if e.exists()]

            after = roles(registry)
            assert after["champion"] in racing
            # Serialized by the lock: the later promotion replaced the earlier one, so the
            # earlier winner is previous (not the champion both started from).
            (other,) = set(racing) - {after["champion"]}
            assert after["previous"] == other
            assert after["previous"] != after["champion"]
            entries = [e for e in registry.audit(NAME) if e["who"] in actors.values()]
            assert sorted(e["who"] for e in entries) == sorted(actors.values())
            # The audit tells the same story: who replaced whom.
            later, earlier = entries
            assert (later["version"], later["replaced"]) == (after["champion"], other)
            assert (earlier["version"], earlier["replaced"]) == (other, before)
    finally:
        racers.stdin.close()
        racers.wait(timeout=60)


# -- the commands, in a project ---------------------------------------------------------


@pytest.fixture
def in_project(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The registry's project names its model house-prices in env.yaml; commands run there."""
    (registry.root / "env.yaml").write_text("release:\n  model_name: house-prices\n")
    monkeypatch.chdir(registry.root)
    return registry


def run_cli(*args: str):
    from click.testing import CliRunner

    from nbops.cli import main

    return CliRunner().invoke(main, list(args))


def test_registry_commands_default_to_the_projects_model(
    in_project: Registry, register: Callable[..., str]
) -> None:
    held = register("house-prices")
    register("other")
    in_project.apply_gate("house-prices", held, action="hold", summary="held", run_id=None)

    promoted = run_cli("promote", held, "--reason", "reviewed")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.startswith("house-prices: ")
    assert in_project.alias("house-prices", "champion").version == held

    listed = run_cli("models")
    assert "house-prices" in listed.output and "other" not in listed.output
    assert "other" in run_cli("models", "--all").output

    rolled = run_cli("rollback", "--reason", "no previous")
    assert rolled.exit_code == 1
    assert "Model 'house-prices' has no previous champion" in rolled.output


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        (None, "There is no registered model 'house-prices' to serve (registered: other)"),
        ("hold", "Model 'house-prices' has no champion to serve: no build has passed the gate"),
    ],
)
def test_serve_without_a_champion_is_one_paragraph_and_exit_1(
    in_project: Registry, register: Callable[..., str], gate: str | None, message: str
) -> None:
    register("other")
    if gate:
        version = register("house-prices")
        in_project.apply_gate("house-prices", version, action=gate, summary="held", run_id=None)

    result = run_cli("serve", "--port", str(free_port()))

    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# -- what loading trusts ---------------------------------------------------------------


def craft(
    model_file: Path, marker: Path, *, calls: str = "numpy.testing._private.utils.runstring"
) -> None:
    """Edit ``model_file`` as an attacker would: a node in its schema.json that makes skops
    call ``calls`` with code creating ``marker`` while the model loads."""
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    module, name = calls.rsplit(".", 1)

    def node(cls: str, loader: str, ident: int, **rest: object) -> dict:
        return {
            "__class__": cls,
            "__module__": "builtins",
            "__loader__": loader,
            "__id__": ident,
            **rest,
        }

    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    arguments = [
        node("str", "JsonNode", 2, content=json.dumps(code), is_json=True),
        node("dict", "DictNode", 3, content={}, key_types=node("list", "ListNode", 4, content=[])),
    ]
    schema["content"]["content"]["memory"] = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "__id__": 1,
        "content": node("tuple", "TupleNode", 5, content=arguments),
    }
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


@pytest.fixture
def tampered(registry: Registry, register: Callable[..., str], tmp_path: Path) -> Path:
    """A champion whose stored model.skops an attacker with write access to the store
    edited to run code, updating the recorded hash too; returns the marker file the code
    would create."""
    version = register()
    registry.apply_gate(NAME, version, action="promote", summary="first", run_id=None)
    stored = stored_file(registry, version)
    marker = tmp_path / "code-ran"
    craft(stored, marker)
    registry.client.set_model_version_tag(
        NAME, version, "nbops.model_sha256", model_sha256(stored.parent)
    )
    return marker


def _load_batch(root: Path) -> None:
    from nbops.monitoring.watch import load_batch

    batch = root / "batch.csv"
    batch.write_text("tenure_months\n3\n")
    load_batch(
        batch, root=root, model_name=NAME, alias="champion", target=None, positive_class=None
    )


def _served(root: Path) -> None:
    from nbops.serving.model import load_served_model

    load_served_model(root, NAME, "champion")


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda root: Registry(root).load(NAME), id="registry"),
        pytest.param(_served, id="nbops serve and its reload"),
        pytest.param(_load_batch, id="nbops monitor --data"),
    ],
)
def test_a_crafted_model_that_calls_a_function_is_refused_and_nothing_runs(
    registry: Registry, tampered: Path, load: Callable[[Path], object]
) -> None:
    with pytest.raises(
        ReleaseError,
        match=r"contains types nbops does not trust: numpy\.testing\._private\.utils\.runstring \(not on nbops' list",
    ):
        load(registry.root)
    assert not tampered.exists(), "loading the tampered model ran its code"


def test_the_gate_does_not_run_a_crafted_champion(registry: Registry, tampered: Path) -> None:
    champion = find_champion(NAME, root=registry.root)

    assert champion.unknown and champion.model is None
    assert "numpy.testing._private.utils.runstring" in champion.note
    assert not tampered.exists(), "the gate's champion lookup ran the tampered model's code"


@pytest.mark.parametrize(
    ("calls", "reason"),
    [
        (
            "nbops.modeling.features._to_float",
            r"nbops\.modeling\.features\._to_float \(a function, called instead of referenced\)",
        ),
        ("builtins.exec", r"builtins\.exec \(not on nbops' list of model classes\)"),
    ],
)
def test_a_trusted_function_or_a_builtin_called_while_loading_is_refused(
    released: Released, tmp_path: Path, calls: str, reason: str
) -> None:
    model_file = tmp_path / "model.skops"
    shutil.copyfile(released.folder / "model.skops", model_file)
    craft(model_file, tmp_path / "code-ran", calls=calls)

    with pytest.raises(ReleaseError, match=reason):
        load_skops(model_file)
    assert not (tmp_path / "code-ran").exists()


def test_a_type_the_model_did_not_record_at_save_time_is_refused(
    released: Released, tmp_path: Path
) -> None:
    # On nbops' allow-list, but this model was saved without it: someone swapped it in.
    model_file = tmp_path / "model.skops"
    with zipfile.ZipFile(released.folder / "model.skops") as source:
        members = {name: source.read(name) for name in source.namelist()}
    recorded = json.loads(members[TRUST_RECORD])["trusted_types"]
    members[TRUST_RECORD] = json.dumps(
        {"trusted_types": [t for t in recorded if t != "nbops.modeling.features.DatetimeFeatures"]}
    ).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)

    with pytest.raises(
        ReleaseError,
        match=r"nbops\.modeling\.features\.DatetimeFeatures \(not recorded when the model was saved\)",
    ):
        load_skops(model_file)


def test_a_model_saved_by_nbops_0_1_0_still_loads(
    registry: Registry, released: Released, tmp_path: Path
) -> None:
    # tests/tracking/fixtures/model-0.1.0.skops.gz was saved by save_release_model before models
    # recorded their trusted types; the allow-list alone decides for it.
    folder = tmp_path / "model"
    shutil.copytree(released.folder, folder)
    (folder / "model.skops").write_bytes(
        gzip.decompress((FIXTURES / "model-0.1.0.skops.gz").read_bytes())
    )
    expected = json.loads((FIXTURES / "model-0.1.0-expected.json").read_text())
    assert model_sha256(folder) == expected["sha256"]
    client = registry.client
    run = client.create_run(registry.store.experiment_id("builds"))
    client.log_artifacts(run.info.run_id, str(folder), "model")
    version = registry.register_uploaded(NAME, run_id=run.info.run_id, tags={}).version
    registry.apply_gate(NAME, version, action="promote", summary="from 0.1.0", run_id=None)

    _, model = registry.load(NAME)

    rows = pd.read_json(FIXTURES / "model-0.1.0-rows.json", orient="records", dtype=False)
    rows["signup_date"] = pd.to_datetime(rows["signup_date"]).dt.tz_localize(None)
    np.testing.assert_allclose(
        model.predict_proba(rows)[:, 1], expected["predict_proba"], rtol=1e-6
    )


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_model_with_a_many_valued_category_saves_and_loads(tmp_path: Path, task: str) -> None:
    # Over 30 categories the feature pipeline target-encodes, and the TargetEncoder keeps
    # its cross-fitting splitter (StratifiedKFold or KFold): on the trust list, by name.
    frame = make_churn(600)
    frame["store"] = [f"store-{i % 45}" for i in range(len(frame))]
    target = "churned" if task == "classification" else "monthly_charges"
    X, y = frame.drop(columns=target), frame[target]
    roles = infer_roles(frame, target=target)
    assert any(r.column == "store" and r.role == "high_cardinality" for r in roles)
    model = make_model("linear", task=task, roles=roles, seed=0).fit(X, y)
    saved = save_release_model(
        model, tmp_path / "model", input_example=X.head(5), pip_requirements=release_requirements()
    )
    loaded = load_skops(Path(saved["path"]) / "model.skops")
    np.testing.assert_allclose(
        loaded.predict(X.head(20)).astype(float), model.predict(X.head(20)).astype(float)
    )
