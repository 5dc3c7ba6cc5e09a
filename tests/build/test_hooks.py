"""The pure parts of the Ploomber hooks: trigger, env as used, metric flattening."""

from __future__ import annotations

import pytest

from nbops.build.hooks import _flat_env, _numbers, enabled, trigger


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "manual"),
        ({"CI": "true"}, "ci"),
        ({"CI": "true", "NBOPS_TRIGGER": "schedule"}, "schedule"),
        ({"NBOPS_TRIGGER": "drift"}, "drift"),
        ({"NBOPS_TRIGGER": " Manual "}, "manual"),
    ],
)
def test_trigger_comes_from_the_environment(monkeypatch, env, expected):
    monkeypatch.delenv("NBOPS_TRIGGER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert trigger() == expected


def test_an_unknown_trigger_is_recorded_but_warned_about(monkeypatch, capsys):
    monkeypatch.setenv("NBOPS_TRIGGER", "nightly")
    assert trigger() == "nightly"
    assert "not one of manual, ci, schedule, drift" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "on"), [("off", False), ("0", False), ("false", False), ("on", True), ("", True)]
)
def test_tracking_can_be_switched_off(monkeypatch, value, on):
    monkeypatch.setenv("NBOPS_TRACKING", value)
    assert enabled() is on


def test_env_as_used_applies_command_line_overrides():
    env = {"data": {"rows": 5000, "source": "bundled"}, "task": "classification"}
    command = [
        "ploomber",
        "build",
        "--env--data--rows",
        "100",
        "--env--task=regression",
        "--env--new--key",
        "x",
    ]
    assert _flat_env(env, command) == {
        "data": {"rows": "100", "source": "bundled"},
        "task": "regression",
        "new": {"key": "x"},
    }
    assert env["data"]["rows"] == 5000, "the file's values are not modified"


def test_numbers_flattens_nested_metrics_and_drops_the_rest():
    metrics = {
        "metrics": {"roc_auc": 0.8, "f1": float("nan")},
        "best": "hgb",
        "ok": True,
        "test_rows": 300,
        "slices": [{"a": 1}],
    }
    assert _numbers(metrics) == {"metrics.roc_auc": 0.8, "test_rows": 300.0}
