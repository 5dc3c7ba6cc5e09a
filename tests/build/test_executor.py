"""nbops' Ploomber executor on a small real pipeline: warm kernels, background reports.

Each test builds a three-notebook project with ``ploomber build`` in a subprocess and
real kernels, then reads what a user would: the executed notebooks and HTML reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from tests.conftest import alarms, build_env

BIN = Path(sys.executable).parent

# The first notebook leaves a variable and a module behind; the later ones check that
# neither reaches them, and whether the modules they import were warm before they ran.
NOTEBOOKS = {
    "first": [
        "upstream = None\nproduct = None",
        # graphlib by name: a module the warm-up cannot see, imported here only.
        "import os, sys, importlib\nleak = 'from first'\nimportlib.import_module('graph' + 'lib')\nopen(product['pid'], 'w').write(str(os.getpid()))",
    ],
    "second": [
        "upstream = ['first']\nproduct = None",
        "import os, sys\nwarm = 'wave' in sys.modules\nclean = 'leak' not in globals() and '_nbops_warm' not in globals()\n"
        "import json\nfrom pathlib import Path\nparent = os.getppid()\n"
        # Forked kernels are the children of the build's template, itself the build's.
        "if 'nbops.build.forks' in Path(f'/proc/{parent}/cmdline').read_text():\n"
        "    build = int(Path(f'/proc/{parent}/stat').read_text().rsplit(')', 1)[1].split()[1])\n"
        "else:\n    build = parent\n"
        "json.dump({'pid': os.getpid(), 'build': build, 'forked': build != parent, 'warm': warm, 'clean': clean, 'graphlib': 'graphlib' in sys.modules}, open(product['pid'], 'w'))",
        "import wave\nprint('second ran')",
    ],
    "third": [
        "upstream = ['second']\nproduct = None",
        "import os\nopen(product['pid'], 'w').write(str(os.getpid()))\nprint('third ran')",
    ],
}


def _notebook(path: Path, cells: list[str] | tuple[str, ...], *, failing: bool = False) -> None:
    """A notebook of code cells, the first tagged ``parameters``; ``failing`` adds a
    last cell that raises."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells[1:]]
    if failing:
        nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"))
    nbformat.write(nb, path)


def _project(
    root: Path, *, failing: str | None = None, executor: bool = True, in_process: str | None = None
) -> Path:
    head = "executor:\n  dotted_path: nbops.build.executor.NotebookExecutor\n" if executor else ""
    return _pipeline(
        root, NOTEBOOKS, head=head, output="pid", failing=failing, in_process=in_process
    )


def _pipeline(
    root: Path,
    notebooks: dict[str, Any],
    *,
    head: str,
    output: str,
    failing: str | None = None,
    in_process: str | None = None,
) -> Path:
    """A project of ``notebooks`` (name: cells), each with an ``output`` file product."""
    (root / "nb").mkdir(parents=True)
    tasks = []
    for name, cells in notebooks.items():
        _notebook(root / "nb" / f"{name}.ipynb", cells, failing=name == failing)
        tasks.append(
            f"  - source: nb/{name}.ipynb\n    product:\n      nb: out/{name}.ipynb\n"
            f"      html: out/{name}.html\n      {output}: out/{name}.{output}\n    nb_product_key: [nb, html]\n"
            + ("    executor: ploomber-engine\n" if name == in_process else "")
        )
    (root / "pipeline.yaml").write_text(head + "tasks:\n" + "".join(tasks))
    return root


def _build(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ploomber"), "build", "--force"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=build_env(**env),
    )


