"""Service settings: a value the service cannot run with is refused at startup, by name."""

from __future__ import annotations

import pytest

from nbops.errors import ConfigError
from nbops.serving.settings import Settings


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        (
            "NBOPS_RELOAD_SECONDS",
            "0",
            "NBOPS_RELOAD_SECONDS must be a number of seconds greater than 0",
        ),
        (
            "NBOPS_RELOAD_SECONDS",
            "-5",
            "NBOPS_RELOAD_SECONDS must be a number of seconds greater than 0",
        ),
        ("NBOPS_RELOAD_SECONDS", "nan", "NBOPS_RELOAD_SECONDS must be a number of seconds"),
        ("NBOPS_RELOAD_SECONDS", "soon", "NBOPS_RELOAD_SECONDS must be a number, got 'soon'"),
        ("NBOPS_LOG_FLUSH_SECONDS", "0", "NBOPS_LOG_FLUSH_SECONDS must be a number of seconds"),
        ("NBOPS_LOG_RETRY_SECONDS", "inf", "NBOPS_LOG_RETRY_SECONDS must be a number of seconds"),
        ("NBOPS_LOG_QUEUE", "0", "NBOPS_LOG_QUEUE must be at least 1"),
        ("NBOPS_SHADOW_QUEUE", "-1", "NBOPS_SHADOW_QUEUE must be at least 1"),
        ("NBOPS_MAX_BODY_BYTES", "0", "NBOPS_MAX_BODY_BYTES must be at least 1"),
        ("NBOPS_MAX_ROWS", "1.5", "NBOPS_MAX_ROWS must be a whole number, got '1.5'"),
    ],
)
def test_a_setting_the_service_cannot_run_with_is_a_config_error_naming_it(
    monkeypatch, name, value, needle
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env()


def test_settings_reach_worker_processes_unchanged(monkeypatch, tmp_path):
    settings = Settings.from_env(
        root=tmp_path, reload_seconds=0.5, log_flush_seconds=2.0, log_queue=7, shadow_queue=3
    )
    for name, value in settings.env_for_workers().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == settings


def test_nbops_serve_refuses_a_zero_reload_interval_before_starting(make_project, monkeypatch):
    """It used to start and spin the alias watcher at 100% CPU."""
    monkeypatch.setenv("NBOPS_RELOAD_SECONDS", "0")
    result = make_project().nbops("serve", "--port", "1", check=False)
    assert result.returncode == 1
    assert "NBOPS_RELOAD_SECONDS must be a number of seconds greater than 0" in result.stderr
