"""Keep secrets out of run records: parameters whose names look secret are redacted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_text"]

REDACTED = "***REDACTED***"

# Names are split into lower-case parts at separators and case changes ("DBPassword" →
# db, password; "AWS_SECRET_ACCESS_KEY" → aws, secret, access, key); plurals count.
# Some parts mark a secret anywhere; "token", "key", "pwd" only as the last part, and a
# bare "key" only after a word that makes it one (api_key yes, sort_key / primary_key no).
_ANYWHERE = {"password", "passwd", "passphrase", "secret", "credential", "credentials", "apikey"}
_LAST = {"token", "pwd", "auth"}
_KEY_PREFIXES = {
    "api",
    "access",
    "private",
    "secret",
    "signing",
    "encryption",
    "client",
    "master",
    "license",
    "auth",
    "ssh",
}
_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _parts(name: str) -> list[str]:
    parts = [p.lower() for p in _SPLIT.split(str(name)) if p]
    return [
        p[:-1] if p.endswith("s") and p[:-1] in _ANYWHERE | _LAST | {"key"} else p for p in parts
    ]


def is_secret_name(name: str) -> bool:
    """True if ``name`` (a parameter or key name) looks like it holds a secret.

    Example:
        >>> [is_secret_name(n) for n in ("db_password", "apiKey", "sort_key", "tokenizer")]
        [True, True, False, False]
    """
    parts = _parts(name)
    if not parts:
        return False
    if set(parts) & _ANYWHERE or parts[-1] in _LAST:
        return True
    if parts[-1] == "key":
        return len(parts) == 1 or parts[-2] in _KEY_PREFIXES
    return "auth" in parts and parts[-1] in {"header", "headers"}


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
        return _leaves(value)
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secret_values(v, name=str(k))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in secret_values(v)]
    return []


def _leaves(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _leaves(v)]
    return [] if value in (None, "") else [str(value)]
