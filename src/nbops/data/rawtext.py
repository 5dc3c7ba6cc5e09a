"""Raw text → typed values: the one set of conversions that ingest and the service share.

A value in a user's CSV is text. Ingest (:func:`nbops.data.sources.clean_frame`) decides a
column's type from all of its values, then converts it with the functions here; the
prediction service converts the text a client sends for a column whose type the model
already knows with the same functions, so a row sent as it appears in the training file
is typed exactly as the pipeline typed it:

- ``""``, ``NA``, ``N/A``, ``null``, ``?``, ``-``, ... are missing in a number, boolean or
  date column (:data:`NULL_TOKENS`); in a text column they stay categories ("NA" may be
  North America), only blanks are missing;
- yes/no, true/false, y/n, t/f (any case) are booleans;
- numbers are read by ``pandas.to_numeric`` after stripping spaces;
- dates are read as ISO 8601 first (fast), then in any format pandas infers per value
  (``format="mixed"``: ``31/05/2024``, ``May 31, 2024``, ...), and normalised to UTC
  without a zone. Dates pandas cannot hold (before 1677-09-21 or after 2262-04-11) are
  not dates.

Every function takes a ``pandas`` string Series (stripped text, ``<NA>`` for absent) and
returns the typed values with a mask of the values that could not be converted. Pure.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pandas as pd

__all__ = [
    "DATE_RANGE",
    "FALSE_TOKENS",
    "NULL_TOKENS",
    "TRUE_TOKENS",
    "as_text",
    "null_tokens",
    "to_booleans",
    "to_categories",
    "to_datetimes",
    "to_numbers",
]

#: Text that means "no value" in a column that is otherwise numeric, boolean or a date.
NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "--", "#n/a"})
TRUE_TOKENS = frozenset({"true", "yes", "y", "t"})
FALSE_TOKENS = frozenset({"false", "no", "n", "f"})
#: The dates a ``datetime64[ns]`` column (what ingest writes and the model reads) holds.
DATE_RANGE = (pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D") - pd.Timedelta(1, "ns"))


#: Lines of plain ISO 8601 dates (no zone, years 1700-2259): read alike by numpy and pandas.
_PLAIN_ISO = re.compile(
    r"(?:(?:1[7-9]\d\d|2[01]\d\d|22[0-5]\d)-[01]\d-[0-3]\d(?:[T ][0-2]\d:[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?)?(?:\n|$))+"
)


#: The shapes of those lines, digits written as 0 (see _plain_iso).
_PLAIN_ISO_SHAPES = frozenset(
    b"0000-00-00" + time
    for time in [
        b"",
        *(
            sep + b"00:00" + seconds
            for sep in (b"T", b" ")
            for seconds in [b"", b":00", *(b":00." + b"0" * k for k in range(1, 10))]
        ),
    ]
)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _plain_iso(values: list[str]) -> bool:
    """Whether every value is a line of :data:`_PLAIN_ISO`, but for the ranges of months,
    days, hours, minutes and seconds, which numpy checks when it reads them: the shape
    of each (a byte translation) and the range of years (the smallest and largest
    value's, as text compares them) checked in C, several times faster than the
    regular expression."""
    joined = "\n".join(values)
    return (
        joined.isascii()
        and joined.count("\n") == len(values) - 1
        and set(joined.encode().translate(_DIGITS_AS_ZERO).split(b"\n")) <= _PLAIN_ISO_SHAPES
        and min(values)[:4] >= "1700"
        and max(values)[:4] <= "2259"
    )


def as_text(values: pd.Series | list[str | None]) -> pd.Series:
    """Stripped text, ``<NA>`` where absent: the form every function here reads."""
    return pd.Series(values, dtype="string").str.strip()


def null_tokens(text: pd.Series) -> np.ndarray:
    """Where ``text`` is absent or a missing-value token (see :data:`NULL_TOKENS`)."""
    return (text.str.lower().isin(NULL_TOKENS) | text.isna()).to_numpy(dtype=bool)


def to_booleans(text: pd.Series, *, digits: bool = False) -> tuple[pd.Series, np.ndarray]:
    """yes/no, true/false, y/n, t/f (and ``1``/``0`` with ``digits``) → nullable booleans.

    Returns:
        The values (``<NA>`` where missing or unreadable) and the unreadable mask.
    """
    lowered = text.str.lower()
    missing = null_tokens(text)
    true = lowered.isin(TRUE_TOKENS).to_numpy(dtype=bool, copy=True)
    false = lowered.isin(FALSE_TOKENS).to_numpy(dtype=bool, copy=True)
    if digits:
        true |= text.isin(["1"]).to_numpy(dtype=bool)
        false |= text.isin(["0"]).to_numpy(dtype=bool)
    result = pd.Series(pd.NA, index=text.index, dtype="boolean", name=text.name)
    result[true] = True
    result[false] = False
    return result, ~(missing | true | false)


def to_numbers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers written as text → float64 (NaN where missing or unreadable).

    Returns:
        The values and the unreadable mask (a value that is neither a number nor a
        missing-value token).
    """
    missing = null_tokens(text)
    result = pd.Series(np.nan, index=text.index, dtype="float64", name=text.name)
    present = text[~missing]
    if len(present):
        numbers = pd.to_numeric(present.astype(object), errors="coerce")
        result[~missing] = np.asarray(numbers, dtype="float64")
    return result, ~missing & result.isna().to_numpy()


def to_datetimes(text: pd.Series | list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Dates written as text → ``datetime64[ns]`` in UTC without a zone (NaT where missing
    or unreadable). Values with an offset are converted to UTC; values without one are
    taken as they are.

    Returns:
        The values and the unreadable mask (neither a date pandas can hold nor a
        missing-value token).
    """
    values = (
        text.to_numpy(dtype=object, na_value=None).tolist() if isinstance(text, pd.Series) else text
    )
    if values and set(map(type, values)) == {str} and _plain_iso(values):
        # Every value is a plain ISO 8601 date inside the range: numpy reads them in one
        # C call (what a JSON client sends; pandas costs milliseconds per call).
        with contextlib.suppress(ValueError):  # 2024-02-30: pandas says which below
            return np.array(values, dtype="datetime64[ns]"), np.zeros(len(values), dtype=bool)
    text = as_text(text) if not isinstance(text, pd.Series) else text
    missing = null_tokens(text)
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]", name=text.name)
    present = text[~missing].astype(object)
    if len(present):
        parsed = _parse(present, "ISO8601")
        retry = parsed.isna().to_numpy()
        if retry.any():  # not ISO 8601: let pandas infer each value's format
            parsed[retry] = _parse(present[retry], "mixed")
        result[~missing] = parsed.to_numpy()
    return result.to_numpy(dtype="datetime64[ns]"), ~missing & result.isna().to_numpy()


def _parse(values: pd.Series, format: str) -> pd.Series:
    try:
        parsed = pd.to_datetime(values, format=format, utc=True, errors="coerce")
    except (ValueError, OverflowError, TypeError):
        # pandas raises for some inputs despite errors="coerce": one value at a time
        parsed = pd.Series([_parse_one(v, format) for v in values], index=values.index)
        parsed = pd.to_datetime(parsed, utc=True)
    # pandas may parse into a coarser unit that holds year 1 or 9999; the model's
    # columns are nanoseconds, so a date outside their range is not a date here.
    naive = parsed.dt.tz_convert(None)
    inside = (naive >= DATE_RANGE[0]) & (naive <= DATE_RANGE[1])
    return naive.where(inside).astype("datetime64[ns]")


def _parse_one(value: str, format: str) -> pd.Timestamp:
    try:
        return pd.to_datetime(value, format=format, utc=True, errors="coerce")
    except (ValueError, OverflowError, TypeError):
        return pd.NaT


def to_categories(text: pd.Series) -> pd.Series:
    """Text stays text; only blanks become missing, "NA" and friends stay categories."""
    return text.mask(text == "")
