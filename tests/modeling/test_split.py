"""Train/test split: seeded, stratified for classification, by time when asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.data.target import TargetInfo, prepare_target
from nbops.errors import ConfigError, NbopsError
from nbops.modeling.split import split_frame

N = 1_000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            # Timestamps in shuffled order, so a time split has to sort.
            "when": pd.date_range("2024-01-01", periods=N, freq="h")[rng.permutation(N)],
            "x": rng.normal(size=N),
            "y": np.r_[np.ones(100, dtype=int), np.zeros(N - 100, dtype=int)][rng.permutation(N)],
        }
    )


@pytest.fixture(scope="module")
def info(frame: pd.DataFrame) -> TargetInfo:
    return prepare_target(frame, "y", "classification")[1]


@pytest.mark.parametrize(("test_size", "n_test"), [(0.2, 200), (0.25, 250), (0.5, 500)])
def test_stratified_split_keeps_class_shares(
    frame: pd.DataFrame, info: TargetInfo, test_size: float, n_test: int
) -> None:
    train, test = split_frame(frame, info, test_size=test_size, seed=1)
    assert (len(train), len(test)) == (N - n_test, n_test)
    assert test["y"].mean() == pytest.approx(0.1)
    assert train["y"].mean() == pytest.approx(0.1)
    assert train.index.tolist() == list(range(len(train)))


def test_split_loses_and_duplicates_no_row(frame: pd.DataFrame, info: TargetInfo) -> None:
    train, test = split_frame(frame, info, seed=1)
    both = pd.concat([train, test])
    assert sorted(both["when"]) == sorted(frame["when"])


def test_same_seed_gives_same_split(frame: pd.DataFrame, info: TargetInfo) -> None:
    a_train, a_test = split_frame(frame, info, seed=7)
    b_train, b_test = split_frame(frame, info, seed=7)
    pd.testing.assert_frame_equal(a_train, b_train)
    pd.testing.assert_frame_equal(a_test, b_test)
    c_train, _ = split_frame(frame, info, seed=8)
    assert not a_train["when"].equals(c_train["when"])


def test_regression_split_is_not_stratified(frame: pd.DataFrame) -> None:
    info = TargetInfo(name="x", task="regression")
    train, test = split_frame(frame, info, test_size=0.3, seed=0)
    assert (len(train), len(test)) == (700, 300)


def test_time_split_puts_the_latest_rows_in_test(frame: pd.DataFrame, info: TargetInfo) -> None:
    train, test = split_frame(frame, info, test_size=0.25, time_column="when")
    assert (len(train), len(test)) == (750, 250)
    assert train["when"].max() < test["when"].min()
    assert test["when"].max() == frame["when"].max()


def test_time_split_keeps_undated_rows_out_of_test(frame: pd.DataFrame, info: TargetInfo) -> None:
    undated = frame.copy()
    undated.loc[:5, "when"] = pd.NaT
    train, test = split_frame(undated, info, time_column="when")
    assert train["when"].isna().sum() == 6
    assert test["when"].notna().all()


@pytest.mark.parametrize(
    ("kwargs", "rows", "match"),
    [
        (
            {"test_size": 0},
            N,
            r"split\.test_size must be between 0 and 1 \(a share of rows\), got 0",
        ),
        ({"test_size": 1}, N, r"split\.test_size must be between 0 and 1.*got 1"),
        ({"test_size": 1.5}, N, r"got 1\.5"),
        ({"test_size": -0.2}, N, r"got -0\.2"),
        (
            {"time_column": "date"},
            N,
            r"split\.time_column 'date' is not in the data\. Set it to a date column",
        ),
        ({}, 9, r"The data has only 9 usable rows; at least 10 are needed"),
    ],
    ids=["zero", "one", "above-one", "negative", "missing-time-column", "too-few-rows"],
)
def test_bad_split_settings_are_config_errors(
    frame: pd.DataFrame, info: TargetInfo, kwargs: dict, rows: int, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        split_frame(frame.head(rows), info, **kwargs)


def test_ten_rows_are_enough() -> None:
    small = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    _, info = prepare_target(small, "y", "classification")
    train, test = split_frame(small, info)
    assert (len(train), len(test)) == (8, 2)
    assert test["y"].tolist().count(1) == 1


def test_test_set_smaller_than_number_of_classes_is_explained() -> None:
    small = pd.DataFrame({"x": range(10), "y": list("aaaabbbccc")})
    _, info = prepare_target(small, "y", "classification")
    with pytest.raises(NbopsError, match=r"test_size"):
        split_frame(small, info, test_size=0.2)


def test_sample_rows_keeps_small_tables_whole_and_samples_big_ones_by_class() -> None:
    from nbops.modeling.split import sample_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(10_000), "y": rng.random(10_000) < 0.1})
    target = TargetInfo(name="y", task="classification", classes=[False, True], positive_class=True)

    assert sample_rows(frame, None, target) is frame
    assert sample_rows(frame, 10_000, target) is frame
    sampled = sample_rows(frame, 2_000, target, seed=1)

    assert len(sampled) == 2_000
    assert sampled.index.is_monotonic_increasing  # row order kept
    assert abs(sampled["y"].mean() - frame["y"].mean()) < 0.002  # the class share kept
    assert sampled.equals(sample_rows(frame, 2_000, target, seed=1))  # seeded


def test_sample_rows_for_regression_and_a_useless_cap() -> None:
    from nbops.modeling.split import sample_rows

    frame = pd.DataFrame({"x": range(1_000), "y": np.arange(1_000) * 0.5})
    target = TargetInfo(name="y", task="regression")

    assert len(sample_rows(frame, 100, target)) == 100
    with pytest.raises(ConfigError, match="train.max_rows must be at least 10"):
        sample_rows(frame, 5, target)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream files in batches of 64 rows, so every file test crosses batch boundaries."""
    monkeypatch.setattr("nbops.data.tables.BATCH_ROWS", 64)


