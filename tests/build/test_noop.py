"""A build with nothing to do answered at start-up (nbops.build.noop): the same answer
while nothing it rested on changed, and a real build after any change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nbops.build import hooks, noop

SRC = Path(noop.__file__).resolve().parents[2]
OUTPUT = "Loading pipeline...\nname  Ran?\nsplit False\n"
MESSAGE = "nbops: nothing to do: all 2 task(s) are up to date\n"


class Folder:
    """A project folder as a build left it: spec, settings, two notebooks, a resource,
    products with their metadata, every file written well before the build started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        files = {
            "pipeline.yaml": "tasks:\n  - source: nb/split.ipynb\n    params: {rows: '{{rows}}'}\n",
            "env.yaml": "rows: 100\nseed: 1\n",
            "nb/ingest.ipynb": '{"cells": []}',
            "nb/split.ipynb": '{"cells": ["upstream = [\'ingest\']"]}',
            "schema/churn.yaml": "columns: {}\n",
            "products/ingest.parquet": "rows",
            "products/.ingest.parquet.metadata": '{"timestamp": 1.0}',
            "products/split.parquet": "rows",
            "products/.split.parquet.metadata": '{"timestamp": 2.0}',
        }
        past = time.time() - 60
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
            os.utime(root / name, (past, past))
        self.hashed = [
            str(root / n)
            for n in ("nb/ingest.ipynb", "nb/split.ipynb", "schema/churn.yaml")
            + ("products/.ingest.parquet.metadata", "products/.split.parquet.metadata")
        ]
        self.stated = [str(root / "products/ingest.parquet"), str(root / "products/split.parquet")]

    def remember(self, **kwargs: object) -> bool:
        return noop.remember(
            self.root,
            hashed=self.hashed,
            stated=self.stated,
            output=OUTPUT,
            message=MESSAGE,
            started_at=kwargs.pop("started_at", time.time()),
            argv=kwargs.pop("argv", ["build"]),
        )


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Folder:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv(noop.OFF_ENV, raising=False)
    monkeypatch.setattr(noop, "_started", None)
    return Folder(root.resolve())


def test_an_unchanged_folder_gets_the_kept_answer(folder: Folder) -> None:
    assert folder.remember()
    assert noop.answer(["build"]) == (OUTPUT, MESSAGE)
    assert json.loads(noop.state_path(folder.root).read_text())["key"]["argv"] == ["build"]


def _edit(path: str, text: str) -> Callable[[Folder], None]:
    return lambda f: (f.root / path).write_text(text)


