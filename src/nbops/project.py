"""Where the project is: the nearest folder, upwards, that holds ``pipeline.yaml``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["in_folder", "project_root"]


def project_root(start: Path | None = None) -> Path:
    """The project folder above ``start`` (default: the working directory), or ``start``."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / "pipeline.yaml").is_file()), here)


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory (``contextlib.chdir`` from
    Python 3.11): Ploomber resolves env.yaml from the working directory."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
