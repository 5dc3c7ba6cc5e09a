"""Writing files that other steps read back, so that no crash leaves half a file.

:func:`atomic_write` writes a temporary file in the same folder, flushes it to disk and
renames it over the target: a reader sees the old file or the new one, never a mix.
:class:`StateFile` adds what a JSON state file under ``.nbops/`` needs: a lock for
read-modify-write across processes (two builds of one project at once), and a reader
that reports a corrupt file once, moves it aside and goes on with it as empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["StateFile", "atomic_write", "file_lock"]


def atomic_write(
    path: str | Path, data: str | bytes, *, encoding: str = "utf-8", mode: int | None = None
) -> Path:
    """Replace ``path`` with ``data`` in one step (temp file + fsync + ``os.replace``).

    ``mode``: the file's permissions (default: the replaced file's, else 0o644); e.g.
    0o600 for a file holding secrets, readable by nobody else from its first byte.

    Example:
        >>> atomic_write(tmp / "state.json", '{"a": 1}')  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode(encoding) if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.chmod(tmp, mode)  # before any byte is written (mkstemp made it 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is None:
            with contextlib.suppress(OSError):  # keep the target's mode when replacing it
                os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path + ".lock"`` (processes on this machine)."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StateFile:
    """A JSON object kept in one file, read tolerantly and written atomically.

    Args:
        path: the file.
        consequence: what a user loses while the file is unreadable (for the warning).
    """

    def __init__(self, path: str | Path, *, consequence: str = "") -> None:
        self.path = Path(path)
        self.consequence = consequence
        self._held = False

    def read(self, *, warn: bool = True) -> dict[str, Any]:
        """The file's object; ``{}`` if it is missing, or (reported) corrupt. Under
        :meth:`locked`, a corrupt file is also moved aside to ``*.corrupt``."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            return self._corrupt(f"cannot be read ({exc})", warn=warn)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._corrupt(f"is not valid JSON ({exc})", warn=warn)
        if not isinstance(data, dict):
            return self._corrupt(f"holds a {type(data).__name__}, not an object", warn=warn)
        return data

    def write(self, data: dict[str, Any]) -> None:
        atomic_write(self.path, json.dumps(data, indent=2, default=str) + "\n")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's lock: read, change and write inside it."""
        with file_lock(self.path):
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def _corrupt(self, problem: str, *, warn: bool) -> dict[str, Any]:
        aside = self.path.with_name(self.path.name + ".corrupt")
        moved = False
        if self._held:  # only the lock holder may move it: nobody is rewriting it now
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
                moved = True
        if warn or moved:
            lost = f" Until it is rewritten, {self.consequence}." if self.consequence else ""
            where = (
                f"It was moved to {aside} (inspect or delete it) and is treated as empty."
                if moved
                else "It is treated as empty; delete it or fix it by hand."
            )
            print(f"nbops: WARNING: {self.path} {problem}. {where}{lost}", file=sys.stderr)
        return {}
