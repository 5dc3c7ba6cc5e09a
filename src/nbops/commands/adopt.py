"""``nbops adopt``: wire nbops into an existing Ploomber project, in place.

The change is one DAG-level hook in the pipeline spec, added as text so the file's
comments, order and layout stay as they were::

    on_render: nbops.build.hooks.build_rendered

When Ploomber renders the pipeline, that hook composes nbops' capture with every task's
own hooks and the DAG's (see :mod:`nbops.build.hooks`): the user's hooks keep
running, their executor (serial or parallel) stays, and their code, notebooks and
product layout are not touched. A DAG-level ``on_render`` of the user's own is kept
and called first (``then:``). Adopting twice changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nbops.errors import ConfigError
from nbops.state import atomic_write

__all__ = ["HOOK", "AdoptResult", "adopt_project", "find_spec"]

#: The DAG-level hook that wires capture into an adopted pipeline.
HOOK = "nbops.build.hooks.build_rendered"
#: Hand-wired capture, as in nbops' own reference pipeline (``nbops init``).
_TASK_HOOK = "nbops.build.hooks.task_finished"

_BLOCK = """\
# nbops (added by `nbops adopt`): every build is recorded (MLflow; in .nbops/ unless
# MLFLOW_TRACKING_URI is set), your own hooks still run. Delete to stop recording.
"""


@dataclass
class AdoptResult:
    """What ``adopt_project`` did: the spec it read and each change, in words."""

    spec: Path
    changes: list[str] = field(default_factory=list)


def find_spec(folder: Path, entry_point: str | None = None) -> Path:
    """The Ploomber spec of the project in ``folder`` (as ``ploomber build`` finds it)."""
    if entry_point:
        spec = folder / entry_point
        if not spec.is_file():
            raise ConfigError(
                f"{spec} does not exist. Give --entry-point as the path of the pipeline "
                "spec, relative to the project folder (e.g. pipeline.yaml)."
            )
        return spec
    candidates = [folder / "pipeline.yaml", *sorted(folder.glob("src/*/pipeline.yaml"))]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise ConfigError(
            f"No Ploomber pipeline in {folder}: nbops adopt looks for pipeline.yaml there "
            "(or src/*/pipeline.yaml). Run it in the folder of an existing Ploomber project, "
            "pass --entry-point FILE for a spec with another name, or start a new project "
            "with `nbops init DIRECTORY`."
        )
    return found[0]


def adopt_project(folder: str | Path = ".", *, entry_point: str | None = None) -> AdoptResult:
    """Add nbops' capture to the Ploomber project in ``folder``; return what changed."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: give the folder of a Ploomber project.")
    spec = find_spec(folder, entry_point)
    result = AdoptResult(spec=spec)
    text = spec.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{spec} is not valid YAML ({str(exc).splitlines()[0]}); fix it so "
            "`ploomber build` can read it, then run nbops adopt again."
        ) from exc
    if not isinstance(data, (dict, list)) or (isinstance(data, dict) and not _has_tasks(data)):
        raise ConfigError(
            f"{spec} is not a Ploomber pipeline spec: it needs a `tasks:` list (or "
            "`meta: import_tasks_from:`). See `ploomber scaffold --help` for the format."
        )
    if _wired(data):
        result.changes.append(f"{_rel(spec, folder)}: already wired to nbops; nothing changed.")
    else:
        new_text, what = _add_hook(text, data, spec)
        atomic_write(spec, new_text)  # the user's spec: never left half-written
        result.changes.append(f"{_rel(spec, folder)}: {what}")
    ignore = _ignore_store(folder)
    if ignore:
        result.changes.append(ignore)
    return result


def _has_tasks(data: dict[str, Any]) -> bool:
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return "tasks" in data or bool(meta.get("import_tasks_from"))


def _wired(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    hook = data.get("on_render")
    if hook == HOOK or (isinstance(hook, dict) and hook.get("dotted_path") == HOOK):
        return True
    tasks = data.get("tasks") or []
    return any(isinstance(t, dict) and t.get("on_finish") == _TASK_HOOK for t in tasks)


def _add_hook(text: str, data: Any, spec: Path) -> tuple[str, str]:
    """The spec's text with the hook added; only new lines, everything else as it was."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    expected: Any
    if isinstance(data, list):
        # A spec that is only a task list: name it `tasks:` (a list may sit at the key's
        # own indentation), with the hook above.
        at = _before_comments(lines, _first_top_level(lines, r"- |-$"))
        new = [*lines[:at], _BLOCK, f"on_render: {HOOK}\n", "tasks:\n", *lines[at:]]
        expected = {"on_render": HOOK, "tasks": data}
        what = f"added `on_render: {HOOK}` (the task list is now under `tasks:`)"
    elif "on_render" in data:
        own = data["on_render"]
        if not isinstance(own, str):
            raise ConfigError(
                f"{spec} has a DAG-level on_render with arguments ({own!r}); nbops adopt "
                f"can keep only a plain dotted path. Set `on_render:` to {HOOK} with "
                f"`then: <your hook>` by hand, or make yours a plain dotted path first."
            )
        at = _first_top_level(lines, r"on_render\s*:")
        end = at + 1
        while (
            end < len(lines)
            and re.match(r"\s+\S", lines[end])
            and not lines[end].lstrip().startswith("#")
        ):
            end += 1  # a value continued on the next lines
        new = [
            *lines[:at],
            _BLOCK,
            "on_render:\n",
            f"  dotted_path: {HOOK}\n",
            f"  then: {own}  # yours, called first\n",
            *lines[end:],
        ]
        expected = {**data, "on_render": {"dotted_path": HOOK, "then": own}}
        what = f"`on_render` now runs {HOOK}, then yours ({own})"
    else:
        anchor = _first_top_level(lines, r"tasks\s*:")
        at = _before_comments(lines, anchor)
        new = [*lines[:at], _BLOCK, f"on_render: {HOOK}\n", "\n", *lines[at:]]
        expected = {**data, "on_render": HOOK}
        what = f"added `on_render: {HOOK}` (3 lines with a comment; nothing else changed)"
    result = "".join(new)
    if yaml.safe_load(result) != expected:  # a layout the line edit does not understand
        raise ConfigError(
            f"nbops adopt could not add its hook to {spec} without changing anything else. "
            f"Add this line at the top level of the file by hand: `on_render: {HOOK}`."
        )
    return result, what


def _first_top_level(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.match(pattern, line):
            return i
    return len(lines)


def _before_comments(lines: list[str], at: int) -> int:
    """Move an insertion point above the comment lines that introduce ``lines[at]``."""
    while at > 0 and lines[at - 1].startswith("#"):
        at -= 1
    return at


def _ignore_store(folder: Path) -> str | None:
    """Keep the local store out of git, so a build does not make the next one "dirty"."""
    gitignore = folder / ".gitignore"
    if not (folder / ".git").exists() and not gitignore.is_file():
        return None
    existing = gitignore.read_text() if gitignore.is_file() else ""
    if any(line.strip().rstrip("/") in {".nbops", "/.nbops"} for line in existing.splitlines()):
        return None
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    atomic_write(gitignore, f"{existing}{prefix}# nbops' local tracking store and spool\n.nbops/\n")
    return ".gitignore: added `.nbops/` (nbops' local tracking store)."


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
