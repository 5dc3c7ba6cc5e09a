"""What the gate notebook uses: both models' scores, slices, requirements, the model card,
and finding the champion in the registry; the gate's decision file; the release step
(register and move aliases, compare-and-set) against a real embedded MLflow store."""

from __future__ import annotations

import html
import importlib.metadata
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from nbops.data.datasets import make_churn
from nbops.data.target import TargetInfo, prepare_target
from nbops.errors import ReleaseError
from nbops.modeling.models import make_model
from nbops.modeling.roles import infer_roles
from nbops.release.gate import Check, GatePolicy, Interval, ReleaseDecision, decide, metric_value
from nbops.release.prepare import (
    GateScores,
    find_champion,
    gate_scores,
    model_card,
    release_build,
    release_requirements,
    slice_drops,
)
from tests.conftest import free_port

pytestmark = [
    pytest.mark.filterwarnings("ignore:`TargetEncoder.shuffle`:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
    pytest.mark.filterwarnings("ignore:Operation with range is deprecated"),  # inside mlflow
]


def fit(frame: pd.DataFrame, target: str, task: str, family: str = "linear") -> BaseEstimator:
    roles = infer_roles(frame, target=target)
    hyperparams = {"max_iter": 20} if family == "hgb" else {}
    model = make_model(family, task=task, roles=roles, hyperparams=hyperparams, seed=0)
    return model.fit(frame.drop(columns=target), frame[target])


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_churn(900)
    return frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)


# -- gate_scores ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "positive"),
    [
        (None, True),  # the bool target as generated: positive class True is classes_[1]
        ({True: "churned", False: "stayed"}, "churned"),  # the positive class is classes_[0]
    ],
)
def test_binary_scores_are_positive_class_probabilities(
    churn: tuple[pd.DataFrame, pd.DataFrame], labels: dict | None, positive: object
) -> None:
    train, test = churn
    if labels:
        train = train.assign(churned=train["churned"].map(labels).astype("string"))
        test = test.assign(churned=test["churned"].map(labels).astype("string"))
    train, target = prepare_target(train, "churned", "classification")
    assert target.positive_class == positive
    challenger = fit(train, "churned", "classification")
    champion = fit(train, "churned", "classification", "hgb")
    X, y = test.drop(columns="churned"), test["churned"]

    scores = gate_scores(challenger, champion, X, y, target, metric="roc_auc")

    column = list(challenger.classes_).index(positive)
    np.testing.assert_array_equal(scores.truth, (y == positive).astype(float))
    assert set(np.unique(scores.truth)) == {0.0, 1.0}
    np.testing.assert_allclose(scores.challenger_values, challenger.predict_proba(X)[:, column])
    np.testing.assert_allclose(scores.champion_values, champion.predict_proba(X)[:, column])
    # The gate's metric on these values is the metric the evaluation reports.
    for values, metrics in (
        (scores.challenger_values, scores.challenger_metrics),
        (scores.champion_values, scores.champion_metrics),
    ):
        assert metric_value("roc_auc", scores.truth, values) == pytest.approx(metrics["roc_auc"])
        assert metrics["roc_auc"] > 0.6
    assert scores.champion_error is None
    assert scores.latency_ms_per_row > 0


