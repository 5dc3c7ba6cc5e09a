"""Reading a user's table: messy CSV typed column by column, and clear errors for bad files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops.data.datasets import make_churn
from nbops.data.sources import read_table
from nbops.errors import DataSourceError

is_float = pd.api.types.is_float_dtype
is_int = pd.api.types.is_integer_dtype
is_bool = pd.api.types.is_bool_dtype
is_datetime = pd.api.types.is_datetime64_any_dtype
is_text = pd.api.types.is_string_dtype


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Factory: write ``content`` (text or bytes) to ``tmp_path / name``."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def csv_column(write_file: Callable[[str, str | bytes], Path]) -> Callable[[list[str]], pd.Series]:
    """Factory: read back one CSV column written from raw text cells."""

    def read(cells: list[str]) -> pd.Series:
        # A row number next to the value keeps blank cells from becoming blank lines.
        body = "".join(f"{i},{cell}\n" for i, cell in enumerate(cells))
        return read_table(write_file("column.csv", "row,value\n" + body)).frame["value"]

    return read


def _cells(series: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in series.tolist()]


@pytest.mark.parametrize(
    ("cells", "dtype_check", "expected"),
    [
        (["1.5", "", " 2 ", "3.25"], is_float, [1.5, None, 2.0, 3.25]),
        (["10", "20", "30"], is_int, [10, 20, 30]),
        (["1", "NA", "3", "n/a", "null"], is_float, [1.0, None, 3.0, None, None]),
        (["NA", "EU", "NA", "US"], is_text, ["NA", "EU", "NA", "US"]),
        (["EU", "", "US", "EU"], is_text, ["EU", None, "US", "EU"]),
        (
            ["2024-01-05", "01/06/2024", "2024/01/07 10:30"],
            is_datetime,
            [
                pd.Timestamp("2024-01-05"),
                pd.Timestamp("2024-01-06"),
                pd.Timestamp("2024-01-07 10:30"),
            ],
        ),
        (
            ["2024-01-05", "", "2024-02-29"],
            is_datetime,
            [pd.Timestamp("2024-01-05"), None, pd.Timestamp("2024-02-29")],
        ),
        (["yes", "No", "YES", "no", ""], is_bool, [True, False, True, False, None]),
        (["true", "false", "True", "FALSE"], is_bool, [True, False, True, False]),
        (["01234", "00042", "12345"], is_text, ["01234", "00042", "12345"]),
        (["x", "x", "x"], is_text, ["x", "x", "x"]),
    ],
    ids=[
        "numbers-as-text-with-blanks",
        "integers",
        "NA-in-numeric-is-missing",
        "NA-in-text-is-a-category",
        "blank-in-text-is-missing",
        "dates-in-several-formats",
        "dates-with-a-blank",
        "yes-no",
        "true-false",
        "leading-zero-codes-stay-text",
        "constant-column-kept",
    ],
)
def test_csv_columns_are_typed(
    csv_column: Callable[[list[str]], pd.Series],
    cells: list[str],
    dtype_check: Callable[[object], bool],
    expected: list[object],
) -> None:
    column = csv_column(cells)
    assert dtype_check(column.dtype), column.dtype
    assert _cells(column) == expected


def test_conversions_are_recorded_for_the_ingest_report(
    write_file: Callable[[str, str | bytes], Path],
) -> None:
    path = write_file(
        "mixed.csv",
        "amount,region,when,active\n1.5,NA,2024-01-05,yes\n,EU,01/06/2024,no\n2,NA,2024-01-07,yes\n",
    )
    loaded = read_table(path)
    assert loaded.source == str(path)
    assert {c.column: c.to for c in loaded.conversions} == {
        "amount": "float64",
        "when": "datetime",
        "active": "boolean",
    }


def test_a_batch_is_typed_as_the_model_was_trained_not_by_its_own_values(
    write_file: Callable[[str, str | bytes], Path],
) -> None:
    """A batch scored by a trained model: "Yes" alone is still a boolean column, a code
    that looks like a number stays text, and what is not of its type is counted."""
    path = write_file(
        "batch.csv",
        "paperless,plan,charges,joined\nYes,17,29.85,31/05/2024\nYES,123, ,N/A\nYes,9,lots,2024-06-01\n",
    )
    kinds = {"paperless": "boolean", "plan": "text", "charges": "number", "joined": "datetime"}

    loaded = read_table(path, types=kinds)

    frame = loaded.frame
    assert str(frame["paperless"].dtype) == "boolean" and frame["paperless"].all()
    assert is_text(frame["plan"]) and list(frame["plan"]) == ["17", "123", "9"]
    assert frame["charges"].dtype == float and _cells(frame["charges"]) == [29.85, None, None]
    assert is_datetime(frame["joined"]) and frame["joined"].isna().tolist() == [False, True, False]
    unparsed = {c.column: (c.unparsed, c.examples) for c in loaded.conversions}
    assert unparsed["charges"] == (1, ("lots",)) and unparsed["paperless"] == (0, ())
    # Left to guess, the same file gives other types: what the model would choke on.
    guessed = read_table(path).frame
    assert is_text(guessed["paperless"]) and guessed["plan"].dtype == "int64"


def test_a_few_unparseable_dates_are_counted_with_examples(
    write_file: Callable[[str, str | bytes], Path],
) -> None:
    dates = [f"2024-01-{day:02d}" for day in range(1, 21)]
    path = write_file("dates.csv", "when\n" + "\n".join([*dates, "2024-13-45"]) + "\n")
    loaded = read_table(path)
    assert is_datetime(loaded.frame["when"].dtype)
    assert loaded.frame["when"].isna().sum() == 1
    (conversion,) = loaded.conversions
    assert (conversion.column, conversion.to, conversion.unparsed) == ("when", "datetime", 1)
    assert conversion.examples == ("2024-13-45",)


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t"), (".txt", ",")])
def test_separator_follows_the_extension(
    write_file: Callable[[str, str | bytes], Path], suffix: str, sep: str
) -> None:
    path = write_file(f"table{suffix}", f"a{sep}b\n1{sep}x\n2{sep}y\n")
    frame = read_table(path).frame
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1, 2]


def test_byte_order_mark_and_padded_headers_are_cleaned(
    write_file: Callable[[str, str | bytes], Path],
) -> None:
    # Excel's "CSV UTF-8" starts with a BOM; a target named 'id' must still be found.
    path = write_file("excel.csv", "\ufeffid , amount\n1,2.5\n2,3.5\n".encode())
    assert list(read_table(path).frame.columns) == ["id", "amount"]


def test_parquet_round_trip_keeps_dtypes(tmp_path: Path) -> None:
    frame = make_churn(300, seed=5)
    frame.to_parquet(tmp_path / "churn.parquet", index=False)
    loaded = read_table(tmp_path / "churn.parquet")
    pd.testing.assert_frame_equal(loaded.frame, frame)
    assert loaded.conversions == []


def test_parquet_round_trip_keeps_nullable_and_categorical_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "count": pd.array([1, None, 3], dtype="Int64"),
            "ratio": [0.5, np.nan, 1.5],
            "flag": pd.array([True, None, False], dtype="boolean"),
            "when": pd.to_datetime(["2024-01-01", None, "2024-03-01"]),
            "kind": pd.Categorical(["a", "b", "a"]),
            "label": pd.array(["NA", None, "EU"], dtype="string"),
        }
    )
    frame.to_parquet(tmp_path / "typed.pq", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "typed.pq").frame, frame)


def _ragged() -> bytes:
    return b"a,b\n1,2\n3,4,5,6\n7,8\n"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.csv", None, r"does not exist.*Set data\.source"),
        ("folder.csv", "dir", r"is a folder, not a file.*Set data\.source"),
        (
            "book.xlsx",
            b"a,b\n1,2\n",
            r"extension '\.xlsx', which nbops does not read\. Supported: .*\.csv.*\.parquet",
        ),
        ("noextension", b"a,b\n1,2\n", r"extension '\(none\)'"),
        ("empty.csv", b"", r"is empty \(0 bytes\)\. Export the data again"),
        (
            "blank.csv",
            b"\n\n",
            r"has no header and no rows\. Export the data again with a header line",
        ),
        (
            "header.csv",
            b"a,b,c\n",
            r"has a header \(3 columns\) but no data rows\. Export the data again",
        ),
        (
            "ragged.csv",
            _ragged(),
            r"could not be parsed as comma-separated text: .*Expected 2 fields.*Check that every row has as many fields as the header",
        ),
        (
            "semicolon.csv",
            b"a;b;c\n1;2;3\n4;5;6\n",
            r"read as a single column named 'a;b;c': its separator is not a comma\. Save it as comma-separated",
        ),
        (
            "latin1.csv",
            "name,city\nJos\u00e9,M\u00fcnchen\n".encode("latin-1"),
            r"is not UTF-8 text.*Re-save it as UTF-8 CSV",
        ),
        (
            "broken.parquet",
            b"PAR1 this is not parquet",
            r"could not be read as Parquet.*export it as CSV",
        ),
    ],
    ids=[
        "missing",
        "directory",
        "unknown-extension",
        "no-extension",
        "zero-bytes",
        "blank-lines-only",
        "header-only",
        "ragged-rows",
        "semicolon-separated",
        "not-utf8",
        "broken-parquet",
    ],
)
def test_bad_files_raise_a_data_source_error_naming_the_file_and_the_fix(
    tmp_path: Path, name: str, content: bytes | str | None, match: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataSourceError, match=match) as caught:
        read_table(path)
    message = str(caught.value)
    assert re.search(re.escape(f"'{path}'"), message), message
    assert "\n" not in message  # one paragraph


def test_parse_errors_keep_the_pandas_cause(write_file: Callable[[str, str | bytes], Path]) -> None:
    with pytest.raises(DataSourceError) as caught:
        read_table(write_file("ragged.csv", _ragged()))
    assert isinstance(caught.value.__cause__, pd.errors.ParserError)


def test_user_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    assert read_table("~/data.csv").frame.shape == (1, 2)
