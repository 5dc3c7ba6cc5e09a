"""Keeping the environment quiet: the start-up .pth file and the Jupyter config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbops.build import offline


@dataclass
class Env:
    site_packages: Path
    prefix: Path

    @property
    def pth(self) -> Path:
        return self.site_packages / offline.PTH_NAME

    @property
    def server_config(self) -> Path:
        return self.prefix / "etc" / "jupyter" / "jupyter_server_config.json"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """An environment whose site-packages and prefix are temporary folders."""
    site_packages, prefix = tmp_path / "site-packages", tmp_path / "prefix"
    site_packages.mkdir()
    real_get_paths = sysconfig.get_paths
    monkeypatch.setattr(
        sysconfig,
        "get_paths",
        lambda *a, **k: {**real_get_paths(*a, **k), "purelib": str(site_packages)},
    )
    monkeypatch.setattr(sys, "prefix", str(prefix))
    return Env(site_packages, prefix)


@pytest.fixture
def quiet_vars_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in offline.ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("quiet_vars_unset")
def test_check_reports_every_problem_of_a_fresh_environment(env: Env) -> None:
    problems = offline.check()
    assert problems == [
        "PLOOMBER_STATS_ENABLED is None, expected 'false'",
        "PLOOMBER_VERSION_CHECK_DISABLED is None, expected 'true'",
        "MLFLOW_DISABLE_TELEMETRY is None, expected 'true'",
        f"Jupyter server extension ploomber_extension is not disabled in {env.server_config}",
    ]


@pytest.mark.parametrize(
    ("stats", "version_check", "bad"),
    [
        ("false", "true", []),
        ("False", "TRUE", []),
        ("true", "true", ["PLOOMBER_STATS_ENABLED is 'true', expected 'false'"]),
        ("false", "", ["PLOOMBER_VERSION_CHECK_DISABLED is '', expected 'true'"]),
    ],
)
def test_check_reads_the_environment_variables(
    env: Env, monkeypatch: pytest.MonkeyPatch, stats: str, version_check: str, bad: list[str]
) -> None:
    monkeypatch.setenv("PLOOMBER_STATS_ENABLED", stats)
    monkeypatch.setenv("PLOOMBER_VERSION_CHECK_DISABLED", version_check)
    offline.install()
    assert offline.check() == bad


def test_install_writes_the_pth_and_disables_the_extension(env: Env) -> None:
    done = offline.install()
    assert done == [
        f"wrote {env.pth}",
        f"wrote {env.site_packages / offline.STARTUP_PTH_NAME} (start-up hook)",
        f"disabled ploomber_extension in {env.server_config}",
    ]
    assert env.pth.read_text() == (
        "import os; os.environ.setdefault('PLOOMBER_STATS_ENABLED', 'false')\n"
        "import os; os.environ.setdefault('PLOOMBER_VERSION_CHECK_DISABLED', 'true')\n"
        "import os; os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')\n"
    )
    config = json.loads(env.server_config.read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"ploomber_extension": False}}}
    assert offline.check() == []  # the autouse fixture already sets the variables


def test_install_keeps_existing_config(env: Env) -> None:
    env.server_config.parent.mkdir(parents=True)
    env.server_config.write_text(
        json.dumps(
            {
                "ServerApp": {"ip": "127.0.0.1", "jpserver_extensions": {"jupyterlab": True}},
                "LabApp": {"news_url": None},
            }
        )
    )
    offline.install()
    assert json.loads(env.server_config.read_text()) == {
        "ServerApp": {
            "ip": "127.0.0.1",
            "jpserver_extensions": {"jupyterlab": True, "ploomber_extension": False},
        },
        "LabApp": {"news_url": None},
    }


def test_install_twice_gives_the_same_result(env: Env) -> None:
    offline.install()
    first = (env.pth.read_text(), env.server_config.read_text())
    offline.install()
    assert (env.pth.read_text(), env.server_config.read_text()) == first


def test_check_notices_a_re_enabled_extension(env: Env) -> None:
    offline.install()
    config = json.loads(env.server_config.read_text())
    config["ServerApp"]["jpserver_extensions"]["ploomber_extension"] = True
    env.server_config.write_text(json.dumps(config))
    assert offline.check() == [
        f"Jupyter server extension ploomber_extension is not disabled in {env.server_config}"
    ]


def _python_with_site_dir(site_dir: Path, extra_env: dict[str, str]) -> dict[str, str | None]:
    code = (
        "import json, os, site, sys; site.addsitedir(sys.argv[1]); "
        "print(json.dumps({k: os.environ.get(k) for k in sys.argv[2:]}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in offline.ENV}
    result = subprocess.run(
        [sys.executable, "-c", code, str(site_dir), *offline.ENV],
        env={**clean, **extra_env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def test_pth_quiets_every_new_interpreter(env: Env) -> None:
    offline.install()
    assert _python_with_site_dir(env.site_packages, {}) == offline.ENV


def test_pth_leaves_the_users_own_setting(env: Env) -> None:
    offline.install()
    seen = _python_with_site_dir(env.site_packages, {"PLOOMBER_STATS_ENABLED": "true"})
    assert seen == {**offline.ENV, "PLOOMBER_STATS_ENABLED": "true"}


@pytest.mark.usefixtures("quiet_vars_unset")
def test_main_check_exits_non_zero_and_says_why(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert offline.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("not offline: ") == 4
    assert "PLOOMBER_STATS_ENABLED" in err


def test_main_installs_and_then_check_passes(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main([]) == 0
    assert f"nbops.build.offline: wrote {env.pth}" in capsys.readouterr().out
    assert offline.main(["--check"]) == 0
    assert capsys.readouterr().err == ""
