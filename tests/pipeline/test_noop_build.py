"""A build with nothing to do (every task up to date) touches nothing and records
nothing, the next one is answered at start-up, and the next change still rebuilds what
it affects (issue 19)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nbformat
import yaml

from tests.conftest import BIN, Project, build_env

#: The start-up hook of this checkout, whichever `python -m nbops.build.offline` last
#: installed into the venv (its .pth calls start(), an older one the first two).
HOOK = """from nbops.build.startup import answer_no_op, defer_imports, start  # noqa: F401
from nbops.build import startup as _startup


def defer_iri_grammar():
    answer_no_op()
    return _startup.defer_iri_grammar()
"""
ANSWERED = "no file they depend on changed since the last build found them so"


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


def age(root: Path, *, seconds: float) -> None:
    """Move every file's times under ``root`` back by ``seconds`` (their order kept)."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            os.utime(
                path, ns=(st.st_atime_ns - int(seconds * 1e9), st.st_mtime_ns - int(seconds * 1e9))
            )


def build(project: Project, hook: Path) -> subprocess.CompletedProcess[str]:
    """``ploomber build`` with this checkout's start-up hook."""
    env = build_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [str(BIN / "ploomber"), "build"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_a_no_op_build_rewrites_nothing_and_a_change_still_rebuilds(copy_built, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "_nbops_startup.py").write_text(HOOK)
    project = copy_built()  # every product up to date; no tracking store yet
    # The copy keeps the session build's times; a build that may have just ended (this
    # file run alone) wrote them less than a second ago, and a no-op build keeps no
    # answer resting on a file that new (Ploomber may have read it mid-write): the same
    # files, as if built a minute ago.
    age(project.root, seconds=60)
    before = files(project.root)

    result = build(project, hook)

    assert set(ran(result.stdout).values()) == {"False"}
    assert "nbops: nothing to do: all 7 task(s) are up to date" in result.stderr
    after = files(project.root)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == [] and after.keys() == before.keys(), "no notebook, product or report"
    assert not (project.root / ".nbops" / "mlflow.db").exists(), "no run recorded"
    assert ANSWERED not in result.stderr, "Ploomber decided"

    # Nothing changed since: answered at start-up, the same report, still nothing written.
    again = build(project, hook)
    assert ANSWERED in again.stderr and "Warning" not in again.stderr, "Ploomber not loaded"
    assert again.stdout == result.stdout
    assert files(project.root) == after

    # A parameter in env.yaml: the task that uses it runs (the gate), answered no more.
    env = yaml.safe_load((project.root / "env.yaml").read_text())
    project.set_env(release={"n_bootstrap": int(env["release"]["n_bootstrap"]) + 1})
    tasks = ran(build(project, hook).stdout)
    assert {name for name, flag in tasks.items() if flag == "True"} == {"gate"}
    assert ANSWERED not in build(project, hook).stderr  # Ploomber decides, keeps again
    after = files(project.root)

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

    rebuilt = build(project, hook)

    tasks = ran(rebuilt.stdout)
    assert {name for name, flag in tasks.items() if flag == "True"} == {"evaluate", "gate"}
    assert "recorded build as run" in rebuilt.stderr and ANSWERED not in rebuilt.stderr
    now = files(project.root)
    for report in ("products/index.html", "products/evaluate.html", "products/gate.html"):
        assert now[report] != after[report], report
    assert now["products/ingest.ipynb"] == after["products/ingest.ipynb"]
    summary = (project.products / "index.html").read_text()
    assert "2 executed, 5 up to date (skipped)" in summary
