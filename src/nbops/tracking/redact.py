"""Keep secrets out of run records: parameters whose names look secret are redacted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_text"]

REDACTED = "***REDACTED***"

# Name parts that mark a secret: `db_password`, `apiKey`, `AWS_SECRET_ACCESS_KEY`,
# `github-token`, `credentials`. Whole parts only, so `monkey` or `keyboard` are kept.
_SECRET_PARTS = {
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "apikey",
    "credential",
    "credentials",
    "auth",
}
_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def is_secret_name(name: str) -> bool:
    """True if ``name`` (a parameter or key name) looks like it holds a secret."""
    parts = {p.lower() for p in _SPLIT.split(str(name)) if p}
    return bool(parts & _SECRET_PARTS)


def redact(value: Any, *, name: str = "") -> Any:
    """Return ``value`` with every entry under a secret-looking name replaced, recursively."""
    if name and is_secret_name(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, name=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def redact_text(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of each secret value in ``text``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def secret_values(value: Any, *, name: str = "") -> list[str]:
    """The values that :func:`redact` would hide, as strings (to scrub them from reports)."""
    if name and is_secret_name(name) and value not in (None, ""):
        if isinstance(value, Mapping | list | tuple):
            return [str(v) for v in (value.values() if isinstance(value, Mapping) else value)]
        return [str(value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secret_values(v, name=str(k))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in secret_values(v)]
    return []
