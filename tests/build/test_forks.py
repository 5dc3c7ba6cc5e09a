"""Forked kernels: notebooks run by papermill in kernels forked from one template
process per build (real template, real kernels, small notebooks; no Ploomber)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from nbops.build.forks import _forkable
from nbops.build.kernels import ForkKernelManager, KernelPool, warm_engine


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def _run(source: Path, output: Path) -> nbformat.NotebookNode:
    pm.execute_notebook(str(source), str(output), kernel_name="python3", progress_bar=False)
    return nbformat.read(output, as_version=4)


def _facts(nb: nbformat.NotebookNode) -> dict:
    """The JSON the notebook's last cell printed."""
    return json.loads(nb.cells[-1].outputs[-1]["text"])


def _run_forked(tmp_path: Path, modules: list[str], *cells: str) -> nbformat.NotebookNode:
    """Run a notebook of ``cells`` importing ``modules`` in a kernel forked from a
    template of its own that imported them (asserted: not a kernel started otherwise)."""
    source = _notebook(tmp_path / "task.ipynb", *cells)
    plan = [(str(tmp_path / "task.out.ipynb"), "python3", modules)]
    pool = KernelPool(plan, ahead=0, fork_modules=["json", *modules])
    try:
        with warm_engine(pool):
            return _run(source, tmp_path / "task.out.ipynb")
    finally:
        assert pool.hits == 1, "the forked kernel ran it"


REPORT = (
    "import json, os, sys\n"
    "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(), "
    "'pgid': os.getpgid(0), 'pandas': 'pandas' in sys.modules}))"
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelPool]:
    """One build's pool for the module: kernels forked from a template that imported
    pandas and matplotlib's pyplot (the imports of the reference notebooks that
    matter). Each kernel starts when its notebook runs (``ahead=0``), in that test's
    environment."""
    plan = [(f"/nonexistent/{n}.ipynb", "python3", ["json"]) for n in ("a", "b")]
    pool = KernelPool(plan, ahead=0, fork_modules=["json", "pandas", "matplotlib.pyplot"])
    with warm_engine(pool):
        yield pool


@pytest.mark.pipeline  # real kernels
def test_a_forked_kernel_runs_a_notebook_with_correct_results_and_plots(
    tmp_path: Path, pool: KernelPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MPLBACKEND")  # the kernel's own backend (Agg shows no figures)
    source = _notebook(
        tmp_path / "a.ipynb",
        "import pandas as pd\ntotal = int(pd.Series([1, 2, 3]).sum())\nprint(total)\n"
        "print(pd.get_option('display.max_columns'))",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('a line')",
        REPORT,
    )

    nb = _run(source, tmp_path / "a.out.ipynb")

    # pandas was imported outside a kernel: DataFrames still print as in a kernel.
    assert nb.cells[0].outputs[0]["text"].split() == ["6", "20"]
    # matplotlib was imported in the template, before any kernel: the figure still shows.
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs)
    facts = _facts(nb)
    assert facts["ppid"] == pool.template.process.pid  # forked from the template
    assert facts["pgid"] == facts["pid"]  # a process group of its own
    assert facts["pandas"] is True
    assert facts["cwd"] == os.getcwd()


@pytest.mark.pipeline  # real kernels
def test_what_a_module_imports_inside_its_functions_is_imported_once_in_the_template(
    tmp_path: Path,
) -> None:
    # nbops.tracking.registry imports MLflow and skops inside its functions (about 5 s
    # of CPU); it declares them, so the gate's kernel starts with them imported.
    from nbops.tracking import registry

    nb = _run_forked(
        tmp_path,
        ["nbops.tracking.registry"],
        "import sys, json\nimport nbops.tracking.registry\n"
        f"print(json.dumps([m in sys.modules for m in {list(registry.__warm_imports__)!r}]))",
    )
    assert json.loads(nb.cells[-1].outputs[-1]["text"]) == [True] * len(registry.__warm_imports__)


