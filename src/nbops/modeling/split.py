"""Train/test split: seeded, stratified for classification, or by time when asked.

The split is decided on the target (and time) column alone, as a mask over rows, and
the table is then streamed batch by batch into the train and test files: 10 million
rows split in the memory of a couple of columns. Rows keep the source's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from nbops.data.tables import (
    FrameWriter,
    column_names,
    iter_frames,
    read_columns,
    read_rows,
    row_count,
)
from nbops.data.target import TargetInfo, clean_labels, read_target
from nbops.errors import ConfigError

__all__ = [
    "Split",
    "read_training_rows",
    "sample_mask",
    "sample_rows",
    "split_frame",
    "split_table",
    "test_rows",
]


def test_rows(
    labels: pd.Series,
    target: TargetInfo,
    *,
    test_size: float = 0.2,
    seed: int = 42,
    time: pd.Series | None = None,
) -> np.ndarray:
    """Which rows are test rows (a boolean mask), given the prepared target ``labels``.

    With ``time`` (a date column, one value per row) the latest ``test_size`` share of
    rows is the test set: the model is judged on the future, as in production.
    Otherwise rows are drawn with ``seed`` and, for classification, stratified on the
    target.
    """
    if not 0 < test_size < 1:
        raise ConfigError(
            f"split.test_size must be between 0 and 1 (a share of rows), got {test_size}."
        )
    n = len(labels)
    if n < 10:
        raise ConfigError(
            f"The data has only {n} usable rows; at least 10 are needed to train and test a model."
        )
    is_test = np.zeros(n, dtype=bool)
    if time is not None:
        order = np.asarray(
            time.reset_index(drop=True).sort_values(kind="stable", na_position="first").index
        )
        is_test[order[int(round(n * (1 - test_size))) :]] = True
        return is_test
    stratify = labels.to_numpy() if target.task == "classification" else None
    try:
        _, test = train_test_split(
            np.arange(n), test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:  # e.g. fewer test rows than classes
        raise ConfigError(
            f"Cannot split {n} rows with split.test_size={test_size}: {exc}. "
            "Raise split.test_size in env.yaml, or use more data."
        ) from exc
    is_test[test] = True
    return is_test


def split_frame(
    frame: pd.DataFrame,
    target: TargetInfo,
    *,
    test_size: float = 0.2,
    seed: int = 42,
    time_column: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an in-memory ``frame`` (target already prepared) into train and test; see
    :func:`test_rows`. :func:`split_table` does the same for a file."""
    if time_column and time_column not in frame.columns:
        raise _no_time_column(time_column)
    is_test = test_rows(
        frame[target.name],
        target,
        test_size=test_size,
        seed=seed,
        time=frame[time_column] if time_column else None,
    )
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


@dataclass
class Split:
    """What :func:`split_table` decided: the target, and the labels on each side."""

    target: TargetInfo
    train_labels: pd.Series
    test_labels: pd.Series


def split_table(
    source: str | Path,
    *,
    train_path: str | Path,
    test_path: str | Path,
    target: str,
    task: str,
    test_size: float = 0.2,
    seed: int = 42,
    time_column: str | None = None,
) -> Split:
    """Split the Parquet table ``source`` into ``train_path`` and ``test_path``.

    Rows without a target are dropped and text labels cleaned (see
    :func:`nbops.data.target.prepare_target`); the split is :func:`test_rows` on the target
    column. Memory: the target and time columns plus one batch of rows.
    """
    raw, info = read_target(source, target, task)
    present = raw.notna().to_numpy()
    labels = clean_labels(raw[present]).reset_index(drop=True)
    time = None
    if time_column:
        if time_column not in column_names(source):
            raise _no_time_column(time_column)
        time = read_columns(source, [time_column])[time_column][present]
    is_test = test_rows(labels, info, test_size=test_size, seed=seed, time=time)

    side = np.full(len(present), -1, dtype=np.int8)  # -1 dropped, 0 train, 1 test
    side[present] = is_test
    del raw, time

    with FrameWriter(train_path) as train, FrameWriter(test_path) as test:
        start = 0
        for i, block in enumerate(iter_frames(source)):
            part = side[start : start + len(block)]
            start += len(block)
            for writer, wanted in ((train, 0), (test, 1)):
                rows = block[part == wanted]
                if len(rows) or i == 0:  # the first batch, even empty, gives the file its columns
                    writer.write(rows.assign(**{target: clean_labels(rows[target])}))
    return Split(
        info, labels[~is_test].reset_index(drop=True), labels[is_test].reset_index(drop=True)
    )


def _no_time_column(name: str) -> ConfigError:
    return ConfigError(
        f"split.time_column '{name}' is not in the data. Set it to a date column "
        "or leave it empty (null) for a random split."
    )


def sample_mask(
    labels: pd.Series, max_rows: int | None, target: TargetInfo, *, seed: int = 42
) -> np.ndarray:
    """Which rows to keep (a boolean mask) for at most ``max_rows`` rows: all of them when
    there are few enough (or ``max_rows`` is None), else a seeded sample, stratified on
    the target ``labels`` for classification so every class keeps its share."""
    n = len(labels)
    if max_rows is None or n <= max_rows:
        return np.ones(n, dtype=bool)
    if max_rows < 10:
        raise ConfigError(
            f"train.max_rows must be at least 10 (or null for all rows), got {max_rows}."
        )
    if target.task == "classification":
        kept, _ = train_test_split(
            np.arange(n), train_size=max_rows, random_state=seed, stratify=labels.to_numpy()
        )
    else:
        kept = np.random.RandomState(seed).permutation(n)[:max_rows]
    keep = np.zeros(n, dtype=bool)
    keep[kept] = True
    return keep


def sample_rows(
    frame: pd.DataFrame, max_rows: int | None, target: TargetInfo, *, seed: int = 42
) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame`` (see :func:`sample_mask`), in their order.

    Big tables train on a sample: a gradient-boosted model gains little beyond a million
    or so rows, and the fit's memory grows with every row (see docs/pipeline.md, big tables).
    """
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame[sample_mask(frame[target.name], max_rows, target, seed=seed)]


def read_training_rows(
    path: str | Path, max_rows: int | None, target: TargetInfo, *, seed: int = 42
) -> tuple[pd.DataFrame, int]:
    """The rows of the training file that models fit on: :func:`sample_mask` decided on
    the target column, then only those rows read. Returns ``(rows, rows_in_file)``."""
    if max_rows is None or row_count(path) <= max_rows:
        frame = read_rows(path, np.ones(row_count(path), dtype=bool))
        return frame, len(frame)
    labels = read_columns(path, [target.name])[target.name]
    return read_rows(path, sample_mask(labels, max_rows, target, seed=seed)), len(labels)
