"""Reading a user's table: CSV or Parquet in, clean typed DataFrame out.

Real exports are messy. CSV columns are read as text and each is typed on its own:
numbers stored as text with blanks become numbers with missing values, dates written
in several formats become datetimes, yes/no and true/false become booleans, and text
stays text, so a literal ``NA`` in a text column remains a category rather than
silently becoming missing. The target's yes/no text is the exception: its values are
the labels the model answers with, so they stay as written (``"Yes"``, not ``True``).
Every conversion is recorded so the ingest report can show a reviewer what was changed.

A file scored by a model that is already trained (a batch for ``nbops monitor``) is typed
the other way round: its columns get the types the model was trained on (``types``), not
types guessed from the batch's own values; a batch whose yes/no column happens to hold
only "Yes" is still a boolean column.

Every way the file can be wrong raises :class:`~nbops.errors.DataSourceError` with a
message that names the file and the fix.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nbops.data import rawtext
from nbops.errors import DataSourceError

__all__ = [
    "BUNDLED",
    "CSV_SEPARATORS",
    "KINDS",
    "PARQUET_SUFFIXES",
    "Conversion",
    "LoadedTable",
    "check_file",
    "clean_frame",
    "read_parts",
    "read_table",
]

#: The value of ``data.source`` that selects the bundled generator.
BUNDLED = "bundled"

_LEADING_ZERO = re.compile(r"^0\d")
_DATE_LIKE = re.compile(
    r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?$|^\d{1,2} \w{3,9},? \d{4}$|^\w{3,9} \d{1,2},? \d{4}$"
)
#: The files nbops reads: text tables by suffix with their separator, and Parquet.
CSV_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}
#: The types a column can be given (``types`` of :func:`read_table`).
KINDS = ("boolean", "number", "datetime", "text")
#: Share of non-missing values that must parse for a text column to become a date.
DATE_PARSE_SHARE = 0.95


@dataclass(frozen=True)
class Conversion:
    """One column's type change, for the ingest report."""

    column: str
    to: str
    unparsed: int = 0
    examples: tuple[str, ...] = ()


@dataclass
class LoadedTable:
    """A cleaned table and what was done to it."""

    frame: pd.DataFrame
    source: str
    conversions: list[Conversion] = field(default_factory=list)


def read_table(
    path: str | Path, *, target: str | None = None, types: Mapping[str, str] | None = None
) -> LoadedTable:
    """Read a CSV/TSV or Parquet file and type its columns.

    Args:
        path: the file to read.
        target: the column of labels, whose yes/no text is kept as written.
        types: columns whose type is known (one of :data:`KINDS`), typed as that rather
            than by their values; a value that is not of the type becomes missing and is
            counted in the column's :class:`Conversion`.

    Raises:
        DataSourceError: the file is missing, empty, of an unknown kind or unparseable.
    """
    path = check_file(
        path,
        fix="Set data.source in env.yaml (or pass --env--data--source PATH to ploomber build) to a .csv or .parquet file, or to 'bundled' for the generated dataset.",
    )
    suffix = path.suffix.lower()
    frame = (
        _read_parquet(path)
        if suffix in PARQUET_SUFFIXES
        else _read_csv(path, CSV_SEPARATORS[suffix])
    )
    if len(frame) == 0:
        raise DataSourceError(
            f"Data file '{path}' has a header ({len(frame.columns)} columns) but no data rows. "
            "Export the data again, or point data.source at another file."
        )
    frame, conversions = clean_frame(frame, target=target, types=types)
    return LoadedTable(frame=frame, source=str(path), conversions=conversions)