CHANGES: dict[str, Callable[[Folder], None]] = {
    "a notebook's code": _edit("nb/split.ipynb", '{"cells": ["upstream = [\'ingest\']", "x"]}'),
    "a parameter in env.yaml": _edit("env.yaml", "rows: 200\nseed: 1\n"),
    "the spec": _edit("pipeline.yaml", "tasks: []\n"),
    # what `ploomber task ingest --force` leaves: the upstream's newer metadata
    "an upstream product rebuilt": _edit("products/.ingest.parquet.metadata", '{"timestamp": 9.0}'),
    "an upstream product rewritten in place": _edit("products/ingest.parquet", "other"),
    "a product deleted": lambda f: (f.root / "products/split.parquet").unlink(),
    "a resource file": _edit("schema/churn.yaml", "columns: {a: int}\n"),
    "a new settings file": _edit("env.local.yaml", "rows: 5\n"),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_any_change_it_rested_on_builds_again(folder: Folder, change: str) -> None:
    assert folder.remember()
    CHANGES[change](folder)
    assert noop.answer(["build"]) is None


def test_another_command_environment_or_folder_builds(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert folder.remember()
    assert noop.answer(["build", "--force"]) is None
    assert noop.answer(["build", "--env--rows", "5"]) is None
    monkeypatch.setenv("NBOPS_TRIGGER", "schedule")
    assert noop.answer(["build"]) is None
    monkeypatch.delenv("NBOPS_TRIGGER")
    assert noop.answer(["build"]) == (OUTPUT, MESSAGE)
    monkeypatch.setenv(noop.OFF_ENV, "off")
    assert noop.answer(["build"]) is None


def test_only_a_plain_build_in_its_project_folder_is_kept(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not folder.remember(argv=["build", "--force"])
    monkeypatch.chdir(folder.root / "nb")
    assert not folder.remember()
    assert not noop.state_path(folder.root).exists()


def test_a_file_changed_after_the_build_started_keeps_nothing(folder: Folder) -> None:
    assert folder.remember()
    # Ploomber may have read the notebook before this edit: the answer is not vouched for.
    (folder.root / "nb/split.ipynb").write_text('{"cells": ["edited during the build"]}')
    assert not folder.remember(started_at=time.time() - 0.5)
    assert not noop.state_path(folder.root).exists(), "the older answer is dropped too"
    assert noop.answer(["build"]) is None


def test_a_damaged_state_file_builds(folder: Folder) -> None:
    assert folder.remember()
    noop.state_path(folder.root).write_text('{"key": ')
    assert noop.answer(["build"]) is None


@pytest.mark.parametrize(
    ("spec", "stable"),
    [
        ("params: {rows: '{{rows}}', at: '{{here}}/x', who: '{{user}}'}", True),
        ("params: {home: '{{env.HOME}}', cwd: '{{ cwd }}'}", True),
        ("params: {root: '{{root}}'}", False),
        ("params: {at: '{{now}}'}", False),
        ("params: {previous: '{{env.OLDPWD}}'}", False),
        ("params: {branch: '{{git}}'}", False),
        ("params: {commit: '{{git_hash}}'}", False),
        ("params: {v: '{{version}}'}", False),
        ("params: {x: '{{undeclared}}'}", False),
    ],
)
def test_placeholders_that_change_by_themselves_keep_nothing(spec: str, stable: bool) -> None:
    assert noop.stable_placeholders([spec], ["rows: 1\nnow_ish: 2\n"]) is stable


def test_a_users_own_now_key_is_theirs() -> None:
    assert noop.stable_placeholders(["x: '{{now}}'"], ["now: 2024-01-01\n"])


ANSWER = """
import sys
sys.argv = ["/venv/bin/ploomber", *sys.argv[1:]]
from nbops.build import startup
startup.start()
print("loaded the pipeline")
"""


def test_the_start_up_hook_answers_before_ploomber_is_imported(folder: Folder) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop(noop.OFF_ENV, None)
    keep = (
        "import sys, time; from nbops.build import noop; "
        f"ok = noop.remember({str(folder.root)!r}, hashed={folder.hashed!r}, "
        f"stated={folder.stated!r}, output={OUTPUT!r}, message={MESSAGE!r}, "
        "started_at=time.time(), argv=['build']); sys.exit(0 if ok else 3)"
    )
    kept = subprocess.run([sys.executable, "-c", keep], cwd=folder.root, env=env, timeout=60)
    assert kept.returncode == 0

    def build(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", ANSWER, *args],
            cwd=folder.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    answered = build("build")
    assert (answered.returncode, answered.stdout, answered.stderr) == (0, OUTPUT, MESSAGE)
    assert build("build", "--force").stdout == "loaded the pipeline\n"
    (folder.root / "env.yaml").write_text("rows: 200\n")
    assert build("build").stdout == "loaded the pipeline\n"


# -- which pipelines are kept: a real rendered DAG ------------------------------------

NOTEBOOK = """# %% tags=["parameters"]
upstream = {upstream}
product = None
rows = 1

# %%
print(rows)
"""


def _dag(root: Path, spec: str) -> object:
    from ploomber.spec import DAGSpec

    os.chdir(root)  # Ploomber finds env.yaml from the working folder

    (root / "nb").mkdir(exist_ok=True)
    (root / "nb/ingest.py").write_text(NOTEBOOK.format(upstream="None"))
    (root / "nb/split.py").write_text(NOTEBOOK.format(upstream="['ingest']"))
    (root / "schema.yaml").write_text("a: 1\n")
    (root / "env.yaml").write_text("rows: 3\n")
    (root / "pipeline.yaml").write_text(spec)
    dag = DAGSpec(str(root / "pipeline.yaml")).to_dag()
    dag.render()
    return dag


SPEC = """
on_finish: nbops.build.hooks.build_finished
tasks:
  - source: nb/ingest.py
    product: {{nb: out/ingest.ipynb, data: out/ingest.csv}}
    params: {{rows: '{{{{rows}}}}'{extra}}}
    on_finish: nbops.build.hooks.task_finished
  - source: nb/split.py
    product: out/split.ipynb
    params:
      resources_: {{schema: schema.yaml}}
"""


def test_a_notebook_pipeline_rests_on_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dag = _dag(tmp_path, SPEC.format(extra=""))
    inputs = hooks._no_op_inputs(dag, tmp_path)
    assert inputs is not None
    hashed, stated = inputs
    out = tmp_path.resolve() / "out"
    assert set(stated) == {
        str(out / "ingest.ipynb"),
        str(out / "ingest.csv"),
        str(out / "split.ipynb"),
    }
    assert str(out / ".ingest.csv.metadata") in hashed
    assert str(out / ".split.ipynb.metadata") in hashed
    assert str(tmp_path.resolve() / "nb/split.py") in hashed
    assert str(tmp_path.resolve() / "schema.yaml") in hashed


def users_hook() -> None:
    """A hook of the user's: it runs on every build, so none may be skipped."""


@pytest.mark.parametrize(
    "spec",
    [
        SPEC.format(extra=", at: '{{now}}'"),
        SPEC.format(extra="").replace(
            "nbops.build.hooks.build_finished", "tests.build.test_noop.users_hook"
        ),
        SPEC.format(extra="") + "    on_render: tests.build.test_noop.users_hook\n",
    ],
    ids=["now-placeholder", "users-dag-hook", "users-task-hook"],
)
def test_a_pipeline_resting_on_more_than_files_is_not_kept(
    tmp_path: Path, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert hooks._no_op_inputs(_dag(tmp_path, spec), tmp_path) is None
