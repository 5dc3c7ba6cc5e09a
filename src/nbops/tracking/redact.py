"""Keep secrets out of run records and printed output.

Three tools, used wherever a build is recorded or a URL is shown:

- by name: :func:`redact` hides every value under a secret-looking name
  (``db_password``, ``smtpPw``, ``GITHUB_PAT``, ``credentials``...);
- by value: :func:`scrub` replaces known secret values anywhere in a text (the values
  :func:`secret_values` collected from env.yaml, ``--env--`` overrides and parameters),
  strips credentials from URLs (``postgresql://u:pw@h`` → ``postgresql://u:***REDACTED***@h``)
  and hides ``name: value`` assignments whose name looks secret (a diff, a config file);
- the command line: :func:`redact_command` hides secret ``--env--*`` overrides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "REDACTED",
    "display_url",
    "is_secret_name",
    "redact",
    "redact_assignments",
    "redact_command",
    "redact_text",
    "scrub",
    "secret_values",
    "strip_url_credentials",
]

REDACTED = "***REDACTED***"

# Names are split into lower-case parts at separators and case changes ("DBPassword" →
# db, password; "AWS_SECRET_ACCESS_KEY" → aws, secret, access, key); plurals count.
# Some parts mark a secret anywhere; short or ambiguous ones ("pass", "pw", "pat",
# "token", "cookie", "session") only as the last part, so "pass_rate", "max_token_length"
# and "session_count" stay visible; a bare "key" only after a word that makes it one
# (api_key yes, sort_key / primary_key no). Whole parts only: "passes", "compass",
# "tokenizer", "author" are not secrets.
_ANYWHERE = {
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "apikey",
    "jwt",
    "privatekey",
}
_LAST = {"token", "pwd", "pw", "pass", "pat", "auth", "cookie", "session", "sessionid", "sid"}
# A run-together last part ending like this is a secret too ("dbpassword", "accesstoken").
_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credentials")
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
    "session",
    "cookie",
}
_PLURALS = {"password", "passwd", "secret", "credential", "apikey", "token", "cookie", "key"}
_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _parts(name: str) -> list[str]:
    parts = [p.lower() for p in _SPLIT.split(str(name)) if p]
    return [p[:-1] if p.endswith("s") and p[:-1] in _PLURALS else p for p in parts]


def is_secret_name(name: str) -> bool:
    """True if ``name`` (a parameter or key name) looks like it holds a secret.

    Example:
        >>> [is_secret_name(n) for n in ("db_pass", "GITHUB_PAT", "sort_key", "tokenizer")]
        [True, True, False, False]
    """
    parts = _parts(name)
    if not parts:
        return False
    last = parts[-1]
    if set(parts) & _ANYWHERE or last in _LAST or last.endswith(_SUFFIXES):
        return True
    if last == "key":
        return len(parts) == 1 or parts[-2] in _KEY_PREFIXES
    if last == "id":
        return len(parts) >= 2 and parts[-2] == "session"
    return any(p in {"auth", "authorization"} for p in parts) and last in {"header", "headers"}


def redact(value: Any, *, name: str = "") -> Any:
    """Return ``value`` with every entry under a secret-looking name replaced, recursively."""
    if name and is_secret_name(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, name=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return strip_url_credentials(value)
    return value


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in ``text``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


# scheme://user:password@host and scheme://long-token@host. The password runs to the
# last "@" of the URL (passwords are not always percent-encoded): hiding too much is
# the safe side.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_MAX_SCHEME = 32
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USERINFO = re.compile(
    r"^(?P<scheme>[^:]+://)(?:(?P<user>[^:/@?#]*):(?P<password>.*)|(?P<token>[^:/@?#]{20,}))@(?P<rest>[^@]*)$"
)
_QUERY = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#?]+)=(?P<value>[^&;#]*)")


def _clean_url(match: re.Match[str]) -> str:
    url = match.group(0)
    parts = _USERINFO.match(url)
    if parts and (parts.group("password") or parts.group("token")):
        user = f"{parts.group('user')}:" if parts.group("token") is None else ""
        url = f"{parts.group('scheme')}{user}{REDACTED}@{parts.group('rest')}"
    return _QUERY.sub(
        lambda q: (
            f"{q.group('sep')}{q.group('name')}={REDACTED}"
            if q.group("value") and is_secret_name(q.group("name"))
            else q.group(0)
        ),
        url,
    )


def strip_url_credentials(text: str) -> str:
    """``text`` with the password (or token) of every URL in it, and secret-named query
    parameters, replaced by ``***REDACTED***``.

    Example:
        >>> strip_url_credentials("postgresql://ada:hunter2@db:5432/log")
        'postgresql://ada:***REDACTED***@db:5432/log'
    """
    if "://" not in text:
        return text
    # Only around each "://": a regex scan of a whole report (megabytes of base64
    # images) from every position would take seconds.
    out, done, at = [], 0, text.find("://")
    while at != -1:
        begin = at
        while begin > max(done, at - _MAX_SCHEME) and text[begin - 1] in _SCHEME_CHARS:
            begin -= 1
        while begin < at and not text[begin].isalpha():
            begin += 1
        match = _URL.match(text, begin)
        if match is None or match.start() < done:
            at = text.find("://", at + 3)
            continue
        out += [text[done : match.start()], _clean_url(match)]
        done = match.end()
        at = text.find("://", done)
    return "".join(out) + text[done:] if out else text


def display_url(url: str) -> str:
    """A URL fit to print or record: the same as :func:`strip_url_credentials`."""
    return strip_url_credentials(str(url))


#: What to do with a file a command was given as a URL.
COPY_HERE = "copy the file here first (aws s3 cp, gsutil cp, curl -o, ...) and give its path"


def refuse_url(
    path: str | Path | None,
    *,
    name: str,
    command: str,
    error: type[Exception],
    fix: str = COPY_HERE,
) -> None:
    """Raise ``error`` when ``path``, a file ``command`` works on, is a URL, shown without
    its password. Made absolute, ``s3://user:key@bucket/x.csv`` would become a folder
    named ``s3:``, and the key would reach messages, parameters and reports with the
    ``://`` that marks it as a URL for redaction gone."""
    if path is not None and "://" in str(path):
        raise error(
            f"The {name} {display_url(str(path))} is a URL, and {command} works on files "
            f"on this machine: {fix}."
        )


