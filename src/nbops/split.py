"""Train/test split: seeded, stratified for classification, or by time when asked."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from nbops.errors import ConfigError
from nbops.target import TargetInfo

__all__ = ["sample_rows", "split_frame"]


def split_frame(
    frame: pd.DataFrame,
    target: TargetInfo,
    *,
    test_size: float = 0.2,
    seed: int = 42,
    time_column: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into train and test.

    With ``time_column`` the latest ``test_size`` share of rows is the test set (no
    shuffling: the model is judged on the future, as in production). Otherwise rows
    are shuffled with ``seed`` and, for classification, stratified on the target.
    """
    if not 0 < test_size < 1:
        raise ConfigError(
            f"split.test_size must be between 0 and 1 (a share of rows), got {test_size}."
        )
    if len(frame) < 10:
        raise ConfigError(
            f"The data has only {len(frame)} usable rows; at least 10 are needed to train and test a model."
        )
    if time_column:
        if time_column not in frame.columns:
            raise ConfigError(
                f"split.time_column '{time_column}' is not in the data. Set it to a date column "
                "or leave it empty (null) for a random split."
            )
        ordered = frame.sort_values(time_column, kind="stable", na_position="first").reset_index(
            drop=True
        )
        cut = int(round(len(ordered) * (1 - test_size)))
        return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
    stratify = frame[target.name] if target.task == "classification" else None
    try:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:  # e.g. fewer test rows than classes
        raise ConfigError(
            f"Cannot split {len(frame)} rows with split.test_size={test_size}: {exc}. "
            "Raise split.test_size in env.yaml, or use more data."
        ) from exc
    return train.reset_index(drop=True), test.reset_index(drop=True)


def sample_rows(
    frame: pd.DataFrame, max_rows: int | None, target: TargetInfo, *, seed: int = 42
) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame``: all of them when it is small enough (or
    ``max_rows`` is None), else a seeded sample, stratified on the target for
    classification so every class keeps its share. Row order is kept.

    Big tables train on a sample: a gradient-boosted model gains little beyond a million
    or so rows, and the fit's memory grows with every row (see README, Speed and scale).
    """
    if max_rows is None or len(frame) <= max_rows:
        return frame
    if max_rows < 10:
        raise ConfigError(
            f"train.max_rows must be at least 10 (or null for all rows), got {max_rows}."
        )
    if target.task == "classification":
        kept, _ = train_test_split(
            frame.index.to_numpy(),
            train_size=max_rows,
            random_state=seed,
            stratify=frame[target.name],
        )
    else:
        kept = frame.sample(max_rows, random_state=seed).index.to_numpy()
    return frame.loc[frame.index.isin(kept)]
