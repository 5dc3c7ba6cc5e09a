"""How far back monitoring looks: ``"7d"``, ``"24h"``, ``"90m"``, ``"2w"`` as a timedelta.

Stage library, standard library only: ``nbops monitor --window`` checks the window
before it starts the monitoring build, without importing pandas.
"""

from __future__ import annotations

import re
from datetime import timedelta

from nbops.errors import ConfigError

__all__ = ["parse_window"]

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> timedelta:
    """``"7d"``, ``"24h"``, ``"90m"``, ``"2w"`` → a timedelta.

    Example:
        >>> parse_window("36h")
        datetime.timedelta(days=1, seconds=43200)
    """
    match = _WINDOW.match(str(text))
    if not match:
        raise ConfigError(
            f"Window {text!r} is not understood: use a number and a unit, e.g. 90m, 24h, 7d or 2w."
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