def check_file(
    path: str | Path,
    *,
    fix: str,
    empty: str = "Export the data again, or point data.source at another file.",
) -> Path:
    """``path`` if it is a file nbops reads (CSV/TSV or Parquet, not empty).

    Raises:
        DataSourceError: it is missing, a folder or of an unknown kind (the message ends
            with ``fix``), or empty (with ``empty``).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataSourceError(
            f"Data file '{path}' does not exist (looked in {path.resolve().parent}). {fix}"
        )
    if path.is_dir():
        raise DataSourceError(f"Data source '{path}' is a folder, not a file. {fix}")
    suffix = path.suffix.lower()
    if suffix not in CSV_SEPARATORS and suffix not in PARQUET_SUFFIXES:
        raise DataSourceError(
            f"Data file '{path}' has the extension '{suffix or '(none)'}', which nbops does not read. "
            f"Supported: {', '.join(sorted([*CSV_SEPARATORS, *PARQUET_SUFFIXES]))}. {fix}"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"Data file '{path}' is empty (0 bytes). {empty}")
    return path


def read_parts(path: Path, *, rows: int, groups: list[int] | None = None) -> Iterator[pd.DataFrame]:
    """The file's rows as :func:`read_table` reads them (untyped: type each part with
    :func:`clean_frame`), a part at a time: CSV chunks of ``rows`` rows, or the Parquet
    row ``groups`` given (all the file's row groups, ``rows`` at a time, without them).
    Call :func:`check_file` first."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            if groups is not None:
                yield parquet.read_row_groups(groups).to_pandas()
                return
            for i in range(parquet.metadata.num_row_groups):
                yield parquet.read_row_group(i).to_pandas()
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise DataSourceError(
                f"Data file '{path}' could not be read as Parquet: {_first_line(exc)}. "
                "Check that the file is complete and really Parquet, or export it as CSV."
            ) from exc
        return
    sep = CSV_SEPARATORS[suffix]
    with _csv_errors(path, sep), pd.read_csv(path, sep=sep, chunksize=rows, **_AS_TEXT) as reader:
        for frame in reader:
            frame.columns = [str(c).strip() for c in frame.columns]
            yield frame


#: How a CSV file is read: every value as the text written, a header line's spaces and
#: a byte-order mark dropped (typing is nbops' own, the same for every source).
_AS_TEXT = {
    "dtype": str,
    "keep_default_na": False,
    "skipinitialspace": True,
    "encoding": "utf-8-sig",
}


@contextlib.contextmanager
def _csv_errors(path: Path, sep: str) -> Iterator[None]:
    """pandas' errors reading the CSV file ``path`` as one paragraph naming the fix."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(
            f"Data file '{path}' has no header and no rows. Export the data again with a header line."
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataSourceError(
            f"Data file '{path}' could not be parsed as {'tab' if sep == chr(9) else 'comma'}-separated text: {_first_line(exc)}. "
            "Check that every row has as many fields as the header, that text containing the separator is quoted, "
            "and that the file extension matches the separator (.csv for commas, .tsv for tabs)."
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"Data file '{path}' is not UTF-8 text (byte {exc.start}: {exc.reason}). "
            "Re-save it as UTF-8 CSV, or convert it to Parquet."
        ) from exc


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    with _csv_errors(path, sep):
        frame = pd.read_csv(path, sep=sep, **_AS_TEXT)
    frame.columns = [str(c).strip() for c in frame.columns]
    if (
        len(frame.columns) == 1
        and len(frame) > 0
        and any(s in frame.columns[0] for s in (";", "\t", "|"))
    ):
        raise DataSourceError(
            f"Data file '{path}' was read as a single column named '{frame.columns[0][:60]}': "
            "its separator is not a comma. Save it as comma-separated .csv or tab-separated .tsv."
        )
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataSourceError(
            f"Data file '{path}' could not be read as Parquet: {_first_line(exc)}. "
            "Check that the file is complete and really Parquet, or export it as CSV."
        ) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def clean_frame(
    frame: pd.DataFrame, *, target: str | None = None, types: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, list[Conversion]]:
    """Type each text column of ``frame``: number, boolean, datetime or text.

    Columns that already have a non-text dtype (from Parquet) are kept as they are. The
    ``target`` column's yes/no text stays text: predictions and their probabilities are
    keyed by the labels as the file writes them (``"Yes"``/``"No"``), which a boolean
    would turn into ``True``/``False``. Numbers stay numbers (a regression target).
    ``types`` as in :func:`read_table`.

    Returns:
        The cleaned frame (a new object) and the list of conversions made.
    """
    out: dict[str, pd.Series] = {}
    conversions: list[Conversion] = []
    for name in frame.columns:
        column = frame[name]
        if not _is_text(column):
            out[name] = column
            continue
        if types and name in types:
            typed, conversion = _as_kind(str(name), column, types[name])
        else:
            typed, conversion = _type_text_column(str(name), column, labels=name == target)
        out[name] = typed
        if conversion is not None:
            conversions.append(conversion)
    return pd.DataFrame(out, index=frame.index), conversions


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)


def _as_kind(name: str, column: pd.Series, kind: str) -> tuple[pd.Series, Conversion | None]:
    text = rawtext.as_text(column).rename(name)
    if kind == "text":
        return rawtext.to_categories(text), None
    if kind == "boolean":  # 1/0 too, as the service reads a boolean
        typed, unreadable = rawtext.to_booleans(text, digits=True)
    elif kind == "number":
        typed, unreadable = rawtext.to_numbers(text)
    elif kind == "datetime":
        dates, unreadable = rawtext.to_datetimes(text)
        typed = pd.Series(dates, index=column.index, name=name)
    else:
        raise ValueError(f"unknown kind {kind!r} for column {name!r}: one of {KINDS}")
    failed = text[unreadable]
    return typed, Conversion(name, kind, unparsed=len(failed), examples=tuple(failed.unique()[:3]))


def _type_text_column(
    name: str, column: pd.Series, *, labels: bool = False
) -> tuple[pd.Series, Conversion | None]:
    # Which type the column has is decided here, from all its values; the conversions
    # themselves live in nbops.data.rawtext, shared with the prediction service.
    text = rawtext.as_text(column).rename(name)
    is_null_token = rawtext.null_tokens(text)
    values = text[~is_null_token]
    if values.empty:
        return pd.Series(pd.NA, index=column.index, dtype="string", name=name), None

    distinct = set(values.str.lower().unique())
    if (
        distinct <= (rawtext.TRUE_TOKENS | rawtext.FALSE_TOKENS)
        and distinct & rawtext.TRUE_TOKENS
        and distinct & rawtext.FALSE_TOKENS
    ):
        if labels:  # the labels as written; "N/A" is still no label
            return text.mask(is_null_token), None
        return rawtext.to_booleans(text)[0], Conversion(name, "boolean")

    if not values.str.match(_LEADING_ZERO).any():  # "01234" is a code, not a number
        numbers, unreadable = rawtext.to_numbers(text)
        if not unreadable.any():
            if numbers.notna().all() and (numbers % 1 == 0).all():
                numbers = numbers.astype("int64")
            return numbers, Conversion(name, str(numbers.dtype))

    sample = values.iloc[:1000]
    if sample.str.match(_DATE_LIKE).mean() >= DATE_PARSE_SHARE:
        dates, unreadable = rawtext.to_datetimes(text)
        if 1 - unreadable.sum() / len(values) >= DATE_PARSE_SHARE:
            failed = text[unreadable]
            return pd.Series(dates, index=column.index, name=name), Conversion(
                name, "datetime", unparsed=len(failed), examples=tuple(failed.unique()[:3])
            )

    return rawtext.to_categories(text), None
