"""`make lab` on a built project: a real JupyterLab server started as the Makefile starts
it, pipeline notebooks opened through its REST API with their inputs injected, one run
top to bottom in a real kernel over the kernel websocket, saved back clean, and no
request leaving the machine."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from tests.conftest import (
    BIN,
    ROOT,
    Project,
    build_env,
    copy_built_with_store,
    free_port,
    make_recipe,
    stop_process,
)

pytestmark = pytest.mark.pipeline

NOTEBOOKS = sorted(
    str(p.relative_to(ROOT))
    for p in [
        *(ROOT / "notebooks").glob("*.ipynb"),
        *(ROOT / "notebooks" / "monitor").glob("*.ipynb"),
    ]
)

#: Loaded into every Python process the server starts (server and kernels): says it was
#: loaded (a "hook loaded" line: an empty log then proves something), and records any
#: connection or name lookup that is not for this machine.
_NETWORK_AUDIT = """\
import os, socket, sys

_log = os.environ["NBOPS_TEST_NETWORK_LOG"]
_local = {"localhost", "", socket.gethostname()}
with open(_log, "a") as f:
    f.write(f"{os.getpid()} hook loaded {sys.argv!r}\\n")

def _audit(event, args):
    if event == "socket.connect":
        address = args[1]
    elif event == "socket.getaddrinfo":
        address = args[:2]
    else:
        return
    if not isinstance(address, tuple):  # a Unix socket
        return
    host = address[0].decode() if isinstance(address[0], bytes) else address[0]
    if host is None or host in _local or host.startswith(("127.", "::1", "::ffff:127.", "0.0.0.0")):
        return
    with open(_log, "a") as f:
        f.write(f"{os.getpid()} {sys.argv[:2]} {event} {address!r}\\n")