def _kernels_marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            # Kernels started by jupyter_client, or the template and the kernels it forked.
            if ("ipykernel_launcher" in cmdline or "nbops.build.forks" in cmdline) and (
                proc.environ().get("NBOPS_TEST_MARKER") == marker
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.pipeline
def test_every_notebook_runs_in_a_fresh_kernel_with_its_imports_already_warm(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "p")
    marker = uuid.uuid4().hex

    result = _build(root, NBOPS_TEST_MARKER=marker)

    assert result.returncode == 0, result.stderr[-3000:]
    out = root / "out"
    second = json.loads((out / "second.pid").read_text())
    pids = {
        int((out / "first.pid").read_text()),
        second["pid"],
        int((out / "third.pid").read_text()),
    }
    assert len(pids) == 3  # one kernel process per notebook
    assert second["warm"] is True  # `import wave` (a later cell) was done before the notebook ran
    assert second["clean"] is True  # nothing from the first notebook, nothing from the warm-up
    assert second["graphlib"] is False  # the first notebook's imports stay in its own process
    assert second["forked"] is True  # from the build's template (Linux)
    assert _kernels_marked(marker) == []  # every kernel is gone when the build ends


@pytest.mark.pipeline
def test_reports_rendered_in_the_background_are_complete_html_when_the_build_ends(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "p")

    result = _build(root)

    assert result.returncode == 0, result.stderr[-3000:]
    for name in NOTEBOOKS:
        html = (root / "out" / f"{name}.html").read_text()
        assert html.lstrip().lower().startswith("<!doctype html>")
        assert "</html>" in html
    assert "third ran" in (root / "out" / "third.html").read_text()


@pytest.mark.pipeline
def test_a_failing_notebook_fails_the_build_keeps_its_partial_notebook_and_leaves_no_kernels(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "p", failing="second")
    marker = uuid.uuid4().hex

    result = _build(root, NBOPS_TEST_MARKER=marker)

    assert result.returncode != 0
    # The notebook's error is printed, and no interrupt of the other kernels as they go.
    assert "broken on purpose" in result.stdout + result.stderr
    assert alarms(result.stdout, result.stderr, kernels_only=True) == []
    partial = nbformat.read(root / "out" / "second.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in partial.cells for o in c.get("outputs", []))
    assert (root / "out" / "first.html").read_text().lstrip().lower().startswith("<!doctype html>")
    assert not (root / "out" / "third.pid").exists()  # downstream of the failure: not run
    # The kernel warmed for the third notebook, which never ran, was shut down too.
    assert _kernels_marked(marker) == []


@pytest.mark.pipeline
def test_plain_mode_builds_the_same_products(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")

    result = _build(root, NBOPS_EXECUTOR="plain")

    assert result.returncode == 0, result.stderr[-3000:]
    # Even papermill's own kernel start goes over IPC: no TCP warning in the build.
    assert "without encryption" not in result.stdout + result.stderr
    second = json.loads((root / "out" / "second.pid").read_text())
    assert second["warm"] is False and second["clean"] is True
    assert second["forked"] is False
    assert (root / "out" / "third.html").read_text().lstrip().lower().startswith("<!doctype html>")


@pytest.mark.pipeline
def test_a_task_built_without_the_executor_still_gets_an_ipc_kernel(tmp_path: Path) -> None:
    # `ploomber task NAME` builds one task directly, not through the executor.
    root = _project(tmp_path / "p")

    result = subprocess.run(
        [str(BIN / "ploomber"), "task", "first", "--force"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=build_env(),
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "out" / "first.pid").read_text().strip().isdigit()
    assert "without encryption" not in result.stdout + result.stderr
    assert alarms(result.stdout, result.stderr, kernels_only=True) == []


@pytest.mark.pipeline
def test_a_task_can_opt_in_to_running_in_the_build_process(tmp_path: Path) -> None:
    # `executor: ploomber-engine` on a task: no kernel start at all, at the price of
    # sharing the build's process (its imports stay loaded for the rest of the build).
    root = _project(tmp_path / "p", in_process="third")

    result = _build(root)

    assert result.returncode == 0, result.stderr[-3000:]
    out = root / "out"
    second = json.loads((out / "second.pid").read_text())
    # The second notebook ran in a kernel started by the build; the third in the build.
    assert int((out / "third.pid").read_text()) == second["build"] != second["pid"]
    assert "third ran" in (out / "third.html").read_text()


# -- independent tasks side by side (workers) -------------------------------------------


# A diamond: prepare -> (fit_a, fit_b) -> pick, as the grid's models between split and
# evaluate. Every task writes when it ran. Each fit marks its arrival, then waits (up to
# a deadline) for the other's mark: both see the other only if they truly ran at once.
def _timed(seconds: float) -> str:
    return (
        f"import json, os, time\nstarted = time.time()\ntime.sleep({seconds})\n"
        "json.dump({'pid': os.getpid(), 'start': started, 'end': time.time()}, open(product['json'], 'w'))"
    )


def _meet(me: str, other: str, deadline: float) -> str:
    return (
        "import json, os, time\nfrom pathlib import Path\nstarted = time.time()\n"
        "here = Path(product['json']).parent\nhere.mkdir(parents=True, exist_ok=True)\n"
        f"(here / '{me}.arrived').touch()\n"
        f"give_up = time.monotonic() + {deadline}\n"
        f"while not (here / '{other}.arrived').exists() and time.monotonic() < give_up:\n"
        "    time.sleep(0.02)\n"
        f"met = (here / '{other}.arrived').exists()\n"
        "json.dump({'pid': os.getpid(), 'start': started, 'end': time.time(), 'met': met}, open(product['json'], 'w'))"
    )


def _diamond(
    root: Path, *, workers: object, failing: str | None = None, deadline: float = 60
) -> Path:
    cells = {
        "prepare": ("upstream = None\nproduct = None", _timed(0)),
        "fit_a": ("upstream = ['prepare']\nproduct = None", _meet("fit_a", "fit_b", deadline)),
        "fit_b": ("upstream = ['prepare']\nproduct = None", _meet("fit_b", "fit_a", deadline)),
        "pick": ("upstream = ['fit_a', 'fit_b']\nproduct = None", _timed(0)),
    }
    head = (
        f"executor:\n  dotted_path: nbops.build.executor.NotebookExecutor\n  workers: {workers}\n"
    )
    return _pipeline(root, cells, head=head, output="json", failing=failing)


def _times(root: Path, name: str) -> dict[str, float]:
    return json.loads((root / "out" / f"{name}.json").read_text())


@pytest.mark.pipeline
@pytest.mark.parametrize("workers", [2, 1])
def test_independent_tasks_run_side_by_side_with_two_workers(tmp_path: Path, workers: int) -> None:
    # One at a time, the first fit waits for the second in vain: a short deadline then.
    root = _diamond(tmp_path / "p", workers=workers, deadline=60 if workers == 2 else 2)
    marker = uuid.uuid4().hex

    result = _build(root, NBOPS_TEST_MARKER=marker)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "without encryption" not in result.stdout + result.stderr  # IPC kernels
    prepare, a, b, pick = (_times(root, n) for n in ("prepare", "fit_a", "fit_b", "pick"))
    first, second = sorted((a, b), key=lambda t: t["start"])
    if workers == 2:
        # Both fits ran at the same time, each in its own kernel.
        assert first["met"] and second["met"]
    else:
        assert not first["met"] and first["end"] <= second["start"]
    assert len({prepare["pid"], a["pid"], b["pid"], pick["pid"]}) == 4
    assert prepare["end"] < min(a["start"], b["start"])  # upstream first
    assert pick["start"] > max(a["end"], b["end"])  # downstream after both
    for name in ("prepare", "fit_a", "fit_b", "pick"):
        assert (
            (root / "out" / f"{name}.html")
            .read_text()
            .lstrip()
            .lower()
            .startswith("<!doctype html>")
        )
    assert _kernels_marked(marker) == []


@pytest.mark.pipeline
def test_a_task_failing_side_by_side_stops_its_downstream_but_not_its_sibling(
    tmp_path: Path,
) -> None:
    root = _diamond(tmp_path / "p", workers=2, failing="fit_a")
    marker = uuid.uuid4().hex

    result = _build(root, NBOPS_TEST_MARKER=marker)

    assert result.returncode != 0
    assert "broken on purpose" in result.stdout + result.stderr
    assert _times(root, "fit_b")["end"] > 0  # the sibling finished
    partial = nbformat.read(root / "out" / "fit_a.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in partial.cells for o in c.get("outputs", []))
    assert not (root / "out" / "pick.json").exists()  # downstream of the failure: not run
    assert _kernels_marked(marker) == []


@pytest.mark.parametrize(
    ("cores", "workers", "expected"), [(2, "auto", 1), (4, "auto", 2), (16, "auto", 2), (2, 3, 3)]
)
def test_workers_auto_runs_two_at_a_time_from_four_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: object, expected: int
) -> None:
    from nbops.build.executor import NotebookExecutor

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert NotebookExecutor(workers=workers).workers == expected
    monkeypatch.setenv("NBOPS_EXECUTOR", "plain")
    assert NotebookExecutor(workers=workers).workers == 1


@pytest.mark.parametrize("workers", [0, -1, "two", 1.5, True])
def test_a_bad_workers_setting_names_the_setting_and_the_fix(workers: object) -> None:
    from nbops.build.executor import NotebookExecutor
    from nbops.errors import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"executor workers must be a whole number of 1 or more, or auto; got .*pipeline\.yaml",
    ):
        NotebookExecutor(workers=workers)


@pytest.mark.pipeline
def test_a_bad_workers_setting_fails_the_build_with_the_message(tmp_path: Path) -> None:
    root = _diamond(tmp_path / "p", workers="lots")

    result = _build(root)

    assert result.returncode != 0
    assert (
        "executor workers must be a whole number of 1 or more, or auto; got 'lots'"
        in result.stdout + result.stderr
    )


def test_fork_kernels_is_an_executor_option_and_plain_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbops.build.executor import NotebookExecutor

    assert NotebookExecutor().fork_kernels is True
    assert NotebookExecutor(fork_kernels=False).fork_kernels is False
    monkeypatch.setenv("NBOPS_EXECUTOR", "plain")
    assert NotebookExecutor().fork_kernels is False


@pytest.mark.parametrize(
    ("command", "early"),
    [
        (["ploomber", "build", "--force"], True),
        (["ploomber", "build", "-f", "--partially", "train"], True),
        (["ploomber", "build"], False),  # maybe nothing to do: no kernels
        (["ploomber", "status"], False),
        (["pytest", "tests", "--force"], False),
    ],
)
def test_a_forced_build_starts_its_kernel_template_while_the_pipeline_loads(
    monkeypatch: pytest.MonkeyPatch, command: list[str], early: bool
) -> None:
    from nbops.build.executor import NotebookExecutor

    argv = [sys.executable, str(BIN / command[0]), *command[1:]]
    monkeypatch.setattr(sys, "orig_argv", argv)
    executor = NotebookExecutor()
    template = executor._template
    try:
        assert (template is not None) is early
        if early:
            assert template.alive  # importing ipykernel while Ploomber renders
    finally:
        if template is not None:
            template.discard()  # what happens at exit when the build never comes
    assert template is None or template.process.poll() is not None