@pytest.mark.parametrize("time_column", [None, "when"])
def test_split_table_writes_the_same_rows_as_split_frame(
    tmp_path, frame: pd.DataFrame, info: TargetInfo, small_batches: None, time_column: str | None
) -> None:
    from nbops.modeling.split import split_table

    frame.to_parquet(tmp_path / "data.parquet", index=False)
    split = split_table(
        tmp_path / "data.parquet",
        train_path=tmp_path / "train.parquet",
        test_path=tmp_path / "test.parquet",
        target="y",
        task="classification",
        test_size=0.25,
        seed=3,
        time_column=time_column,
    )
    train, test = split_frame(frame, info, test_size=0.25, seed=3, time_column=time_column)

    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "train.parquet"), train)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "test.parquet"), test)
    assert split.target == info
    assert split.train_labels.tolist() == train["y"].tolist()
    assert split.test_labels.tolist() == test["y"].tolist()


def test_split_table_drops_rows_without_a_target_and_cleans_labels(
    tmp_path, small_batches: None
) -> None:
    from nbops.modeling.split import split_table

    rng = np.random.default_rng(1)
    labels = pd.array(
        rng.choice([" >50K.", "<=50K", None], size=500, p=[0.3, 0.6, 0.1]), dtype="string"
    )
    pd.DataFrame({"x": np.arange(500), "income": labels}).to_parquet(
        tmp_path / "d.parquet", index=False
    )

    split = split_table(
        tmp_path / "d.parquet",
        train_path=tmp_path / "tr.parquet",
        test_path=tmp_path / "te.parquet",
        target="income",
        task="classification",
        seed=0,
    )
    train, test = pd.read_parquet(tmp_path / "tr.parquet"), pd.read_parquet(tmp_path / "te.parquet")

    assert split.target.dropped_missing == int(pd.isna(labels).sum())
    assert len(train) + len(test) == 500 - split.target.dropped_missing
    assert set(train["income"]) | set(test["income"]) == {">50K", "<=50K"}
    assert split.target.positive_class == ">50K"
    assert sorted(pd.concat([train, test])["x"]) == [
        i for i in range(500) if not pd.isna(labels[i])
    ]
    assert train["x"].is_monotonic_increasing  # source order kept


def test_split_table_names_a_missing_target_or_time_column(tmp_path, frame: pd.DataFrame) -> None:
    from nbops.errors import TargetError
    from nbops.modeling.split import split_table

    frame.to_parquet(tmp_path / "data.parquet", index=False)
    paths = {"train_path": tmp_path / "a.parquet", "test_path": tmp_path / "b.parquet"}
    with pytest.raises(TargetError, match=r"'label' is not in the data.*Columns are: when, x, y"):
        split_table(tmp_path / "data.parquet", target="label", task="classification", **paths)
    with pytest.raises(ConfigError, match=r"split\.time_column 'date' is not in the data"):
        split_table(
            tmp_path / "data.parquet",
            target="y",
            task="classification",
            time_column="date",
            **paths,
        )
    assert not (tmp_path / "a.parquet").exists()


def test_read_training_rows_reads_the_sample_sample_rows_takes(
    tmp_path, small_batches: None
) -> None:
    from nbops.modeling.split import read_training_rows, sample_rows

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.random(3_000), "y": rng.random(3_000) < 0.2})
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    target = TargetInfo(name="y", task="classification", classes=[False, True], positive_class=True)

    rows, available = read_training_rows(tmp_path / "train.parquet", 500, target, seed=4)
    expected = sample_rows(frame, 500, target, seed=4).reset_index(drop=True)
    assert available == 3_000
    pd.testing.assert_frame_equal(rows, expected)
    whole, _ = read_training_rows(tmp_path / "train.parquet", None, target)
    pd.testing.assert_frame_equal(whole, frame)
