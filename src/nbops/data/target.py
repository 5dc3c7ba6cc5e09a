"""The learning task and its target column: checked early, explained clearly."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nbops.errors import ConfigError, TargetError

__all__ = ["TASKS", "TargetInfo", "check_task", "clean_labels", "prepare_target", "read_target"]

TASKS = ("classification", "regression")
_POSITIVE_NAMES = ("1", "true", "yes", "y", "t", "positive", "pos", ">50k")


@dataclass(frozen=True)
class TargetInfo:
    """What the rest of the pipeline needs to know about the target."""

    name: str
    task: str
    classes: list[Any] = field(default_factory=list)
    positive_class: Any = None
    dropped_missing: int = 0

    @property
    def is_binary(self) -> bool:
        return self.task == "classification" and len(self.classes) == 2


def check_task(task: str) -> str:
    """Return ``task`` if it is one nbops knows, else raise a ConfigError saying which are."""
    if task not in TASKS:
        hint = difflib.get_close_matches(str(task), TASKS, n=1)
        maybe = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ConfigError(
            f"Unknown task '{task}' in env.yaml.{maybe} Set task to one of: {', '.join(TASKS)} "
            "(classification for a label column, regression for a numeric target)."
        )
    return task


def prepare_target(frame: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, TargetInfo]:
    """Check the target column for ``task``; drop rows where it is missing.

    String labels are stripped (``" >50K."`` and ``">50K."`` are the same class), and the
    positive class of a binary problem is chosen so that metrics read naturally: True,
    1, yes, >50K, ... if present, otherwise the rarer class.

    Raises:
        ConfigError: unknown task.
        TargetError: the column is missing, has a single class, or is text for regression.
    """
    check_task(task)
    if target not in frame.columns:
        hint = difflib.get_close_matches(target, [str(c) for c in frame.columns], n=1, cutoff=0.6)
        maybe = f" Did you mean '{hint[0]}'?" if hint else ""
        listed = ", ".join(map(str, frame.columns[:30])) + (
            " ..." if len(frame.columns) > 30 else ""
        )
        raise TargetError(
            f"The target column '{target}' is not in the data.{maybe} Columns are: {listed}. "
            "Set data.target in env.yaml (or pass --env--data--target NAME to ploomber build) to the column to predict."
        )
    raw = frame[target]
    y = clean_labels(raw)
    if y is not raw:
        frame = frame.assign(**{target: y})
    missing = int(y.isna().sum())
    if missing == len(frame):
        raise TargetError(
            f"The target column '{target}' has no values: every row is missing. Pick another column as data.target."
        )
    if missing:
        frame = frame[y.notna()].reset_index(drop=True)
        y = frame[target]

    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
            examples = ", ".join(map(repr, y.drop_duplicates().head(3).tolist()))
            raise TargetError(
                f"The target column '{target}' holds labels ({examples}), not numbers, so it cannot be "
                "used for regression. Set task: classification in env.yaml, or pick a numeric target."
            )
        if y.nunique() < 2:
            raise TargetError(
                f"The target column '{target}' has the same value in every row; there is nothing to learn. Pick another target."
            )
        return frame, TargetInfo(name=target, task=task, dropped_missing=missing)

    counts = y.value_counts()
    counts = counts[counts > 0]  # a categorical dtype lists unused categories with 0
    if len(counts) < 2:
        raise TargetError(
            f"The target column '{target}' has a single class ({_native(counts.index[0])!r} in all {len(frame)} rows), "
            "so a classifier has nothing to learn. Check that the file holds both outcomes, or pick another target."
        )
    if pd.api.types.is_float_dtype(y.dtype) and len(counts) > 20:
        raise TargetError(
            f"The target column '{target}' has {len(counts)} distinct numeric values, which looks like a "
            "regression target. Set task: regression in env.yaml, or bin the target into classes."
        )
    small = counts[counts < 2]
    if len(small):
        raise TargetError(
            f"The target column '{target}' has classes with a single example ({', '.join(repr(_native(c)) for c in small.index[:5])}), "
            "which cannot be split into train and test. Drop or merge those rows."
        )
    classes = sorted((_native(c) for c in counts.index), key=str)
    return frame, TargetInfo(
        name=target,
        task=task,
        classes=classes,
        positive_class=_positive_class(counts) if len(classes) == 2 else None,
        dropped_missing=missing,
    )


def read_target(path: str | Path, target: str, task: str) -> tuple[pd.Series, TargetInfo]:
    """The target column of a Parquet table as stored, and :func:`prepare_target`'s
    verdict on it, reading no other column (a missing target is named with the file's
    columns all the same)."""
    from nbops.data.tables import column_names, empty_frame, read_columns

    frame = read_columns(path, [target]) if target in column_names(path) else empty_frame(path)
    _, info = prepare_target(frame, target, task)
    return frame[target], info


def clean_labels(y: pd.Series) -> pd.Series:
    """Text labels stripped of spaces and a trailing dot (``" >50K."`` is ``">50K"``);
    any other column is returned as it is."""
    if pd.api.types.is_string_dtype(y.dtype) or pd.api.types.is_object_dtype(y.dtype):
        return y.astype("string").str.strip().str.rstrip(".")
    return y


def _positive_class(counts: pd.Series) -> Any:
    for label in counts.index:
        value = _native(label)
        if str(value).strip().lower() in _POSITIVE_NAMES or (
            isinstance(value, (int, float)) and value == 1
        ):
            return value
    return _native(counts.index[-1])  # value_counts sorts descending: the rarer class


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
