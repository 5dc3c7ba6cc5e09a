"""A build with nothing to do, answered without loading the pipeline again.

A ``ploomber build`` that finds every task up to date still costs Python's start,
``import ploomber`` and the DAG's render (parsing every notebook for its parameters and
upstream, reading every product's metadata): about 1.5 s to say "nothing to do". When a
build concludes that, the build hooks keep what the answer rested on
(:func:`remember`, in ``.nbops/noop.json``, written atomically); the next ``ploomber
build`` in that folder checks it at interpreter start-up (:func:`answer`, called by the
environment's start-up hook, :mod:`nbops.build.startup`) and, when nothing it rested on
changed, prints the same answer and exits before importing Ploomber. Anything changed,
missing, unreadable or not vouched for, and the build runs as usual: Ploomber decides,
and a new "nothing to do" is kept again. It never skips a build that should run, because
everything Ploomber's status reads is in the key:

- the command line (``ploomber build`` and nothing else), the working folder, the
  Python executable, the installed packages (site-packages' modification time: any
  install or upgrade changes it) and the whole environment but for shell bookkeeping
  (``{{env.X}}`` and ``{{user}}`` placeholders, ``NBOPS_*``, ``PLOOMBER_*``);
- the project folder's spec and settings files (``*.yaml``, ``*.yml``, ``setup.cfg``,
  ``pyproject.toml``; which ones exist, and their content hashes);
- every task's source file and every file of its ``resources_``: content hashes;
- every product: whether it exists, its size and modification time; its metadata
  (``.NAME.metadata``: the source code, parameters and timestamp Ploomber compares
  with upstream's): content hash.

Only pipelines whose status rests on nothing else are kept: every task a notebook or a
script with local file products, no hook but nbops' own, and no placeholder whose value
changes by itself (``{{now}}``, ``{{git}}``, ``{{git_hash}}``, ``{{version}}``,
``{{root}}``). A file modified after the build that concluded started (it may have
changed after Ploomber read it) keeps nothing. ``NBOPS_NOOP_CACHE=off`` turns the
shortcut off.

Standard library only (and nbops.hashing, which is too): it runs in the start-up hook,
before anything is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbops.hashing import file_sha256

__all__ = ["FORMAT", "OFF_ENV", "STATE", "answer", "forget", "remember", "state_path"]

#: The state file, in the project's ``.nbops`` folder.
STATE = "noop.json"
#: Bumped whenever the key changes shape (an older start-up hook then answers nothing).
FORMAT = 1
OFF_ENV = "NBOPS_NOOP_CACHE"
#: The only command line answered (as ``sys.argv[1:]`` of the ``ploomber`` program).
COMMAND = ["build"]
#: Environment variables a shell changes between commands; nothing in a build reads them.
_VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})
#: Placeholders Ploomber fills with values that change by themselves ({{root}}: the
#: nearest setup.py above, a folder the key does not look at).
_UNSTABLE = frozenset({"now", "git", "git_hash", "version", "root"})
#: Placeholders whose value the key covers (the working folder, the environment).
_STABLE = frozenset({"here", "cwd", "user", "env"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)")
_ENV_PLACEHOLDER = re.compile(r"\{\{\s*env\.(\w+)")
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:", re.MULTILINE)


#: The key as it was when this process started (set by :func:`answer`): what the build
#: ran with, whatever it changed in its own environment since.
_started: dict[str, Any] | None = None


def state_path(root: str | Path) -> Path:
    return Path(root) / ".nbops" / STATE


def _off() -> bool:
    return os.environ.get(OFF_ENV, "").strip().lower() in {"off", "0", "false", "no"}


def _key(argv: list[str], cwd: str) -> dict[str, Any]:
    environ = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE)
    packages = sysconfig.get_paths()["purelib"]
    try:
        installed = os.stat(packages).st_mtime_ns
    except OSError:
        installed = None
    return {
        "format": FORMAT,
        "argv": list(argv),
        "cwd": cwd,
        "executable": sys.executable,
        "packages": [packages, installed],
        "environ": hashlib.sha256(json.dumps(environ).encode()).hexdigest(),
    }


def _sha256(path: str) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _settings_files(root: str) -> list[str]:
    """The project folder's spec and settings files, whichever exist."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    wanted = {"setup.cfg", "pyproject.toml"}
    return sorted(
        os.path.join(root, n) for n in names if n.endswith((".yaml", ".yml")) or n in wanted
    )