sys.addaudithook(_audit)
"""


def make_lab_command() -> tuple[dict[str, str], list[str]]:
    """The environment and command of `make lab` in this venv (make's dry run)."""
    [line] = make_recipe("lab", drop_env=("JUPYTER_CONFIG_PATH",))
    words = shlex.split(line)
    assignments = {}
    while "=" in words[0] and not words[0].startswith("/"):
        key, value = words.pop(0).split("=", 1)
        assignments[key] = value
    return assignments, words


@dataclass
class Lab:
    root: Path
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    network_log: Path

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        kind = response.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind and raw else raw.decode()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        status, content = self.request(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {content}\n{self.tail()}"
        return content

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def lab_project(built_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the session's built project: saving from Jupyter invalidates tasks."""
    return copy_built_with_store(built_project, tmp_path_factory.mktemp("lab") / "project")


@pytest.fixture(scope="module")
def lab(lab_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("jupyter-home")
    (home / "audit").mkdir()
    (home / "audit" / "sitecustomize.py").write_text(_NETWORK_AUDIT)
    make_env, command = make_lab_command()
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **build_env(),
        **make_env,
        # The developer's own Jupyter settings and runtime files stay out of the test.
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "PYTHONPATH": str(home / "audit"),
        "NBOPS_TEST_NETWORK_LOG": str(home / "network.log"),
    }
    flags = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    if os.geteuid() == 0:
        flags.append("--allow-root")
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, *flags], cwd=lab_project.root, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Lab(
        lab_project.root, f"http://127.0.0.1:{port}", token, process, log, home / "network.log"
    )
    try:
        deadline = time.monotonic() + 300  # a loaded CI machine: a deadline, not a wait
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited ({process.returncode}):\n{server.tail()}")
            try:
                if server.request("GET", "/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not start in 300 s:\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop_process(process)


def test_make_lab_runs_the_venvs_jupyter_lab_with_the_projects_config():
    env, command = make_lab_command()
    assert command == [str(BIN / "jupyter"), "lab"]
    assert env == {"JUPYTER_CONFIG_PATH": str(ROOT / ".jupyter")}


# -- opening notebooks ---------------------------------------------------------------


def pipeline_tasks() -> dict[str, dict[str, Any]]:
    """Each notebook's task in pipeline.yaml / pipeline.monitor.yaml (the first, for a grid)."""
    tasks: dict[str, dict[str, Any]] = {}
    for spec in ("pipeline.yaml", "pipeline.monitor.yaml"):
        for task in yaml.safe_load((ROOT / spec).read_text())["tasks"]:
            tasks.setdefault(task["source"], task)
    return tasks


def assignments(source: str) -> dict[str, Any]:
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def tagged(nb: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if tag in c["metadata"].get("tags", [])]


def setting(env: dict[str, Any], template: Any) -> Any:
    """The env.yaml value a ``'{{section.key}}'`` parameter stands for (else None)."""
    match = re.fullmatch(r"\{\{\s*([\w.]+)\s*\}\}", str(template))
    if not match:
        return None
    value: Any = env
    for key in match.group(1).split("."):
        value = value[key]
    return value


def test_every_pipeline_notebook_opens_with_its_upstream_and_product_paths(lab: Lab):
    assert len(NOTEBOOKS) >= 10, NOTEBOOKS
    tasks = pipeline_tasks()
    env = yaml.safe_load((lab.root / "env.yaml").read_text())
    for path in NOTEBOOKS:
        model = lab.api("GET", f"/api/contents/{path}")
        [params] = tagged(model["content"], "parameters")
        [injected] = tagged(model["content"], "injected-parameters")
        cells = model["content"]["cells"]
        assert cells.index(injected) == cells.index(params) + 1, "right below the parameters"

        values = assignments(injected["source"])
        product = values["product"]
        assert set(product) == set(tasks[path]["product"]), path
        for value in product.values():
            assert Path(value).is_relative_to(lab.root / "products"), (path, value)
        declared = assignments(params["source"])["upstream"] or []
        upstream = values.get("upstream") or {}
        assert set(upstream) == set(declared), path
        for name in declared:
            # A wildcard ("train-*") gives every matching task, each with its products.
            entries = upstream[name].values() if name.endswith("*") else [upstream[name]]
            for entry in entries:
                assert all(Path(p).is_relative_to(lab.root / "products") for p in entry.values())
        # Parameters come from the project's env.yaml (the test build's small settings).
        for key, template in tasks[path].get("params", {}).items():
            if key != "resources_" and "[[" not in str(template):
                assert values[key] == setting(env, template), (path, key)


# -- running one and saving it ---------------------------------------------------------


async def run_in_kernel(lab: Lab, path: str, nb: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every code cell of ``nb`` in a kernel of a new session for ``path`` (as
    JupyterLab does), over the kernel websocket; return the execute replies."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = lab.api(
        "POST",
        "/api/sessions",
        {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
    )
    client_session = uuid.uuid4().hex
    ws = await websocket_connect(
        HTTPRequest(
            f"ws{lab.url.removeprefix('http')}/api/kernels/{session['kernel']['id']}/channels"
            f"?session_id={client_session}",
            headers={"Authorization": f"token {lab.token}"},
        )
    )
    replies = []
    try:
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            msg_id = uuid.uuid4().hex
            header = {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": client_session,
                "username": "test",
                "version": "5.3",
                "date": datetime.now(timezone.utc).isoformat(),
            }
            await ws.write_message(
                json.dumps(
                    {
                        "header": header,
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "buffers": [],
                        "content": {
                            "code": cell["source"],
                            "silent": False,
                            "store_history": True,
                            "user_expressions": {},
                            "allow_stdin": False,
                            "stop_on_error": True,
                        },
                    }
                )
            )
            outputs, reply, idle = [], None, False
            while reply is None or not idle:
                raw = await asyncio.wait_for(ws.read_message(), timeout=120)
                assert raw is not None, f"kernel websocket closed:\n{lab.tail()}"
                if isinstance(raw, bytes):  # a message with binary buffers (widgets)
                    continue
                msg = json.loads(raw)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if msg["channel"] == "shell" and kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status":
                    idle = msg["content"]["execution_state"] == "idle"
                elif kind in ("stream", "display_data", "execute_result", "error"):
                    outputs.append(nbformat.v4.output_from_msg(msg))
            if reply["status"] != "ok":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply.get("traceback", [])))
                pytest.fail(f"cell failed in {path}:\n{cell['source']}\n{trace}")
            cell["outputs"], cell["execution_count"] = outputs, reply["execution_count"]
            replies.append(reply)
    finally:
        ws.close()
        lab.api("DELETE", f"/api/sessions/{session['id']}")
    return replies


def test_a_notebook_runs_top_to_bottom_in_a_kernel_and_saves_as_git_holds_it(lab: Lab):
    path = "notebooks/train.ipynb"
    on_disk = (lab.root / path).read_bytes()
    assert on_disk == (ROOT / path).read_bytes()
    nb = lab.api("GET", f"/api/contents/{path}")["content"]
    product = assignments(tagged(nb, "injected-parameters")[0]["source"])["product"]
    started = time.time()

    replies = asyncio.run(run_in_kernel(lab, path, nb))

    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(replies) == len(code_cells) and all(r["status"] == "ok" for r in replies)
    assert any(c["outputs"] for c in code_cells), "the report shows its results"
    # The interactive run wrote the task's products where the pipeline keeps them.
    assert Path(product["model"]).stat().st_mtime >= started - 1
    assert json.loads(Path(product["meta"]).read_text())["model"] == "linear"

    lab.api("PUT", f"/api/contents/{path}", {"type": "notebook", "format": "json", "content": nb})
    saved = (lab.root / path).read_bytes()
    assert saved == on_disk, "saved without the injected cell, outputs or papermill metadata"
    reopened = lab.api("GET", f"/api/contents/{path}")["content"]
    assert len(tagged(reopened, "injected-parameters")) == 1
    assert not any(c.get("outputs") for c in reopened["cells"] if c["cell_type"] == "code")


def test_a_notebook_outside_the_pipelines_keeps_its_outputs(lab: Lab):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)
    ]
    nb.cells[0].execution_count = 1
    body = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))}
    lab.api("PUT", "/api/contents/scratch.ipynb", body)
    saved = nbformat.read(lab.root / "scratch.ipynb", as_version=4)
    assert saved.cells[0].outputs[0]["data"]["text/plain"] == "2"
    model = lab.api("GET", "/api/contents/scratch.ipynb")
    assert not tagged(model["content"], "injected-parameters")


