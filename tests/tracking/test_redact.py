"""Secrets stay out of run records: secret-looking names are redacted, their values scrubbed."""

from __future__ import annotations

import pytest

from nbops.tracking.redact import REDACTED, is_secret_name, redact, redact_text, secret_values


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
