"""Warm kernels: which modules a notebook imports, the pool's hand-out rules, and the
IPC transport every kernel nbops starts uses."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_core.utils import run_sync

from nbops.build import kernels
from nbops.build.kernels import KernelPool, imported_modules


def _nb(*sources: str) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("import not_code"))
    return nb


def test_imported_modules_lists_every_import_once_in_order() -> None:
    nb = _nb(
        "import pandas as pd\nimport numpy, os.path",
        "from sklearn.metrics import roc_auc_score\nfrom . import local\nimport pandas",
        "def f():\n    import scipy.stats\n    return 1",
    )

    assert imported_modules(nb) == ["pandas", "numpy", "os.path", "sklearn.metrics", "scipy.stats"]


def test_imported_modules_skips_magics_and_cells_that_do_not_parse() -> None:
    nb = _nb("%matplotlib inline\nimport json", "!pip list\nimport csv", "this is not python", "")

    assert imported_modules(nb) == ["json", "csv"]


def test_reference_notebooks_import_what_the_pool_warms(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    modules = imported_modules(nbformat.read(root / "notebooks" / "train.ipynb", as_version=4))

    assert "nbops" in {m.split(".")[0] for m in modules}


@pytest.mark.pipeline
def test_pool_hands_out_a_started_kernel_once_and_starts_the_next(tmp_path: Path) -> None:
    plan = [(str(tmp_path / f"{n}.ipynb"), "python3", ["json"]) for n in ("a", "b", "c")]
    pool = KernelPool(plan, ahead=1)
    pool.start()
    try:
        first = pool.take(plan[0][0], "python3", os.getcwd())
        assert first is not None and first.has_kernel
        # Taking "a" started "b" (one ahead), not "c".
        assert set(pool._started) == {str(Path(plan[1][0]).resolve())}
        assert pool.take(plan[0][0], "python3", os.getcwd()) is None  # handed out once
        # A kernel started elsewhere, or for another kernel name, is not used.
        assert pool.take(plan[1][0], "python3", "/") is None
        assert pool.misses == 2 and pool.hits == 1
        pool.retire(first, None)
    finally:
        pool.close()
    assert not first.has_kernel


@pytest.mark.pipeline
def test_kernels_start_over_ipc_in_a_private_folder_with_short_socket_paths(
    tmp_path: Path,
) -> None:
    # TCP ports are picked, then bound by the kernel: kernels started at the same time on
    # one machine race for them ("Address already in use"). Unix sockets cannot collide.
    plan = [(str(tmp_path / "a.ipynb"), "python3", [])]
    pool = KernelPool(plan, ahead=1)
    pool.start()
    try:
        manager = pool.take(plan[0][0], "python3", os.getcwd())
        assert manager is not None
        info = manager.get_connection_info()
        assert info["transport"] == "ipc"
        sockets = [Path(f"{info['ip']}-{info[f'{c}_port']}") for c in ("shell", "iopub")]
        client = manager.client()
        client.start_channels()
        # Until IOPub's subscription is connected the kernel's messages are lost, and a
        # quick cell's all of them: execute_interactive would wait for them forever.
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client.execute_interactive)("x = 1 + 1", timeout=60)
        assert reply["content"]["status"] == "ok"  # the kernel answers over those sockets
        assert all(s.is_socket() and len(str(s)) < 100 for s in sockets)
        assert stat.S_IMODE(sockets[0].parent.stat().st_mode) == 0o700
        pool.retire(manager, client)
    finally:
        pool.close()
    assert not any(s.exists() for s in sockets)


@pytest.mark.pipeline
def test_without_ipc_kernels_fall_back_to_tcp_and_still_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where pyzmq has no IPC (Windows): TCP, with a start that fails retried.
    monkeypatch.setattr("nbops.build.kernels.TRANSPORT", "tcp")
    plan = [(str(tmp_path / "a.ipynb"), "python3", [])]
    pool = KernelPool(plan, ahead=1)
    pool.start()
    try:
        manager = pool.take(plan[0][0], "python3", os.getcwd())
        assert manager is not None and manager.get_connection_info()["transport"] == "tcp"
        client = manager.client()
        client.start_channels()
        # Until IOPub's subscription is connected the kernel's messages are lost, and a
        # quick cell's all of them: execute_interactive would wait for them forever.
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client.execute_interactive)("x = 1 + 1", timeout=60)
        assert reply["content"]["status"] == "ok"
        pool.retire(manager, client)
    finally:
        pool.close()


@pytest.mark.pipeline
def test_taking_a_kernel_does_not_wait_for_the_next_one_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second notebook imports a module whose import holds the template until the
    # test lets it go: the kernel started ahead for it cannot be forked before then.
    release = tmp_path / "release"
    (tmp_path / "held_import.py").write_text(
        "import os, time\n"
        "deadline = time.monotonic() + 120\n"
        f"while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
    )
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    a, b = str(tmp_path / "a.ipynb"), str(tmp_path / "b.ipynb")
    pool = KernelPool(
        [(a, "python3", ["json"]), (b, "python3", ["held_import"])], fork_modules=["json"]
    )
    pool.start()
    try:
        # Once the first kernel is up, taking it returns at once, though the next
        # one's start (ahead) is held: the first notebook runs meanwhile.
        pool._started[str(Path(a).resolve())].result(timeout=120)
        taken: list[object] = []
        taker = threading.Thread(target=lambda: taken.append(pool.take(a, "python3", os.getcwd())))
        taker.start()
        taker.join(timeout=30)
        held = not pool._started[str(Path(b).resolve())].done()
        release.touch()
        taker.join()
        assert taken and taken[0] is not None and taken[0].has_kernel
        assert held, "the next kernel was not held: the test proves nothing"
        second = pool.take(b, "python3", os.getcwd())
        assert second is not None and second.has_kernel
        pool.retire(taken[0], None)
        pool.retire(second, None)
    finally:
        release.touch()
        pool.close()


@pytest.mark.pipeline
def test_a_builds_pool_closes_without_waiting_for_its_last_kernel_and_still_reaps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last notebook's kernel may still be exiting (its atexit handlers; here one held
    # until the test lets it go) when the build closes its pool: the build records its
    # run meanwhile. The kernel and the template are still reaped before the build's
    # process may exit (KernelPool.join; the reaper thread is not a daemon).
    import psutil

    # The kernel is held until released, not killed at the usual deadline meanwhile: on
    # a busy machine its exit may start more than 5 s after it was asked to go.
    monkeypatch.setattr(kernels, "SHUTDOWN_WAIT", 120.0)
    exiting, release = tmp_path / "exiting", tmp_path / "release"
    plan = [(str(tmp_path / "a.ipynb"), "python3", ["json"])]
    pool = KernelPool(plan, ahead=1, fork_modules=["json"])
    pool.start()
    try:
        manager = pool.take(plan[0][0], "python3", os.getcwd())
        assert manager is not None
        kernel = psutil.Process(manager.provisioner.pid)
        template = pool.template.process
        client = manager.client()
        client.start_channels()
        # Until IOPub's subscription is connected the kernel's messages are lost, and a
        # quick cell's all of them: execute_interactive would wait for them forever.
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client.execute_interactive)(
            "import atexit, os, time\n"
            "def held():\n"
            f"    open({str(exiting)!r}, 'w').close()\n"
            "    deadline = time.monotonic() + 60\n"
            f"    while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
            "        time.sleep(0.01)\n"
            "atexit.register(held)",
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        pool.retire(manager, client)
        deadline = time.monotonic() + 60
        while not exiting.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a file the kernel writes
        assert exiting.exists(), "the kernel never started to exit"

        pool.close(wait=False)

        assert kernel.is_running() and template.poll() is None  # not waited for
        assert pool.join(timeout=0) is False
    finally:
        release.touch()
        pool.close(wait=False)  # again (harmless): in case the test failed before it
    assert pool.join(timeout=60) is True
    assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE
    assert template.poll() is not None  # the template is gone too: no orphan


@pytest.mark.pipeline
def test_a_client_is_ready_when_its_kernel_answers_without_waiting_for_quiet() -> None:
    from nbops.build.kernels import IPCKernelManager, ReadyClient

    manager = IPCKernelManager(kernel_name="python3")
    run_sync(manager.start_kernel)()
    client = manager.client()
    waits: list[tuple[float | None, str]] = []
    get_msg = client.iopub_channel.get_msg

    async def recorded(timeout: float | None = None) -> dict:
        try:
            msg = await get_msg(timeout=timeout)
        except Exception:
            waits.append((timeout, "nothing came"))
            raise
        waits.append((timeout, msg["msg_type"]))
        return msg

    try:
        assert isinstance(client, ReadyClient)  # what nbclient gets from the manager
        client.start_channels()
        client.iopub_channel.get_msg = recorded
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client._async_recv_reply)(client.execute("1 + 1"), timeout=30)
    finally:
        client.stop_channels()
        run_sync(manager.shutdown_kernel)(now=True)

    assert reply["content"]["status"] == "ok"
    # jupyter_client then waited until IOPub had been quiet for 0.2 s; the client only
    # drains what is already there once the kernel's idle status came.
    idle = max(i for i, (_, kind) in enumerate(waits) if kind == "status")
    assert waits[idle + 1 :] and all(timeout == 0.0 for timeout, _ in waits[idle + 1 :])


# -- shutting a kernel down: an interrupt only when it is busy --------------------------

#: A process started from a notebook, in its kernel's process group (an interrupt of the
#: kernel reaches the group), that notes each SIGINT and, at SIGTERM (ipykernel's, to
#: the processes a notebook left, as it shuts down), writes what it saw.
_WITNESS = (
    "import os, signal, sys, time\n"
    "seen = []\n"
    "signal.signal(signal.SIGINT, lambda *a: seen.append('SIGINT'))\n"
    "def leave(*a):\n"
    "    open(sys.argv[1] + '.tmp', 'w').write(' '.join(seen) or 'nothing')\n"
    "    os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, leave)\n"
    "open(sys.argv[1] + '.ready', 'w').close()\n"
    "while True:\n"
    "    time.sleep(0.05)\n"
)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a file a process of the test's writes


def _papermill(notebook: Path, **kwargs: Any) -> None:
    """Run ``notebook`` as ``ploomber task NAME`` does: papermill's own kernel start."""
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(notebook.with_suffix(".out.ipynb")),
        kernel_manager_class="nbops.build.kernels.IPCKernelManager",
        progress_bar=False,
        **kwargs,
    )


