"""A build with nothing to do (every task up to date) touches nothing and records
nothing, and the next change still rebuilds what it affects (issue 19)."""

from __future__ import annotations

from pathlib import Path

import nbformat


def files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".nbops" not in p.relative_to(root).parts
    }


def ran(stdout: str) -> dict[str, str]:
    """Ploomber's build report: task name -> "True"/"False"."""
    return {
        parts[0]: parts[1]
        for line in stdout.splitlines()
        if len(parts := line.split()) == 4 and parts[1] in {"True", "False"}
    }


def test_a_no_op_build_rewrites_nothing_and_a_change_still_rebuilds(copy_built):
    project = copy_built()  # every product up to date; no tracking store yet
    before = files(project.root)

    result = project.build()

    assert set(ran(result.stdout).values()) == {"False"}
    assert "nbops: nothing to do: all 7 task(s) are up to date" in result.stderr
    after = files(project.root)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == [] and after.keys() == before.keys(), "no notebook, product or report"
    assert not (project.root / ".nbops" / "mlflow.db").exists(), "no run recorded"

    # One source changed: that task and its downstream run, and the summary says so.
    path = project.root / "notebooks" / "evaluate.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = next(
        c
        for c in nb.cells
        if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
    )
    code.source += "\n# reviewed again"
    nbformat.write(nb, path)

    rebuilt = project.build()

    tasks = ran(rebuilt.stdout)
    assert {name for name, flag in tasks.items() if flag == "True"} == {"evaluate", "gate"}
    assert "recorded build as run" in rebuilt.stderr
    now = files(project.root)
    for report in ("products/index.html", "products/evaluate.html", "products/gate.html"):
        assert now[report] != after[report], report
    assert now["products/ingest.ipynb"] == after["products/ingest.ipynb"]
    summary = (project.products / "index.html").read_text()
    assert "2 executed, 5 up to date (skipped)" in summary
