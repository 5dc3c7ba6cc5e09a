"""The in-process papermill engine: a notebook run in this process reads as one run by a
kernel (outputs, counts, errors as papermill marks them), and leaves the process as it
found it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbops.build.inprocess import register
from nbops.build.kernels import IPCKernelManager, ipc_by_default

CELLS = [
    "print('a'); print('b')\nimport sys; print('to stderr', file=sys.stderr)\nvalue * 2",
    "from IPython.display import Markdown, display\ndisplay(Markdown('**bold**'))\nprint('after')",
    "import pandas as pd\npd.DataFrame({'x': [1, 2]})",
    "handle = display(Markdown('first'), display_id=True)\nhandle.update(Markdown('second'))",
    "from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);",
    "from nbops.modeling.plots import Figure\nfig = Figure(figsize=(2, 2))\n"
    "fig.add_subplot().plot([1, 2])\ndisplay(fig)",
    "value;",
]


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A notebook"),
            nbformat.v4.new_code_cell("value = 1", metadata={"tags": ["parameters"]}),
            *[nbformat.v4.new_code_cell(source) for source in sources],
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)
    return path


def _run(source: Path, out: Path, *, engine: str | None, **kwargs) -> nbformat.NotebookNode:
    papermill.execute_notebook(
        str(source),
        str(out),
        parameters={"value": 21},
        engine_name=engine,
        progress_bar=False,
        **kwargs,
    )
    return nbformat.read(out, as_version=4)


def _outputs(nb: nbformat.NotebookNode) -> list:
    return [(c.get("execution_count"), c.get("outputs")) for c in nb.cells]


@pytest.mark.parametrize("backend", [None, "Agg"], ids=["inline", "MPLBACKEND=Agg"])
def test_a_notebook_run_in_process_has_the_outputs_a_kernel_gives(tmp_path, monkeypatch, backend):
    if backend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend
    else:
        monkeypatch.setenv("MPLBACKEND", backend)
    source = _notebook(tmp_path / "nb.ipynb", *CELLS)
    ipc_by_default()

    here = _run(source, tmp_path / "here.ipynb", engine=register())
    # a plain ipykernel (not forked from a template), over IPC
    kernel = _run(
        source, tmp_path / "kernel.ipynb", engine=None, kernel_manager_class=IPCKernelManager
    )

    assert _outputs(here) == _outputs(kernel)
    assert here.metadata.language_info == kernel.metadata.language_info
    streams = here.cells[3].outputs
    assert [(o.name, o.text) for o in streams[:2]] == [
        ("stdout", "a\nb\n"),
        ("stderr", "to stderr\n"),
    ]
    assert streams[2].data == {"text/plain": "42"} and streams[2].execution_count == 3
    assert here.cells[5].outputs[0].data["text/html"].startswith("<div>")
    pyplots = [o.output_type for o in here.cells[8].outputs]
    assert pyplots == (["display_data"] if backend is None else []), "shown as the kernel shows it"
    assert "image/png" in here.cells[9].outputs[0].data
    assert here.cells[10].outputs == [], "a trailing semicolon hides the value"


def test_a_failing_cell_is_shown_as_papermill_shows_it_and_the_rest_is_not_run(tmp_path):
    source = _notebook(tmp_path / "nb.ipynb", "print('before')", "1 / 0", "print('never')")

    with pytest.raises(papermill.PapermillExecutionError) as failure:
        _run(source, tmp_path / "out.ipynb", engine=register())

    assert str(failure.value).strip().splitlines()[-1] == "ZeroDivisionError: division by zero"
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    failed = next(c for c in nb.cells if c.source == "1 / 0")
    error = failed.outputs[-1]
    assert (error.output_type, error.ename, error.evalue) == (
        "error",
        "ZeroDivisionError",
        "division by zero",
    )
    assert "Cell In[4], line 1" in re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
    assert failed.metadata.papermill.exception is True
    assert any(
        'id="papermill-error-cell"' in c.source for c in nb.cells if c.cell_type == "markdown"
    )
    never = next(c for c in nb.cells if c.source == "print('never')")
    assert never.outputs == [] and never.execution_count is None


def test_the_process_is_left_as_it_was(tmp_path, capfd):
    import threading

    source = _notebook(
        tmp_path / "nb.ipynb",
        "import os, sys\nprint(os.getcwd())\nprint(sys.path[0])",
        "import threading\nt = threading.Thread(target=print, args=('from a thread',))\n"
        "t.start(); t.join()",
    )
    folder = tmp_path / "work"
    folder.mkdir()
    before = (sys.stdout, sys.stderr, sys.modules["__main__"], list(sys.path), os.getcwd())
    threads = threading.active_count()

    nb = _run(source, tmp_path / "out.ipynb", engine=register(), cwd=str(folder))

    assert nb.cells[3].outputs[0].text == f"{folder}\n{folder}\n", (
        "run in its folder, first on the path"
    )
    assert nb.cells[4].outputs == [], "another thread's output is not the cell's"
    assert "from a thread" in capfd.readouterr().out
    assert (sys.stdout, sys.stderr, sys.modules["__main__"], list(sys.path), os.getcwd()) == before
    assert not InteractiveShell.initialized(), "no IPython shell left behind"
    assert threading.active_count() == threads