def _exit_handler(left: Path) -> str:
    """A cell registering an exit handler that writes ``left``."""
    return f"import atexit\n_ = atexit.register(lambda: open({str(left)!r}, 'w').write('exit handlers ran'))"


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("last_cell", "raised"),
    [("x = 1", None), ("raise ValueError('broken on purpose')", "broken on purpose")],
)
def test_a_kernel_done_with_its_notebook_is_shut_down_without_an_interrupt(
    tmp_path: Path, last_cell: str, raised: str | None
) -> None:
    # papermill's own kernel start (`ploomber task NAME`, a kernel the pool did not
    # warm): nbclient shuts the kernel down when the notebook is done, or has failed. An
    # interrupt then landed in the kernel's last request, still finishing, about one
    # notebook in six on a busy machine: "[IPKernelApp] ERROR | KeyboardInterrupt caught
    # in kernel." in a build that went well. A notebook that fails still says why.
    import signal

    from papermill.exceptions import PapermillExecutionError

    witness, heard = tmp_path / "witness.py", tmp_path / "heard"
    witness.write_text(_WITNESS)
    notebook = _notebook(
        tmp_path / "done.ipynb",
        "import os, subprocess, sys, time\n"
        f"w = subprocess.Popen([sys.executable, {str(witness)!r}, {str(heard)!r}])\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(heard) + '.ready'!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(w.pid))",
        last_cell,
    )

    with contextlib.ExitStack() as stack:
        if raised:
            stack.enter_context(pytest.raises(PapermillExecutionError, match=raised))
        _papermill(notebook)

    # Signals are handled lowest number first: a SIGINT sent before is seen before this.
    if not heard.exists():  # else it has written and left, at the kernel's exit
        with contextlib.suppress(ProcessLookupError):
            os.kill(int((tmp_path / "pid").read_text()), signal.SIGTERM)
    _wait_for(heard)
    assert heard.read_text() == "nothing"


