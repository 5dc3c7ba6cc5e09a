"""Every way a user can point the pipeline at bad input: the build stops at the first
task with one paragraph naming the problem and the fix, and keeps what it did.

Every case runs the ingest notebook's own code on its input (in this process: an
:class:`~nbops.errors.NbopsError` naming the problem and the fix is what a kernel shows
as one paragraph); two cases, a pandas parse error and a missing target, and the schema
violations go through a real ``ploomber build``, which shows how the build reports such
an error: one paragraph, no pandas traceback, the partial notebook kept, nothing
downstream run. The messages of every bad file are in tests/data/test_sources.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from nbops.errors import NbopsError
from tests.conftest import ROOT

pytestmark = pytest.mark.pipeline


def _write(path, text):
    path.write_text(text)
    return path


# case: (make the source in a folder, env.yaml changes, the problem, the fix)
CASES = {
    "missing file": (lambda d: d / "nope.csv", {}, "does not exist", "Set data.source in env.yaml"),
    "empty file": (
        lambda d: _write(d / "empty.csv", ""),
        {},
        "is empty (0 bytes)",
        "Export the data again",
    ),
    "header only": (
        lambda d: _write(d / "header.csv", "a,b,churned\n"),
        {},
        "has a header (3 columns) but no data rows",
        "Export the data again",
    ),
    "unparseable csv": (
        lambda d: _write(d / "ragged.csv", "a,b,churned\n1,2,yes\n1,2,3,4,5\n"),
        {},
        "could not be parsed",
        "text containing the separator is quoted",
    ),
    "unknown target": (
        lambda d: _write(d / "t.csv", "a,b,churn\n1,2,yes\n3,4,no\n"),
        {},
        "Did you mean 'churn'?",
        "Set data.target in env.yaml",
    ),
    "single class": (
        lambda d: _write(d / "one.csv", "a,churned\n1,yes\n2,yes\n3,yes\n"),
        {},
        "has a single class",
        "pick another target",
    ),
    "wrong task": (
        lambda d: "bundled",
        {"task": "clasification"},
        "Did you mean 'classification'?",
        "Set task to one of",
    ),
}


#: The cases also built for real (one build each, about 13 CPU-s): a pandas error under
#: ours, and an error after the snapshot is written (the partial notebook has outputs).
BUILT = ("unparseable csv", "unknown target")


def run_ingest_code(tmp_path: Path, **params: object) -> None:
    """The ingest notebook's code cells, in this process, with ``params`` in place of
    its parameters cell (the values ``pipeline.yaml`` passes from env.yaml)."""
    notebook = nbformat.read(ROOT / "notebooks" / "ingest.ipynb", as_version=4)
    namespace: dict[str, object] = {
        "upstream": None,
        "product": {
            "nb": str(tmp_path / "ingest.ipynb"),
            "html": str(tmp_path / "ingest.html"),
            "data": str(tmp_path / "data" / "snapshot.parquet"),
            "meta": str(tmp_path / "data" / "snapshot.json"),
        },
        **{"target": "churned", "task": "classification", "rows": 1500, "seed": 42},
        "drift": 0.0,
        **params,
    }
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            exec(compile(cell.source, "ingest.ipynb", "exec"), namespace)


@pytest.mark.parametrize("case", CASES)
def test_the_ingest_notebook_stops_bad_input_with_one_paragraph_naming_the_fix(tmp_path, case):
    make_source, env, expected, fix = CASES[case]
    source = make_source(tmp_path)

    with pytest.raises(NbopsError) as caught:  # shown by a kernel as its message alone
        run_ingest_code(tmp_path / "products", source=str(source), **env)

    assert expected in str(caught.value)
    assert fix in str(caught.value), "the message says how to fix it"


@pytest.mark.parametrize("case", BUILT)
def test_bad_input_stops_the_build_at_ingest_with_one_clear_paragraph(make_project, tmp_path, case):
    make_source, env, expected, fix = CASES[case]
    project = make_project(**env)
    source = make_source(tmp_path)

    result = project.build("--env--data--source", str(source), check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "/pandas/" not in output and "/pyarrow/" not in output, (
        "no traceback from deep inside pandas"
    )
    assert fix in output, "the message says how to fix it"
    partial = nbformat.read(project.products / "ingest.ipynb", as_version=4)
    errors = [
        o for c in partial.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors and expected in errors[0]["evalue"], "the partial notebook keeps the error cell"
    assert not (project.products / "validate.ipynb").exists(), "nothing downstream ran"


def test_schema_violations_stop_the_build_naming_every_column(make_project):
    project = make_project()
    schema = project.root / "schema" / "churn.yaml"
    text = schema.read_text()
    text = text.replace("    - enterprise\n", "", 1)  # plan: enterprise is no longer allowed
    text = text.replace(
        "    greater_than_or_equal_to: 0\n    less_than_or_equal_to: 100",
        "    greater_than_or_equal_to: 0\n    less_than_or_equal_to: 2",
    )  # support_calls
    schema.write_text(text)

    result = project.build(check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SchemaViolationError" in output
    assert "column 'plan', check isin" in output and "'enterprise'" in output
    assert "column 'support_calls', check less_than_or_equal_to(2)" in output
    assert (project.products / "ingest.html").exists(), "finished tasks keep their reports"
    assert (project.products / "validate.ipynb").exists(), "the failing notebook is kept"
    assert not (project.products / "split.ipynb").exists(), "nothing downstream ran"
