"""`nbops adopt` on pipeline specs as users write them: the smallest change, comments
and order kept, idempotent, and a clear error where there is no pipeline. (The builds
of adopted projects are in tests/pipeline/test_adopt.py.)"""

from __future__ import annotations

import subprocess
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from nbops.cli import main
from nbops.commands.adopt import HOOK, adopt_project
from nbops.errors import ConfigError
from tests.conftest import BIN

SPEC = """\
# My pipeline: raw data to a model.
meta:
  extract_product: false

executor: parallel  # my choice

# the tasks, in order
tasks:
  - source: tasks.raw.get
    product: output/get.parquet  # the usual single-file product

  - source: notebooks/fit.py
    product: output/nb.html
    on_finish: hooks.notify
"""


def spec_in(tmp_path, text=SPEC, name="pipeline.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def added_lines(before: str, after: str) -> list[str]:
    """The lines of ``after`` that are not in ``before``, if ``before``'s lines are all
    still there in the same order (else fail)."""
    remaining = after.splitlines()
    added, i = [], 0
    for line in before.splitlines():
        while remaining[i] != line:
            added.append(remaining[i])
            i += 1
        i += 1
    return added + remaining[i:]


def test_adopt_adds_one_hook_and_keeps_every_line_comment_and_choice(tmp_path):
    spec = spec_in(tmp_path)
    result = adopt_project(tmp_path)
    after = spec.read_text()
    added = [line for line in added_lines(SPEC, after) if line.strip()]
    assert [line for line in added if not line.startswith("#")] == [f"on_render: {HOOK}"]
    assert len(added) <= 4  # the hook and its comment
    data = yaml.safe_load(after)
    assert data["executor"] == "parallel"
    assert data["tasks"][1]["on_finish"] == "hooks.notify"
    assert "pipeline.yaml: added" in result.changes[0]
    # The hook sits above the tasks' own comment, which still introduces the tasks.
    assert after.index(HOOK) < after.index("# the tasks, in order") < after.index("tasks:")


def test_a_disk_that_fails_while_adopting_leaves_the_spec_as_it_was(tmp_path, monkeypatch):
    """The user's pipeline.yaml is rewritten in one step: a write that fails half-way
    (the disk full) leaves it whole, not truncated."""
    import os

    spec = spec_in(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        adopt_project(tmp_path)

    assert spec.read_text() == textwrap.dedent(SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_adopt_twice_changes_nothing_and_says_so(tmp_path):
    spec = spec_in(tmp_path)
    adopt_project(tmp_path)
    once = spec.read_text()
    result = adopt_project(tmp_path)
    assert spec.read_text() == once
    assert result.changes == ["pipeline.yaml: already wired to nbops; nothing changed."]


def test_a_project_wired_by_hand_like_nbops_init_is_left_alone(tmp_path):
    text = "tasks:\n  - source: a.ipynb\n    product: a.html\n    on_finish: nbops.build.hooks.task_finished\n"
    spec = spec_in(tmp_path, text)
    adopt_project(tmp_path)
    assert spec.read_text() == text


def test_a_spec_that_is_only_a_task_list_gets_named_and_keeps_its_lines(tmp_path):
    text = "# my tasks\n- source: tasks.get\n  product: out.csv\n"
    spec = spec_in(tmp_path, text)
    adopt_project(tmp_path)
    data = yaml.safe_load(spec.read_text())
    assert data == {"on_render": HOOK, "tasks": [{"source": "tasks.get", "product": "out.csv"}]}
    assert added_lines(text, spec.read_text())  # nothing removed or reordered


def test_the_users_own_dag_on_render_is_kept_and_called_first(tmp_path):
    text = "on_render: hooks.check  # mine\n\ntasks:\n  - source: tasks.get\n    product: out.csv\n"
    spec = spec_in(tmp_path, text)
    result = adopt_project(tmp_path)
    data = yaml.safe_load(spec.read_text())
    assert data["on_render"] == {"dotted_path": HOOK, "then": "hooks.check"}
    assert "hooks.check" in result.changes[0]
    assert adopt_project(tmp_path).changes[0].endswith("nothing changed.")


def test_tasks_imported_from_another_spec_are_enough(tmp_path):
    text = "meta:\n  import_tasks_from: more.yaml\n"
    spec = spec_in(tmp_path, text)
    adopt_project(tmp_path)
    assert yaml.safe_load(spec.read_text())["on_render"] == HOOK


def test_the_local_store_is_kept_out_of_git(tmp_path):
    spec_in(tmp_path)
    (tmp_path / ".gitignore").write_text("products/")
    result = adopt_project(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == (
        "products/\n# nbops' local tracking store and spool\n.nbops/\n"
    )
    assert any(".gitignore" in change for change in result.changes)
    adopt_project(tmp_path)
    assert (tmp_path / ".gitignore").read_text().count(".nbops/") == 1


def test_another_spec_name_is_given_with_entry_point(tmp_path):
    spec = spec_in(tmp_path, name="pipeline.train.yaml")
    adopt_project(tmp_path, entry_point="pipeline.train.yaml")
    assert yaml.safe_load(spec.read_text())["on_render"] == HOOK


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "No Ploomber pipeline in"),
        ({"pipeline.yaml": "a: [1\n"}, "is not valid YAML"),
        ({"pipeline.yaml": "name: x\n"}, "is not a Ploomber pipeline spec"),
    ],
)
def test_a_folder_without_a_usable_spec_gets_one_paragraph(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        adopt_project(tmp_path)
    result = CliRunner().invoke(main, ["adopt", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_command_prints_what_it_changed(tmp_path):
    spec_in(tmp_path)
    first = subprocess.run(
        [str(BIN / "nbops"), "adopt", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert f"pipeline.yaml: added `on_render: {HOOK}`" in first.stdout
    second = CliRunner().invoke(main, ["adopt", str(tmp_path)])
    assert second.exit_code == 0
    assert "nothing changed" in second.output
    assert "Example:" in CliRunner().invoke(main, ["adopt", "--help"]).output
