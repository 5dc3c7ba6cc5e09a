"""A real `nbops serve` (uvicorn) process over the reference build's registry."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import BIN, build_env, free_port

TOKEN = "t0ken-for-tests"


class Service:
    def __init__(self, project, tmp_path, *args, log_url=None, **env):
        self.project, self.port = project, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "predictions.db"
        env = build_env(
            NBOPS_API_TOKEN=TOKEN,
            NBOPS_PREDICTION_LOG=log_url or f"sqlite:///{self.log_path}",
            NBOPS_RELOAD_SECONDS="0.5",
            NBOPS_MAX_ROWS="200",
            **env,
        )
        self.output = open(tmp_path / "service.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "nbops"), "serve", "--port", str(self.port), *args],
            cwd=project.root,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((tmp_path / "service.log").read_text())
            try:
                if self.call("GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("service did not become ready")

    def call(self, method, path, body=None, *, token=TOKEN, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, (
                    json.loads(text)
                    if response.headers.get_content_type() == "application/json"
                    else text
                )
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read().decode() or "{}")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.output.close()

    def logged(self):
        return (
            sqlite3.connect(self.log_path)
            .execute("select request_id, model_version from predictions")
            .fetchall()
        )

    def poll(self, method, path, body=None, *, until, timeout=30):
        """Call until ``until((status, body))`` holds or ``timeout`` seconds pass; the
        last answer."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call(method, path, body)
            if until(answer) or time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def rss(self):
        """The service process's resident memory, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) * 1024


@pytest.fixture(scope="module")
def rows(built_project):
    test = pd.read_parquet(built_project.products / "data" / "test.parquet").drop(
        columns=["churned"]
    )
    return json.loads(test.head(50).to_json(orient="records", date_format="iso"))


@pytest.fixture(scope="module")
def shared(built_project, tmp_path_factory):
    """One service for the tests that only read: starting one takes seconds."""
    svc = Service(built_project, tmp_path_factory.mktemp("shared-service"))
    yield svc
    svc.stop()


@pytest.fixture
def service(built_project, tmp_path):
    """A service of the test's own, for tests that stop it or move the registry."""
    svc = Service(built_project, tmp_path)
    yield svc
    svc.stop()
