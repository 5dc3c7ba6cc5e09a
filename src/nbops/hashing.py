"""Content hashes, written the same way everywhere: ``sha256:<hex>``. Standard library only."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["bytes_sha256", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def bytes_sha256(data: bytes) -> str:
    """``sha256:<hex>`` of bytes already in memory (the same as :func:`file_sha256` of a
    file holding them)."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