# name: value / name = value / "name": "value" on one line, as in YAML, Python, JSON,
# .env files and a git diff of any of them. An unquoted value runs to the end of the
# line (YAML allows spaces and ";" in it), stopping at a comment, "," "}" or "]".
_ASSIGNMENT = re.compile(
    r"""(?P<head>(?P<q>["']?)(?P<name>[A-Za-z_][\w.\-]*)(?P=q)\s*(?::|=)[ \t]*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,#}\]]+(?:[ \t]+[^\s,#}\]]+)*)"""
)
_NOT_A_SECRET = {"none", "null", "~", "true", "false", "''", '""', "|", ">"}


def _assignment(match: re.Match[str]) -> str:
    value = match.group("value")
    bare = value.strip("\"'")
    if (
        not is_secret_name(match.group("name"))
        or value.lower() in _NOT_A_SECRET
        or not bare
        or bare.startswith(("{{", "${", "$(", REDACTED))
    ):
        return match.group(0)
    quote = value[0] if value[0] in "\"'" and value[-1] == value[0] and len(value) > 1 else ""
    return f"{match.group('head')}{quote}{REDACTED}{quote}"


def redact_assignments(text: str) -> str:
    """Hide the value of every ``name: value`` / ``name = value`` whose name looks secret."""
    return _ASSIGNMENT.sub(_assignment, text)


def scrub(text: str, secrets: Iterable[str] = (), *, assignments: bool = False) -> str:
    """Everything a recorded or printed text must lose: known secret values, URL
    credentials and (with ``assignments``, for diffs and config files) secret-named
    assignments."""
    text = strip_url_credentials(redact_text(text, secrets))
    return redact_assignments(text) if assignments else text


def redact_command(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret-looking option hidden (``--env--db--password
    X``, ``--env--db--password=X``, ``--token X``) and credentials stripped from URLs."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("--"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            key = name[len("env--") :] if name.startswith("env--") else name
            if is_secret_name(key):
                if eq:
                    out.append(f"--{name}={REDACTED}" if value else arg)
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(strip_url_credentials(arg))
    return out


def secret_values(value: Any, *, name: str = "") -> list[str]:
    """The values that :func:`redact` would hide, as strings (to scrub them from reports)."""
    if name and is_secret_name(name) and value not in (None, ""):
        return _leaves(value)
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secret_values(v, name=str(k))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in secret_values(v)]
    if isinstance(value, str) and "://" in value:
        # A password inside a URL under any name: scrub it wherever the URL's parts end up.
        return [
            p.group("password") or p.group("token")
            for m in _URL.finditer(value)
            if (p := _USERINFO.match(m.group(0))) and (p.group("password") or p.group("token"))
        ]
    return []


def _leaves(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _leaves(v)]
    return [] if value in (None, "") else [str(value)]
