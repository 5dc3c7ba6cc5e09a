"""Secrets stay out of run records: secret-looking names are redacted, their values scrubbed."""

from __future__ import annotations

import pytest

from nbops.tracking.redact import (
    REDACTED,
    display_url,
    is_secret_name,
    redact,
    redact_assignments,
    redact_command,
    redact_text,
    scrub,
    secret_values,
    strip_url_credentials,
)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("db_password", True),
        ("apiKey", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("github-token", True),
        ("credentials", True),
        ("auth_header", True),
        ("PASSWD", True),
        ("client.secret", True),
        ("monkey", False),
        ("keyboard", False),
        # Whole name parts only: a tokenizer setting is not a token.
        ("tokenizer", False),
        ("author", False),
        ("max_iter", False),
        # Ordinary ML parameters that merely contain "key" or "token" stay visible.
        ("sort_key", False),
        ("primary_key", False),
        ("key_column", False),
        ("max_token_length", False),
        ("api_key", True),
        ("private_key", True),
        ("key", True),
        ("rows", False),
        ("", False),
        # Short and suffix forms people use for secrets (issue 18.6).
        ("db_pass", True),
        ("smtp_pw", True),
        ("GITHUB_PAT", True),
        ("jwt", True),
        ("jwt_signing", True),
        ("cookie", True),
        ("session_cookie", True),
        ("session", True),
        ("session_id", True),
        ("sessionKey", True),
        ("dbPass", True),
        ("smtpPwd", True),
        ("dbpassword", True),
        ("accessToken", True),
        ("githubtoken", True),
        ("private-key", True),
        ("privateKey", True),
        ("x-api-key", True),
        ("apikey", True),
        ("credential", True),
        ("Authorization-Header", True),
        ("auth", True),
        ("client_secrets", True),
        # ... and the harmless names that merely look alike stay visible.
        ("passes", False),
        ("pass_rate", False),
        ("compass", False),
        ("bypass", False),
        ("n_sessions", False),
        ("session_count", False),
        ("pattern", False),
        ("cookie_name", False),
        ("tokenize", False),
        ("token_count", False),
        ("authority", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize("name", ["DBPassword", "passwords", "api_keys"])
def test_plural_and_acronym_secret_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


def test_redact_recurses_into_dicts_and_lists_and_keeps_the_rest() -> None:
    params = {
        "rows": 1500,
        "db_password": "hunter2hunter2",
        "model": {"name": "hgb", "max_iter": 30, "apiKey": "abcd1234"},
        "sources": [{"url": "s3://bucket/x.csv", "token": "tok-123456"}, "plain", 7],
        "author": "ada",
    }

    assert redact(params) == {
        "rows": 1500,
        "db_password": REDACTED,
        "model": {"name": "hgb", "max_iter": 30, "apiKey": REDACTED},
        "sources": [{"url": "s3://bucket/x.csv", "token": REDACTED}, "plain", 7],
        "author": "ada",
    }


def test_redact_hides_a_whole_value_under_a_secret_name() -> None:
    assert redact({"credentials": {"user": "ada", "pass": "pw"}, "api_key": ["k1", "k2"]}) == {
        "credentials": REDACTED,
        "api_key": REDACTED,
    }


def test_redact_never_redacts_empty_values() -> None:
    # An unset secret is worth seeing in a record: "why did the build not authenticate?"
    params = {"db_password": None, "token": "", "nested": {"secret": None}}

    assert redact(params) == params


def test_redact_leaves_the_input_unchanged() -> None:
    params = {"token": "abcdef", "inner": {"password": "xyz123"}}

    redact(params)

    assert params == {"token": "abcdef", "inner": {"password": "xyz123"}}


def test_secret_values_collects_what_redact_hides() -> None:
    params = {
        "db_password": "hunter2hunter2",
        "model": {"max_iter": 30, "apiKey": "abcd1234"},
        "sources": [{"token": "tok-123456"}, "plain"],
        "credentials": {"user": "ada-lovelace", "port": 5432},
        "empty_token": "",
        "author": "ada",
    }

    assert sorted(secret_values(params)) == sorted(
        ["hunter2hunter2", "abcd1234", "tok-123456", "ada-lovelace", "5432"]
    )


def test_secret_values_of_a_plain_mapping_is_empty() -> None:
    assert secret_values({"rows": 10, "name": "x", "nested": [1, {"a": "b"}]}) == []


def test_secret_values_reaches_values_nested_deep_under_a_secret_name() -> None:
    params = {"credentials": {"aws": {"id": "AKIAEXAMPLE"}}}
    notebook_text = 'credentials = {"aws": {"id": "AKIAEXAMPLE"}}'

    assert "AKIAEXAMPLE" in secret_values(params)
    assert "AKIAEXAMPLE" not in redact_text(notebook_text, secret_values(params))


def test_redact_text_replaces_every_occurrence() -> None:
    text = "password = 'hunter22'\nconnect(password='hunter22')"

    assert redact_text(text, ["hunter22"]) == (
        f"password = '{REDACTED}'\nconnect(password='{REDACTED}')"
    )


@pytest.mark.parametrize(
    ("secret", "redacted"),
    [("abc", False), ("abcd", True), ("a-long-secret", True), ("", False)],
)
def test_redact_text_only_replaces_values_of_four_characters_or_more(
    secret: str, redacted: bool
) -> None:
    # Short values ("1", "yes") would shred the whole report if replaced everywhere.
    text = f"value: [{secret}]"

    assert redact_text(text, [secret]) == (f"value: [{REDACTED}]" if redacted else text)


def test_redact_text_replaces_the_longest_secret_first() -> None:
    # Otherwise "abcd" would be replaced inside "abcdefgh", leaving "efgh" in clear.
    assert redact_text("key=abcdefgh", ["abcd", "abcdefgh"]) == f"key={REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://ada:hunter2@db:5432/log", f"postgresql://ada:{REDACTED}@db:5432/log"),
        ("postgresql+psycopg://u:pw@h/d", f"postgresql+psycopg://u:{REDACTED}@h/d"),
        # An unencoded "@" in the password: everything up to the host's "@" is hidden.
        ("mysql://root:p@ss@db/x", f"mysql://root:{REDACTED}@db/x"),
        (
            "log at https://u:s3cret@mlflow.example.com/ ok",
            f"log at https://u:{REDACTED}@mlflow.example.com/ ok",
        ),
        ("'http://u:pw@h:5000'", f"'http://u:{REDACTED}@h:5000'"),
        (
            "https://ghp_0123456789abcdefghijKLMN@github.com/o/r.git",
            f"https://{REDACTED}@github.com/o/r.git",
        ),
        ("https://h/x?a=1&access_token=abc&b=2", f"https://h/x?a=1&access_token={REDACTED}&b=2"),
        # Nothing to hide: unchanged.
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("sqlite:////tmp/x/.nbops/mlflow.db", "sqlite:////tmp/x/.nbops/mlflow.db"),
        ("http://127.0.0.1:5000/?page=2", "http://127.0.0.1:5000/?page=2"),
        ("user@example.com: pw", "user@example.com: pw"),
    ],
)
def test_strip_url_credentials(text: str, expected: str) -> None:
    assert strip_url_credentials(text) == expected
    assert display_url(text) == expected


