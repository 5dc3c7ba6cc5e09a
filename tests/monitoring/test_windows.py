"""How far back monitoring looks: a window such as ``7d`` read as a timedelta."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nbops.errors import ConfigError
from nbops.monitoring.windows import parse_window


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_window_reads_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["7", "7x", "seven days", "", "-1d", "d7"])
def test_a_window_it_cannot_read_is_a_config_error_with_examples(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"Window '{text}' is not understood.*90m, 24h, 7d"):
        parse_window(text)
