"""The Dockerfile: slim, non-root, healthy only when the model is loaded.

No Docker engine is available where the tests run, so the image is not built here;
instead the Dockerfile is parsed with Docker's own parser, and its CMD and HEALTHCHECK
are run as written (port aside) against the reference build.
"""

from __future__ import annotations

import signal
import subprocess
import time

import dockerfile
import pytest

from tests.conftest import BIN, ROOT, build_env, free_port

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def instructions():
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def final_stage(instructions):
    starts = [i for i, c in enumerate(instructions) if c.cmd == "FROM"]
    return instructions[starts[-1] :]


def only(stage, cmd):
    found = [c for c in stage if c.cmd == cmd]
    assert len(found) == 1, f"one {cmd} expected in the final stage"
    return found[0]


def test_the_image_is_slim_and_runs_as_an_unprivileged_user(instructions):
    stage = final_stage(instructions)
    assert stage[0].value[0].endswith("-slim")
    user = only(stage, "USER").value[0]
    assert user not in {"root", "0"}
    assert [c.cmd for c in stage].index("USER") < [c.cmd for c in stage].index("CMD")
    assert "8000" in only(stage, "EXPOSE").value


def test_the_image_carries_no_project_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".nbops", "products"} <= set(ignored)


def test_cmd_serves_and_the_healthcheck_passes_only_once_the_model_is_loaded(
    instructions, built_project, tmp_path
):
    stage = final_stage(instructions)
    port = str(free_port())

    def with_port(args):
        return [a.replace("8000", port) for a in args]

    command = with_port(list(only(stage, "CMD").value))
    assert command[:2] == ["nbops", "serve"] and "0.0.0.0" in command
    healthcheck = only(stage, "HEALTHCHECK").value
    assert healthcheck[0] == "CMD"
    probe = with_port(list(healthcheck[1:]))
    probe[0] = str(BIN / probe[0])  # the image's python, here the test environment's

    def healthy():
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0

    assert not healthy(), "nothing is listening yet"
    command[0] = str(BIN / command[0])
    env = build_env(NBOPS_PREDICTION_LOG=f"sqlite:///{tmp_path / 'log.db'}")
    process = subprocess.Popen(
        command,
        cwd=built_project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not healthy():
            assert process.poll() is None, "the service exited"
            time.sleep(0.5)
        assert healthy()
    finally:
        process.terminate()
        process.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why
    assert process.returncode in (0, -signal.SIGTERM)