def stable_placeholders(texts: Iterable[str], env_texts: Iterable[str]) -> bool:
    """Whether every ``{{placeholder}}`` in ``texts`` has a value the key covers: an
    env file's own top-level key, or one of Ploomber's that does not change by itself."""
    own = {key for text in env_texts for key in _TOP_KEY.findall(text)}
    for text in texts:
        if any(name in _VOLATILE for name in _ENV_PLACEHOLDER.findall(text)):
            return False  # left out of the key
        for name in _PLACEHOLDER.findall(text):
            if name in own:
                continue
            if name in _UNSTABLE or name not in _STABLE:
                return False
    return True


def remember(
    root: str | Path,
    *,
    hashed: Iterable[str],
    stated: Iterable[str],
    output: str,
    message: str,
    started_at: float,
    argv: list[str] | None = None,
) -> bool:
    """Keep what a build that had nothing to do rested on: ``hashed`` files (sources,
    resources, product metadata) by content, ``stated`` files (products) by size and
    modification time, with the project folder's settings files, the command line and
    the environment. ``output`` and ``message`` are what the build printed (stdout,
    stderr). Nothing is kept (and an older state is removed) when a file changed after
    ``started_at``: Ploomber may have read it before. True if kept."""
    root = str(Path(root).resolve())
    argv = list(sys.argv[1:] if argv is None else argv)
    path = state_path(root)
    if _off() or argv != COMMAND or os.path.realpath(os.getcwd()) != root:
        forget(root)
        return False
    settings = _settings_files(root)
    hashes = {p: _sha256(p) for p in dict.fromkeys([*settings, *hashed])}
    stats = {p: _stat(p) for p in dict.fromkeys(stated)}
    # A margin for the start time's resolution (clock ticks); a file modified around the
    # build's start keeps nothing, and the next build keeps it.
    since = int((started_at - 1.0) * 1e9)
    for p in [*hashes, *stats]:
        st = _stat(p)
        if st is not None and st[1] >= since:
            forget(root)
            return False
    key = _started if _started is not None and _started["cwd"] == root else _key(argv, root)
    state = {
        "key": key,
        "settings": settings,
        "hashed": hashes,
        "stated": stats,
        "output": output,
        "message": message,
    }
    from nbops.state import atomic_write

    atomic_write(path, json.dumps(state, indent=1) + "\n")
    return True


def forget(root: str | Path) -> None:
    """Drop the kept answer (a build that ran something, or one not answerable)."""
    with contextlib.suppress(OSError):
        state_path(root).unlink()


def answer(argv: list[str] | None = None, cwd: str | None = None) -> tuple[str, str] | None:
    """The kept ``(stdout, stderr)`` of a build with nothing to do, if this ``ploomber
    build`` would conclude the same (nothing it rested on changed); else None."""
    if _off():
        return None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv != COMMAND:
        return None
    global _started
    try:
        cwd = os.path.realpath(os.getcwd() if cwd is None else cwd)
        _started = key = _key(argv, cwd)
        state = json.loads(state_path(cwd).read_text(encoding="utf-8"))
        if state.get("key") != key:
            return None
        if state.get("settings") != _settings_files(cwd):
            return None
        for p, digest in state["hashed"].items():
            if _sha256(p) != digest:
                return None
        for p, st in state["stated"].items():
            if _stat(p) != st:
                return None
        return str(state["output"]), str(state["message"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def answer_and_exit() -> None:
    """In a ``ploomber build`` process: print the kept answer and end the process, when
    there is one (called at interpreter start-up; anything going wrong builds as usual)."""
    try:
        found = answer()
    except Exception:
        return
    if found is None:
        return
    out, err = found
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()
    sys.stderr.flush()
    # Interpreter start-up is not over (site is importing .pth files): an exception
    # would not end it cleanly, and there is nothing to clean up yet.
    os._exit(0)
