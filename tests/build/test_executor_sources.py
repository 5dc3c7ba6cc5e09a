"""nbops' executor plans warm kernels for notebooks in every source format Ploomber
reads: ``.ipynb`` and ``.py`` (percent and light), whatever the output product."""

from __future__ import annotations

import textwrap

import pytest
from ploomber import DAG
from ploomber.products import File
from ploomber.tasks import NotebookRunner

from nbops.build.executor import _plan

SOURCES = {
    "percent.py": """
        # %% tags=["parameters"]
        product = None

        # %%
        import wave
        from json import dumps
    """,
    "light.py": """
        # + tags=["parameters"]
        product = None
        # -

        import wave
        from json import dumps
    """,
}


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("output", ["out.html", "out.ipynb"])
def test_a_py_notebook_is_planned_with_its_imports(tmp_path, source, output):
    path = tmp_path / source
    path.write_text(textwrap.dedent(SOURCES[source]).lstrip())
    dag = DAG()
    task = NotebookRunner(path, File(tmp_path / output), dag, name="nb")
    dag.render()
    notebook, kernel, modules = _plan(task)
    assert notebook == str(tmp_path / "out.ipynb")  # where papermill writes it
    assert kernel == "python3"
    assert modules == ["wave", "json"]
