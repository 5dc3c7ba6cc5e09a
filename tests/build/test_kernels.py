"""Warm kernels: which modules a notebook imports, the pool's hand-out rules, and the
IPC transport every kernel nbops starts uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync

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
        reply = run_sync(client.execute_interactive)("x = 1 + 1", timeout=60)
        assert reply["content"]["status"] == "ok"
        pool.retire(manager, client)
    finally:
        pool.close()