# -- nothing calls out -----------------------------------------------------------------


def test_nothing_calls_out(lab: Lab):
    # A kernel of its own, so the check covers one whatever ran before.
    kernel = lab.api("POST", "/api/kernels", {"name": "python3"})["id"]
    deadline = time.monotonic() + 120
    while not _hooked(lab, f"kernel-{kernel}"):
        assert time.monotonic() < deadline, f"no audit hook in kernel {kernel}\n{lab.tail()}"
        time.sleep(0.1)
    lab.api("DELETE", f"/api/kernels/{kernel}")
    # Ploomber's cloud extension: its server part is not loaded, its JupyterLab part is off.
    assert lab.request("GET", "/ploomber/apikey")[0] == 404
    log = lab.log.read_text()
    assert "ploomber_extension | extension was successfully loaded" not in log
    assert "ploomber | extension was successfully loaded" in log
    status, page = lab.request("GET", "/lab")
    assert status == 200
    config = json.loads(
        re.search(
            r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
        ).group(1)
    )
    assert "ploomber-extension" in config["disabledExtensions"]
    # What JupyterLab's front end asks the server for on start-up: nothing is fetched.
    assert lab.api("GET", "/lab/api/news") == {"news": []}
    assert lab.api("GET", "/lab/api/update") == {"notification": None}
    assert "Extension Manager is 'readonly'" in log
    # Every Python process the server started so far (itself, the kernels) had the audit
    # hook loaded, and stayed local.
    assert lab.network_log.exists(), "the audit hook was never loaded"
    lines = lab.network_log.read_text().splitlines()
    assert _hooked(lab, f"{lab.process.pid} hook loaded"), lines
    calls = [line for line in lines if " hook loaded " not in line]
    assert calls == [], calls


def _hooked(lab: Lab, needle: str) -> bool:
    """Whether a "hook loaded" line of the audit log contains ``needle``."""
    if not lab.network_log.exists():
        return False
    return any(
        " hook loaded " in line and needle in line
        for line in lab.network_log.read_text().splitlines()
    )