@pytest.mark.pipeline
def test_a_notebook_over_its_timeout_interrupts_its_kernel_which_leaves_cleanly(
    tmp_path: Path,
) -> None:
    # A kernel still running a cell when its notebook is given up: interrupted, it stops
    # the cell and leaves as asked, running its exit handlers (without the interrupt it
    # would be killed, and its handlers would not run).
    from papermill.exceptions import PapermillExecutionError

    left = tmp_path / "left"
    notebook = _notebook(
        tmp_path / "slow.ipynb", _exit_handler(left), "import time\ntime.sleep(300)"
    )

    with pytest.raises((PapermillExecutionError, TimeoutError, RuntimeError)):
        _papermill(notebook, execution_timeout=3)

    assert left.read_text() == "exit handlers ran"


@pytest.mark.pipeline
def test_a_build_stopped_mid_cell_interrupts_its_pool_kernel_which_leaves_cleanly(
    tmp_path: Path,
) -> None:
    # Ctrl-C during a build: the notebook's kernel, taken from the pool, is retired while
    # its cell still runs. It is interrupted, stops the cell and leaves as asked.
    left = tmp_path / "left"
    plan = [(str(tmp_path / "a.ipynb"), "python3", [])]
    pool = KernelPool(plan, ahead=1)
    pool.start()
    try:
        manager = pool.take(plan[0][0], "python3", os.getcwd())
        assert manager is not None
        client = manager.client()
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=60)
        reply = run_sync(client.execute_interactive)(_exit_handler(left), timeout=60)
        assert reply["content"]["status"] == "ok"
        running = client.execute(
            f"open({str(tmp_path / 'running')!r}, 'w').close()\nimport time\ntime.sleep(300)"
        )
        _wait_for(tmp_path / "running")  # the cell runs (its reply is not read)
        assert manager.awaiting_reply() and running in client.shell_channel.awaiting

        pool.retire(manager, client)
    finally:
        pool.close()

    assert left.read_text() == "exit handlers ran"