@pytest.mark.pipeline  # real kernels
def test_an_nbops_error_is_one_paragraph_though_nbops_was_imported_before_the_kernel(
    tmp_path: Path,
) -> None:
    # nbops hooks its short error display into the kernel's shell when imported; the
    # template imported it before any shell existed, so the kernel installs it.
    with pytest.raises(pm.PapermillExecutionError) as raised:
        _run_forked(
            tmp_path,
            ["nbops"],
            "import nbops\nfrom nbops.errors import DataError\n"
            "raise DataError('data.csv is missing: point data.source at it')",
        )
    shown = "\n".join(raised.value.traceback)
    assert "DataError: data.csv is missing" in shown
    assert "nbops/errors.py" not in shown and "Traceback" not in shown


@pytest.mark.pipeline  # real kernels
def test_two_notebooks_of_one_build_do_not_see_each_others_names_or_patches(
    tmp_path: Path, pool: KernelPool
) -> None:
    first = _notebook(
        tmp_path / "a.ipynb",
        "import json, random\nleak = 'from a'\njson.dumps = lambda *a, **k: 'patched'\n"
        "print(json.dumps({}))",
        "import numpy as np\nprint(np.random.random())",
        # Left open: written out when the kernel exits, as by a fresh Python.
        f"unclosed = open({str(tmp_path / 'unclosed.txt')!r}, 'w')\nunclosed.write('kept')",
    )
    second = _notebook(
        tmp_path / "b.ipynb",
        "import json, random\nprint(json.dumps({'leak': 'leak' in globals(), 'dumps': json.dumps({})}))",
        "import numpy as np\nprint(np.random.random())",
    )

    a = _run(first, tmp_path / "a.out.ipynb")
    b = _run(second, tmp_path / "b.out.ipynb")

    assert a.cells[0].outputs[0]["text"].strip() == "patched"
    assert json.loads(b.cells[0].outputs[0]["text"]) == {"leak": False, "dumps": "{}"}
    # Unseeded global random state is fresh in each kernel, not the template's copy.
    assert a.cells[1].outputs[0]["text"] != b.cells[1].outputs[0]["text"]
    # The kernel of "a" exits once shut down, its open file written out.
    unclosed, give_up = tmp_path / "unclosed.txt", time.monotonic() + 60
    while unclosed.read_text() != "kept" and time.monotonic() < give_up:
        time.sleep(0.05)
    assert unclosed.read_text() == "kept"


@pytest.mark.pipeline  # real kernels
def test_a_kernel_that_dies_fails_its_notebook_without_hanging_and_the_next_one_runs(
    tmp_path: Path, pool: KernelPool
) -> None:
    dying = _notebook(tmp_path / "a.ipynb", "import os\nos._exit(3)", "print('never')")
    started = time.monotonic()

    with pytest.raises(Exception, match="(?i)kernel died"):
        _run(dying, tmp_path / "a.out.ipynb")

    assert time.monotonic() - started < 60
    after = _run(_notebook(tmp_path / "b.ipynb", REPORT), tmp_path / "b.out.ipynb")
    assert _facts(after)["ppid"] == pool.template.process.pid


@pytest.mark.pipeline  # real kernels
def test_when_the_template_is_gone_kernels_start_the_usual_way_and_say_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = KernelPool([], fork_modules=["json"])
    with warm_engine(pool):
        template = pool.template
        template.process.kill()
        template.process.wait()
        with caplog.at_level(logging.WARNING, logger="nbops.build.forks"):
            nb = _run(_notebook(tmp_path / "a.ipynb", REPORT), tmp_path / "a.out.ipynb")

    assert _facts(nb)["ppid"] == os.getpid()  # started by this process, not forked
    assert "without forking: the kernel template process exited with code -9" in caplog.text
    assert ForkKernelManager.template is not template  # forgotten after its build


