"""Where the project is: the nearest folder, upwards, that holds ``pipeline.yaml``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["project_root"]


def project_root(start: Path | None = None) -> Path:
    """The project folder above ``start`` (default: the working directory), or ``start``."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / "pipeline.yaml").is_file()), here)