def test_redact_strips_credentials_from_urls_under_any_name() -> None:
    assert redact({"dsn": "postgresql://u:pw@h/db", "rows": 3}) == {
        "dsn": f"postgresql://u:{REDACTED}@h/db",
        "rows": 3,
    }


def test_secret_values_include_passwords_inside_urls() -> None:
    # So the value is scrubbed from reports that show it outside the URL too.
    assert secret_values({"dsn": "postgresql://u:hunter22@h/db"}) == ["hunter22"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["ploomber", "build", "--env--db--password", "X-secret-1"],
            ["ploomber", "build", "--env--db--password", REDACTED],
        ),
        (
            ["ploomber", "build", "--env--smtp--pw=abc123"],
            ["ploomber", "build", f"--env--smtp--pw={REDACTED}"],
        ),
        (
            ["ploomber", "build", "--env--GITHUB_PAT", "ghp_x"],
            ["ploomber", "build", "--env--GITHUB_PAT", REDACTED],
        ),
        (
            ["ploomber", "build", "--env--data--source", "postgresql://u:pw@h/db"],
            ["ploomber", "build", "--env--data--source", f"postgresql://u:{REDACTED}@h/db"],
        ),
        # Ordinary overrides, flags and an empty value stay as typed.
        (
            ["ploomber", "build", "--env--data--rows", "100", "--force", "-e", "p.yaml"],
            ["ploomber", "build", "--env--data--rows", "100", "--force", "-e", "p.yaml"],
        ),
        (["ploomber", "build", "--env--token="], ["ploomber", "build", "--env--token="]),
        (
            ["ploomber", "build", "--env--db--pass", "--force"],
            ["ploomber", "build", "--env--db--pass", "--force"],
        ),
    ],
)
def test_redact_command(argv: list[str], expected: list[str]) -> None:
    assert redact_command(argv) == expected


def test_redact_assignments_hides_secret_named_values_in_a_diff() -> None:
    diff = "\n".join(
        [
            "+smtp:",
            "+  pw: hunter2-smtp",
            '+    "db_pass = \\"pa55word\\"\\n",',
            "+GITHUB_PAT=ghp_abc123",
            '+{"jwt": "eyJhbGciOi"}',
            "-  rows: 1500",
            "+  rows: 1200",
            "+  password: null",
            "+  token: '{{credentials.token}}'",
        ]
    )

    out = redact_assignments(diff)

    for leaked in ("hunter2-smtp", "pa55word", "ghp_abc123", "eyJhbGciOi"):
        assert leaked not in out
    # Numbers, unset values and placeholders are worth seeing in a diff.
    assert "+  rows: 1200" in out and "password: null" in out
    assert "{{credentials.token}}" in out
    assert f"pw: {REDACTED}" in out and f'"jwt": "{REDACTED}"' in out


def test_scrub_combines_values_urls_and_assignments() -> None:
    text = "conn postgresql://u:pw-in-url@h/db, db_pass: pa55 word; x, note: the-secret-value"

    out = scrub(text, ["the-secret-value"], assignments=True)

    assert out == f"conn postgresql://u:{REDACTED}@h/db, db_pass: {REDACTED}, note: {REDACTED}"
    assert scrub(text, ["the-secret-value"]).count(REDACTED) == 2, "assignments only when asked"