class _FixedCostModel:
    """Scores in a fixed 30 ms per call plus 0.01 ms per row, on a clock the test owns."""

    classes_ = np.array(["No", "Yes"])

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.clock[0] += 0.030 + 0.00001 * len(X)
        return np.tile([0.3, 0.7], (len(X), 1))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_latency_is_per_row_of_a_batch_not_a_small_test_sets_fixed_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 test rows (a small CSV's test split) must not pay a whole call's fixed cost
    each: 30 ms / 30 rows read as 1 ms per row, 6x the model's cost over 1,000 rows."""
    from nbops.release import prepare

    clock = [0.0]
    monkeypatch.setattr(prepare, "perf_counter", lambda: clock[0], raising=False)
    X = pd.DataFrame({"x": np.arange(30.0)})
    y = pd.Series(np.where(np.arange(30) % 2, "Yes", "No"))
    target = TargetInfo("y", "classification", ["No", "Yes"], "Yes")

    scores = gate_scores(_FixedCostModel(clock), None, X, y, target, metric="roc_auc")

    assert scores.latency_ms_per_row == pytest.approx((30 + 0.01 * 1_000) / 1_000)


def test_regression_scores_are_predictions(churn: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = churn
    train, target = prepare_target(train, "monthly_charges", "regression")
    challenger = fit(train, "monthly_charges", "regression")
    X, y = test.drop(columns="monthly_charges"), test["monthly_charges"]

    scores = gate_scores(challenger, None, X, y, target, metric="rmse")

    np.testing.assert_allclose(scores.truth, y.to_numpy(dtype=float))
    np.testing.assert_allclose(scores.challenger_values, challenger.predict(X))
    assert metric_value("rmse", scores.truth, scores.challenger_values) == pytest.approx(
        scores.challenger_metrics["rmse"]
    )
    assert scores.champion_values is None and scores.champion_metrics is None
    assert scores.champion_error is None


def test_a_champion_that_cannot_score_the_data_is_reported_not_raised(
    churn: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = churn
    train, target = prepare_target(train, "churned", "classification")
    challenger = fit(train, "churned", "classification")
    # Trained when the data had a column it no longer has.
    legacy = np.random.default_rng(0).normal(size=len(train))
    champion = fit(train.assign(legacy_score=legacy), "churned", "classification")

    scores = gate_scores(
        challenger,
        champion,
        test.drop(columns="churned"),
        test["churned"],
        target,
        metric="roc_auc",
    )

    assert scores.champion_error is not None
    assert "legacy_score" in scores.champion_error
    assert scores.champion_values is None and scores.champion_metrics is None
    assert scores.challenger_metrics["roc_auc"] > 0.6


# -- slice_drops ------------------------------------------------------------------------


@pytest.fixture
def sliced() -> tuple[GateScores, pd.DataFrame, dict]:
    """Champion and challenger equal on 'north', the challenger worse on 'south';
    'east' has too few rows to judge."""
    rng = np.random.default_rng(0)
    n = {"north": 200, "south": 200, "east": 10}
    region = np.repeat(list(n), list(n.values()))
    truth = rng.integers(0, 2, len(region)).astype(float)
    good = np.clip(truth * 0.6 + rng.uniform(0, 0.4, len(region)), 0, 1)
    noise = rng.uniform(0, 1, len(region))
    challenger = np.where(region == "north", good, noise)
    scores = GateScores(truth, challenger, good, {}, {}, 0.01)
    test = pd.DataFrame({"region": pd.array(region, dtype="string"), "x": 1.0})
    plan = {
        "roles": [{"column": "x", "role": "numeric"}, {"column": "region", "role": "categorical"}]
    }
    return scores, test, plan


def test_slice_drops_are_positive_where_the_challenger_is_worse(
    sliced: tuple[GateScores, pd.DataFrame, dict],
) -> None:
    scores, test, plan = sliced
    target = TargetInfo("churned", "classification", [False, True], True)

    drops = slice_drops(scores, test, target, plan, metric="roc_auc")

    assert set(drops) == {"region=north", "region=south"}  # east: 10 rows < 30
    assert drops["region=north"] == pytest.approx(0.0)
    assert drops["region=south"] > 0.3
    assert slice_drops(scores, test, target, plan, metric="roc_auc", min_rows=5).keys() == {
        "region=north",
        "region=south",
        "region=east",
    }


def test_slice_drops_for_a_lower_is_better_metric() -> None:
    truth = np.linspace(0, 10, 120)
    champion = truth + 0.1
    challenger = np.where(np.arange(120) < 60, truth + 0.1, truth + 2.0)
    scores = GateScores(truth, challenger, champion, {}, {}, 0.01)
    test = pd.DataFrame({"plan": ["basic"] * 60 + ["premium"] * 60})
    plan = {"roles": [{"column": "plan", "role": "categorical"}]}

    drops = slice_drops(
        scores, test, TargetInfo("charges", "regression"), plan, metric="rmse", min_rows=30
    )

    assert drops["plan=basic"] == pytest.approx(0.0)
    assert drops["plan=premium"] == pytest.approx(1.9)  # 1.9 worse in rmse: a positive drop


def test_no_slices_without_a_champion(sliced: tuple[GateScores, pd.DataFrame, dict]) -> None:
    scores, test, plan = sliced
    scores.champion_values = None
    target = TargetInfo("churned", "classification", [False, True], True)
    assert slice_drops(scores, test, target, plan, metric="roc_auc") == {}


# -- release_requirements ---------------------------------------------------------------


def test_release_requirements_pin_the_installed_versions() -> None:
    pins = dict(line.split("==") for line in release_requirements())
    for package in ("scikit-learn", "numpy", "pandas", "mlflow", "skops"):
        assert pins[package] == importlib.metadata.version(package)


# -- model_card -------------------------------------------------------------------------


def test_the_model_card_shows_the_decision_and_escapes_everything() -> None:
    evil = "<script>alert('x')</script>"
    decision = decide(GatePolicy(policy="manual"), challenger_metric=0.8123, interval=None)
    plan = {
        "target": {
            "task": "classification",
            "name": "churned",
            "classes": [False, True],
            "positive_class": True,
        },
        "roles": [
            {"column": "tenure_months", "role": "numeric", "reason": "numbers"},
            {"column": evil, "role": "categorical", "reason": "few distinct values"},
        ],
    }
    card = {
        "model": "linear",
        "estimator": "LogisticRegression",
        "hyperparams": {},
        "file": {"sha256": "sha256:0123abcd"},
    }

    page = model_card(
        "churn <prod>",
        card=card,
        plan=plan,
        metrics={"roc_auc": 0.81234, "log_loss": 0.4},
        decision=decision,
        snapshot={"content_hash": "sha256:feed", "rows": 600, "columns": 16},
    )

    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page
    assert html.escape(evil) in page
    assert "churn &lt;prod&gt;" in page
    assert f"hold — {html.escape(decision.summary)}" in page
    assert "<th>roc_auc</th><td>0.8123</td>" in page
    assert "<th>tenure_months</th><td>numeric — numbers</td>" in page
    assert "sha256:0123abcd" in page and "sha256:feed" in page


# -- find_champion ----------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory."""
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_champion_is_known_when_tracking_is_off(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_TRACKING", "off")
    champion = find_champion("churn")
    assert champion.unknown
    assert champion.version is None and champion.model is None
    assert "NBOPS_TRACKING=off" in champion.note
    assert not (project / ".nbops").exists()


def test_an_unreachable_registry_means_the_champion_is_unknown(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    champion = find_champion("churn")
    assert champion.unknown
    assert champion.version is None
    assert "registry is unreachable" in champion.note
    assert uri in champion.note


def test_an_empty_store_has_no_champion_yet(project: Path) -> None:
    champion = find_champion("churn")
    assert champion.version is None and champion.model is None
    assert not champion.unknown
    assert champion.note == "There is no champion yet."
    assert (project / ".nbops" / "mlflow.db").is_file()  # found the project from the cwd


# -- the gate's decision file ------------------------------------------------------------

#: decision.json as nbops 0.1.0's gate notebook wrote it (a literal dict, before
#: ReleaseDecision): spooled records of that version still release.
DECISION_0_1_0 = {
    "model_name": "churn",
    "action": "promote",
    "summary": "Promote to champion: the challenger is better with 95% confidence (...).",
    "checks": [{"name": "comparison", "passed": True, "detail": "roc_auc difference +0.0300"}],
    "interval": {"point": 0.03, "low": 0.01, "high": 0.05, "confidence": 0.95, "n": 1000},
    "policy": {
        "policy": "auto",
        "primary_metric": "roc_auc",
        "min_improvement": 0.0,
        "confidence": 0.95,
        "n_bootstrap": 1000,
        "min_metric": None,
        "max_slice_drop": None,
        "max_latency_ms_per_row": None,
        "seed": 42,
    },
    "champion_version": "3",
    "metrics": {"roc_auc": 0.84},
    "champion_metrics": {"roc_auc": 0.81},
    "latency_ms_per_row": 0.02,
    "model": {"sha256": "sha256:00", "save_seconds": 0.1, "trusted_types": ["numpy.dtype"]},
}


def test_the_decision_file_reads_what_the_gate_wrote_in_0_1_0() -> None:
    decision = ReleaseDecision.from_dict(DECISION_0_1_0)

    assert decision.champion_version == "3" and decision.policy.primary_metric == "roc_auc"
    assert decision.checks == [Check("comparison", True, "roc_auc difference +0.0300")]
    assert decision.interval == Interval(0.03, 0.01, 0.05, 0.95, 1000)
    written = decision.to_dict()
    # Everything 0.1.0 wrote reads back as it was; the policy gains the newer floors'
    # defaults (task-aware floors arrived after 0.1.0).
    assert {k: v for k, v in written.items() if k != "policy"} == {
        k: v for k, v in DECISION_0_1_0.items() if k != "policy"
    }
    assert written["policy"].items() >= DECISION_0_1_0["policy"].items()


def test_the_decision_file_round_trips_what_decide_returned() -> None:
    policy = GatePolicy(min_metric=0.5)
    decided = decide(policy, challenger_metric=0.8, interval=None)

    written = ReleaseDecision.of(
        decided, model_name="churn", policy=policy, champion_version=None, metrics={"roc_auc": 0.8}
    ).to_dict()

    assert json.loads(json.dumps(written)) == written  # plain JSON
    assert written["action"] == "promote" and written["champion_version"] is None
    assert ReleaseDecision.from_dict(written).to_dict() == written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy": None}, r"The gate's decision lacks policy"),
        ({"action": "ship it"}, r"has an unknown action 'ship it' \(promote, hold or reject\)"),
    ],
)
def test_a_broken_decision_file_is_refused_with_the_fix(change: dict, message: str) -> None:
    data = {k: v for k, v in {**DECISION_0_1_0, **change}.items() if v is not None}
    with pytest.raises(ReleaseError, match=message):
        ReleaseDecision.from_dict(data)


# -- the release step: a compare-and-set on the gate's champion ----------------------------


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release model folder, as the gate notebook saves it."""
    from nbops.tracking.registry import save_release_model

    frame = make_churn(200)
    folder = tmp_path_factory.mktemp("gate") / "model"
    save_release_model(
        fit(frame, "churned", "classification"),
        folder,
        input_example=frame.drop(columns="churned").head(3),
        pip_requirements=["scikit-learn"],
    )
    return folder


def gate_record(
    root: Path, build_id: str, model: Path, *, champion_version: str | None, started: float
) -> object:
    """The record of a build whose gate decided to promote, comparing with
    ``champion_version`` (as the build hook assembles it)."""
    from nbops.tracking.record import EXECUTED, TaskRecord
    from tests.tracking.factories import finished_build

    decision = ReleaseDecision.from_dict(
        {**DECISION_0_1_0, "champion_version": champion_version, "summary": f"{build_id} wins"}
    )
    gate = TaskRecord(
        name="gate",
        status=EXECUTED,
        files={f"model/{f.name}": str(f) for f in model.iterdir()},
    )
    return finished_build(
        root,
        build_id=build_id,
        started_at=started,
        seconds=1,
        tasks=[gate],
        release={"task": "gate", "decision": decision.to_dict()},
    )


def aliases(root: Path) -> dict[str, str]:
    from nbops.tracking.registry import Registry

    model = Registry(root).client.get_registered_model("churn")
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_recording_a_build_releases_nothing(project: Path, model_folder: Path) -> None:
    from nbops.tracking.registry import Registry
    from nbops.tracking.store import Store

    Store(project).publish(
        gate_record(project, "b1", model_folder, champion_version=None, started=time.time())
    )

    assert Registry(project).models() == []


def test_a_spooled_record_synced_after_another_release_is_held_not_promoted(
    project: Path, model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbops.tracking.publish import publish_or_spool, spool_dir, sync
    from nbops.tracking.registry import Registry

    # Both gates saw no champion. The older build's record was spooled (store down);
    # the newer one was recorded and released first.
    old = gate_record(project, "old", model_folder, champion_version=None, started=time.time() - 60)
    old.spool(spool_dir(project))
    publish_or_spool(
        gate_record(project, "new", model_folder, champion_version=None, started=time.time()),
        root=project,
        release=release_build,
    )
    assert aliases(project) == {"champion": "1"}

    sync(project, release=release_build)

    assert aliases(project) == {"champion": "1", "challenger": "2"}
    registry = Registry(project)
    held = registry.versions("churn")[1]
    assert held.tags["nbops.build_id"] == "old" and held.tags["nbops.gate"] == "hold"
    (entry, *_) = registry.audit("churn")
    assert entry["action"] == "hold (stale decision)" and entry["version"] == "2"
    assert (
        "the gate compared it with no champion, but the champion is now champion v1" in entry["why"]
    )
    assert "nbops promote churn 2" in entry["why"]
    err = capsys.readouterr().err
    assert (
        "registered churn version 2; gate: promote, hold (challenger → v2). Held as challenger"
        in err
    )


def test_re_syncing_a_released_record_registers_and_moves_nothing(
    project: Path, model_folder: Path
) -> None:
    from nbops.tracking.publish import publish_or_spool, spool_dir, sync
    from nbops.tracking.registry import Registry
    from nbops.tracking.store import Store

    record = gate_record(project, "b1", model_folder, champion_version=None, started=time.time())
    first = publish_or_spool(record, root=project, release=release_build)
    # The build crashed after releasing but before its spooled copy was removed.
    record.spool(spool_dir(project))

    assert [build for build, _ in sync(project, release=release_build)] == ["b1"]

    assert [v.version for v in Registry(project).versions("churn")] == ["1"]
    assert aliases(project) == {"champion": "1"}
    assert [b.info.run_id for b in Store(project).builds()] == [first["run_id"]]
    assert [e["action"] for e in Registry(project).audit("churn")] == ["promote (gate)"]


def test_a_half_published_record_is_replaced_and_released_once(
    project: Path, model_folder: Path
) -> None:
    from nbops.tracking.publish import publish_or_spool
    from nbops.tracking.registry import Registry
    from nbops.tracking.store import Store

    record = gate_record(project, "b1", model_folder, champion_version=None, started=time.time())
    first = publish_or_spool(record, root=project, release=release_build)
    store = Store(project)
    store.client.delete_tag(first["run_id"], "nbops.published")  # as if it crashed before the end

    again = publish_or_spool(record, root=project, release=release_build)

    assert again["run_id"] != first["run_id"]
    assert [b.info.run_id for b in store.builds()] == [again["run_id"]]
    (version,) = Registry(project).versions("churn")
    assert version.tags["nbops.build_run"] == again["run_id"]
    assert aliases(project) == {"champion": "1"}
