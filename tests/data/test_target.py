"""The task and target column: checked early, with messages that say what to change."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from nbops.data.target import TASKS, check_task, prepare_target
from nbops.errors import ConfigError, TargetError


@pytest.mark.parametrize("task", TASKS)
def test_known_tasks_pass(task: str) -> None:
    assert check_task(task) == task


@pytest.mark.parametrize(
    ("task", "match"),
    [
        (
            "classifcation",
            r"Unknown task 'classifcation' in env\.yaml\. Did you mean 'classification'\?",
        ),
        ("regresion", r"Did you mean 'regression'\?"),
        (
            "clustering",
            r"Unknown task 'clustering' in env\.yaml\. Set task to one of: classification, regression",
        ),
    ],
)
def test_unknown_task_is_a_config_error(task: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_task(task)
    with pytest.raises(ConfigError, match=match):
        prepare_target(pd.DataFrame({"y": [0, 1]}), "y", task)


def test_no_suggestion_when_nothing_is_close() -> None:
    with pytest.raises(ConfigError) as caught:
        check_task("clustering")
    assert "Did you mean" not in str(caught.value)


def test_missing_target_lists_columns_and_suggests_a_close_match() -> None:
    frame = pd.DataFrame({"Churned": [0, 1], "tenure": [1, 2]})
    with pytest.raises(
        TargetError,
        match=r"The target column 'churned' is not in the data\. Did you mean 'Churned'\? "
        r"Columns are: Churned, tenure\. Set data\.target in env\.yaml",
    ):
        prepare_target(frame, "churned", "classification")


def test_missing_target_without_close_match_still_lists_columns() -> None:
    frame = pd.DataFrame({"a": [0, 1], "b": [1, 2]})
    with pytest.raises(
        TargetError, match=r"'label' is not in the data\. Columns are: a, b\."
    ) as caught:
        prepare_target(frame, "label", "classification")
    assert "Did you mean" not in str(caught.value)


def test_missing_target_with_many_columns_lists_the_first_ones() -> None:
    frame = pd.DataFrame({f"col{i}": [0, 1] for i in range(40)})
    with pytest.raises(TargetError, match=r"Columns are: col0, col1, .*col29 \.\.\."):
        prepare_target(frame, "y", "classification")


@pytest.mark.parametrize(
    ("values", "task", "match"),
    [
        (
            ["a", "a", "a"],
            "classification",
            r"has a single class \('a' in all 3 rows\).*both outcomes",
        ),
        (
            ["a", "b", "a"],
            "regression",
            r"holds labels \('a', 'b'\), not numbers.*Set task: classification",
        ),
        ([True, False, True], "regression", r"holds labels \(True, False\), not numbers"),
        (
            list(np.linspace(0, 1, 50)),
            "classification",
            r"has 50 distinct numeric values.*Set task: regression",
        ),
        (
            ["a", "a", "b", "b", "c"],
            "classification",
            r"classes with a single example \('c'\).*Drop or merge",
        ),
        ([None, None, None], "classification", r"has no values: every row is missing"),
        ([2.5, 2.5, None], "regression", r"has the same value in every row"),
    ],
    ids=[
        "single-class",
        "regression-on-text",
        "regression-on-bool",
        "classification-on-continuous",
        "class-with-one-example",
        "all-missing",
        "constant-regression",
    ],
)
def test_unusable_target_is_a_target_error(values: list, task: str, match: str) -> None:
    frame = pd.DataFrame({"x": range(len(values)), "y": values})
    with pytest.raises(TargetError, match=match):
        prepare_target(frame, "y", task)


def test_rows_with_missing_target_are_dropped_and_counted() -> None:
    frame = pd.DataFrame(
        {"x": [10, 11, 12, 13, 14, 15], "y": pd.array([1, None, 0, 1, None, 0], dtype="Int64")}
    )
    kept, info = prepare_target(frame, "y", "classification")
    assert info.dropped_missing == 2
    assert kept["x"].tolist() == [10, 12, 13, 15]
    assert kept.index.tolist() == [0, 1, 2, 3]
    assert len(frame) == 6  # the caller's frame is left alone


def test_regression_target_keeps_numbers() -> None:
    frame = pd.DataFrame({"y": [1.5, np.nan, 2.5, 3.0]})
    kept, info = prepare_target(frame, "y", "regression")
    assert kept["y"].tolist() == [1.5, 2.5, 3.0]
    assert (info.task, info.classes, info.positive_class, info.dropped_missing) == (
        "regression",
        [],
        None,
        1,
    )
    assert not info.is_binary


def test_string_labels_are_stripped() -> None:
    frame = pd.DataFrame({"y": ["Yes", " No.", "No", "Yes ", "No ", "Yes."]})
    kept, info = prepare_target(frame, "y", "classification")
    assert info.classes == ["No", "Yes"]
    assert kept["y"].tolist() == ["Yes", "No", "No", "Yes", "No", "Yes"]
    assert info.positive_class == "Yes"


@pytest.mark.parametrize(
    ("values", "positive"),
    [
        ([True, False, False, True, False], True),
        (np.array([True, False, True, True, False]), True),
        (pd.array([True, False, None, True, False], dtype="boolean"), True),
        ([1, 0, 0, 1, 0], 1),
        (np.array([1, 0, 1, 1, 0], dtype=np.int32), 1),
        (["yes", "no", "no", "yes", "yes"], "yes"),
        (["Y", "N", "N", "Y", "N"], "Y"),
        ([" >50K.", "<=50K", "<=50K", ">50K", "<=50K"], ">50K"),
        (["cat", "dog", "dog", "cat", "dog"], "cat"),
        (["cat", "dog", "cat", "cat", "dog", "cat"], "dog"),
    ],
    ids=[
        "bool",
        "numpy-bool",
        "nullable-boolean",
        "int-1",
        "int32-1",
        "yes",
        "Y",
        ">50K",
        "rarer-cat",
        "rarer-dog",
    ],
)
def test_positive_class_reads_naturally(values: object, positive: object) -> None:
    _, info = prepare_target(pd.DataFrame({"y": values}), "y", "classification")
    assert info.is_binary
    assert info.positive_class == positive
    assert type(info.positive_class) is type(positive)


def test_multiclass_has_no_positive_class() -> None:
    _, info = prepare_target(pd.DataFrame({"y": list("aabbcc")}), "y", "classification")
    assert info.classes == ["a", "b", "c"]
    assert info.positive_class is None
    assert not info.is_binary


@pytest.mark.parametrize(
    "values",
    [
        np.array([True, False, True, False]),
        np.array([1, 0, 1, 0], dtype=np.int64),
        np.array([1.0, 0.0, 1.0, 0.0]),
        pd.array(["yes", "no", "yes", "no"], dtype="string"),
        pd.array([True, False, True, None, False], dtype="boolean"),
        np.array([3, 1, 2, 3, 2, 1], dtype=np.uint8),
    ],
    ids=["numpy-bool", "int64", "float", "string", "boolean", "uint8-multiclass"],
)
def test_target_info_is_json_serialisable(values: object) -> None:
    _, info = prepare_target(pd.DataFrame({"y": values}), "y", "classification")
    text = json.dumps(dataclasses.asdict(info))
    back = json.loads(text)
    assert back["classes"] == info.classes
    assert back["positive_class"] == info.positive_class


def test_float_one_is_the_positive_class() -> None:
    frame = pd.DataFrame({"y": [1.0] * 6 + [0.0] * 4 + [np.nan]})
    _, info = prepare_target(frame, "y", "classification")
    assert info.positive_class == 1.0


def test_unused_categories_are_not_classes() -> None:
    frame = pd.DataFrame({"y": pd.Categorical(["a", "b", "a", "b"], categories=["a", "b", "c"])})
    _, info = prepare_target(frame, "y", "classification")
    assert info.classes == ["a", "b"]


@pytest.mark.parametrize(("values", "shown"), [([True] * 3, "True"), ([1] * 3, "1")])
def test_single_class_message_shows_the_plain_label(values: list, shown: str) -> None:
    with pytest.raises(TargetError, match=rf"single class \({shown} in all 3 rows\)"):
        prepare_target(pd.DataFrame({"y": values}), "y", "classification")