@pytest.mark.parametrize(
    ("python", "module", "forked"),
    [
        ("this", "ipykernel_launcher", True),
        # Another virtualenv: the same binary (a symlink), never the same packages.
        ("other-venv", "ipykernel_launcher", False),
        ("this", "some_other_kernel", False),
        ("/nonexistent/bin/python", "ipykernel_launcher", False),
    ],
)
def test_only_this_environments_ipykernel_is_forked(
    tmp_path: Path, python: str, module: str, forked: bool
) -> None:
    if python == "this":
        python = sys.executable
    elif python == "other-venv":
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
        python = str(tmp_path / "bin" / "python")

    assert (_forkable([python, "-m", module, "-f", "c.json"]) is None) is forked


@pytest.mark.pipeline  # real kernels
def test_a_forked_kernels_garbage_collector_leaves_the_templates_imports_alone(
    tmp_path: Path, pool: KernelPool
) -> None:
    # What the template imported is frozen: the kernel's collections (two full ones as
    # IPython exits) skip pandas' and matplotlib's objects instead of visiting them all.
    nb = _run(
        _notebook(
            tmp_path / "a.ipynb", "import gc, json\nprint(json.dumps(gc.get_freeze_count()))"
        ),
        tmp_path / "a.out.ipynb",
    )

    assert json.loads(nb.cells[0].outputs[0]["text"]) > 50_000


@pytest.mark.pipeline  # real kernels
@pytest.mark.parametrize(("every", "seen"), [(30, False), (0.5, True)])
def test_the_executed_notebook_is_written_at_cells_only_when_a_save_is_due(
    tmp_path: Path, pool: KernelPool, every: float, seen: bool
) -> None:
    # papermill wrote the whole notebook at every cell's start and end; it is written
    # when it starts and ends, and at a cell only once autosave_cell_every has passed
    # since it last was (here: after a first cell of a second, or not).
    output = tmp_path / "a.out.ipynb"
    source = _notebook(
        tmp_path / "a.ipynb",
        "import time\nprint('first cell ran')\ntime.sleep(1)",
        f"import json\ncells = json.load(open({str(output)!r}))['cells']\n"
        "print(json.dumps(any('first cell ran' in ''.join(o.get('text', '')) for o in cells[0]['outputs'])))",
    )

    pm.execute_notebook(
        str(source),
        str(output),
        kernel_name="python3",
        progress_bar=False,
        autosave_cell_every=every,
    )

    nb = nbformat.read(output, as_version=4)
    assert json.loads(nb.cells[1].outputs[0]["text"]) is seen  # what a reader saw meanwhile
    assert nb.cells[0].outputs[0]["text"] == "first cell ran\n"  # all there in the end


@pytest.mark.pipeline  # real kernels
def test_a_forked_kernel_asked_to_go_finishes_its_control_thread_before_its_output_stops(
    tmp_path: Path, pool: KernelPool
) -> None:
    # ipykernel's exit stops IOPub, then waits for the control thread. A control thread
    # still flushing the shutdown request's output then waited for the stopped IOPub
    # (10 s), and the kernel was killed 5 s after it was asked to go: one shutdown in
    # about 25, a build's end 5 s late. Here the control thread is made slow to finish
    # the request (what a busy machine does now and then): the kernel lets it finish
    # before its output stops.
    probe = tmp_path / "control-alive-when-iopub-stopped"
    source = _notebook(
        tmp_path / "a.ipynb",
        "import asyncio\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "app = IPKernelApp.instance()\n"
        "handle = app.kernel.control_handlers['shutdown_request']\n"
        "async def slowly(*args):\n"
        "    await handle(*args)\n"
        "    await asyncio.sleep(0.5)\n"
        "app.kernel.control_handlers['shutdown_request'] = slowly\n"
        "stop_iopub = app.iopub_thread.stop\n"
        # Names bound as defaults: IPython clears the namespace as the kernel exits.
        "def noted_stop(app=app, stop_iopub=stop_iopub):\n"
        f"    open({str(probe)!r}, 'w').write(str(app.control_thread.is_alive()))\n"
        "    stop_iopub()\n"
        "app.iopub_thread.stop = noted_stop",
    )

    _run(source, tmp_path / "a.out.ipynb")  # papermill asks the kernel to go, waits for it

    assert probe.read_text() == "False"
