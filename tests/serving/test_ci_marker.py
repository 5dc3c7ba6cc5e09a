"""In CI, a test that needs PostgreSQL fails when it is missing; elsewhere it skips."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, build_env

# As tests/serving/test_log.py asks for it: from a function fixture, after the autouse
# fixture has cleaned the environment.
NEEDS_POSTGRES = """
import pytest


@pytest.fixture
def url(request):
    return request.getfixturevalue("postgres").url("x")


def test_needs_postgres(url):
    pass
"""


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_a_missing_postgresql_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    (tmp_path / "test_pg.py").write_text(NEEDS_POSTGRES)
    env = build_env(NBOPS_TEST_POSTGRES_ROOT=str(tmp_path / "no-postgresql"))
    env["PYTHONPATH"] = f"{ROOT}:{env.get('PYTHONPATH', '')}"
    if ci:
        env["CI"] = ci
    # The inner run needs tests/conftest.py alone: loading every installed plugin
    # (hypothesis, schemathesis, playwright, ...) was 2.9 of its 3.1 CPU-s.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-rs",
            str(tmp_path / "test_pg.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert outcome in result.stdout.splitlines()[-1], result.stdout[-2000:]
    assert "PostgreSQL is not installed" in result.stdout
