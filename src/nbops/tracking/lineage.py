"""Where a build came from: git state, file hashes, Python and package versions."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from nbops.hashing import file_sha256

__all__ = ["freeze", "git_state", "python_info", "source_hashes"]

_MAX_DIFF_BYTES = 2_000_000


def source_hashes(root: Path, files: list[Path]) -> dict[str, str]:
    """``{relative path: sha256}`` for the files that define the pipeline."""
    out = {}
    for path in sorted(set(files)):
        if path.is_file():
            out[
                str(
                    path.resolve().relative_to(root.resolve())
                    if path.resolve().is_relative_to(root.resolve())
                    else path
                )
            ] = file_sha256(path)
    return out


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag and (when dirty) the diff against HEAD plus untracked files.

    Outside a git repository: ``{"commit": None, ...}``; a build is still recorded.
    """
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None, "diff": None, "untracked": []}
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    # -z: NUL-separated, paths never quoted; paths are relative to the repository root,
    # so strip the project's own prefix when it lives in a subfolder.
    prefix = (_git(root, "rev-parse", "--show-prefix") or "").strip()
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".") or ""
    entries = _porcelain_entries(status)
    # Ploomber's own metadata and outputs never count as changes to the code.
    changed = [
        (code, path)
        for code, path in entries
        if not _ignored(path[len(prefix) :] if path.startswith(prefix) else path)
    ]
    untracked = [path for code, path in changed if code == "??"]
    diff = None
    if changed:
        diff = (_git(root, "diff", "HEAD", "--", ".") or "")[:_MAX_DIFF_BYTES]
    return {
        "commit": commit.strip(),
        "branch": branch,
        "dirty": bool(changed),
        "diff": diff,
        "untracked": untracked,
    }


def _porcelain_entries(status: str) -> list[tuple[str, str]]:
    entries, fields = [], status.split("\0")
    i = 0
    while i < len(fields):
        field = fields[i]
        i += 1
        if len(field) < 4:
            continue
        code, path = field[:2], field[3:]
        if code[0] in "RC":  # a rename or copy is followed by its source path
            i += 1
        entries.append((code, path))
    return entries


def _ignored(path: str) -> bool:
    return path.startswith(("products/", ".nbops/")) or path.endswith(".metadata")


def python_info() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def freeze() -> list[str]:
    """Every installed distribution as ``name==version``, sorted (like ``pip freeze``, faster)."""
    seen = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return sorted(seen.values(), key=str.lower)
