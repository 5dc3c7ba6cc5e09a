"""Notebooks as git holds them: finding and removing outputs and injected cells."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbops.build import nbclean
from tests.conftest import ROOT

SCRIPT = ROOT / "src" / "nbops" / "build" / "nbclean.py"


def notebook(*, outputs: bool = False, injected: bool = False) -> dict:
    """A small pipeline notebook as parsed JSON, in nbformat's own layout."""
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Train", id="md"),
        nbformat.v4.new_code_cell(
            'upstream = ["split"]\nproduct = None', id="params", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell("print(product['model'])", id="body"),
    ]
    if injected:
        # What Ploomber's injection adds: a tagged cell, papermill metadata, empty tags.
        nb.cells.insert(
            2,
            nbformat.v4.new_code_cell(
                'upstream = {"split": {"train": "/home/ana/p/products/train.parquet"}}\n'
                'product = {"model": "/home/ana/p/products/model.joblib"}',
                id="injected",
                metadata={"tags": ["injected-parameters"]},
            ),
        )
        nb.metadata["papermill"] = {"parameters": {}, "environment_variables": {}, "version": None}
        nb.cells[2 + 1].metadata["tags"] = []
    if outputs:
        body = nb.cells[-1]
        body.execution_count = 4
        body.outputs = [nbformat.v4.new_output("stream", name="stdout", text="model.joblib\n")]
        body.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    return json.loads(nbformat.writes(nb))


def write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def test_a_clean_notebook_has_no_problems_and_cleaning_changes_nothing():
    nb = notebook()
    before = copy.deepcopy(nb)
    assert nbclean.problems(nb) == []
    assert nbclean.clean(nb) is False
    assert nb == before


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (
            ("injected",),
            [
                "cell 3: an injected cell (tag injected-parameters) with one machine's paths; "
                "remove it with `ploomber nb --remove`, or save the notebook from `make lab`",
                "notebook metadata: papermill left by cell injection",
            ],
        ),
        (
            ("outputs",),
            [
                "cell 4: 1 output(s)",
                "cell 4: execution count 4 (run it through `make lab` or strip it)",
                "cell 4: run metadata execution",
            ],
        ),
    ],
)
def test_problems_name_the_cell_and_the_fix(kinds, expected):
    assert nbclean.problems(notebook(outputs=True, injected=True), kinds=kinds) == expected


def test_clean_leaves_exactly_the_notebook_as_committed():
    dirty = notebook(outputs=True, injected=True)
    assert nbclean.clean(dirty) is True
    assert dirty == notebook()


def test_clean_of_one_kind_leaves_the_other():
    nb = notebook(outputs=True, injected=True)
    nbclean.clean(nb, kinds=("outputs",))
    assert nbclean.problems(nb, kinds=("outputs",)) == []
    assert len(nbclean.problems(nb, kinds=("injected",))) == 2


def test_main_checks_every_file_and_exits_1(tmp_path, capsys):
    good = write(tmp_path / "good.ipynb", notebook())
    bad = write(tmp_path / "bad.ipynb", notebook(outputs=True))
    assert nbclean.main([str(good)]) == 0
    assert nbclean.main([str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: cell 3: 1 output(s)" in err and str(good) not in err
    assert json.loads(bad.read_text()) == notebook(outputs=True), "a check does not write"


def test_main_fix_writes_the_clean_notebook_in_nbformat_layout(tmp_path, capsys):
    bad = write(tmp_path / "bad.ipynb", notebook(outputs=True, injected=True))
    assert nbclean.main(["--fix", str(bad)]) == 1, "the commit is redone with the fixed file"
    assert "fixed: cell 3: an injected cell" in capsys.readouterr().err
    assert bad.read_text() == nbformat.writes(nbformat.from_dict(notebook())) + "\n"
    assert nbclean.main([str(bad)]) == 0


def test_main_reports_a_file_that_is_not_a_notebook(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert nbclean.main([str(broken)]) == 1
    assert f"{broken}: not a readable notebook" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "notebooks").rglob("*.ipynb")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_repository_notebooks_are_clean(path):
    assert nbclean.problems(json.loads(path.read_text())) == []


def test_the_script_runs_without_nbops_installed(tmp_path):
    # How pre-commit runs it: isolated mode (no script folder or user site on sys.path),
    # in an interpreter that cannot import nbops or nbformat.
    bad = write(tmp_path / "bad.ipynb", notebook(injected=True))
    guard = "import sys; sys.modules['nbops'] = sys.modules['nbformat'] = None; "
    code = (
        guard
        + f"import runpy; sys.argv = ['nbclean', {str(bad)!r}]; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "injected cell (tag injected-parameters)" in result.stderr
