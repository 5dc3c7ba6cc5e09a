"""Model outputs → the training labels, exactly as ``GET /model`` lists them.

The estimator's ``classes_`` are whatever scikit-learn made of the target column: a
true/false target with missing values trained as floats gives ``0.0``/``1.0``. Clients
know the labels of their file, which the build recorded (``features.json`` → the
model's ``classes``, listed by ``GET /model``), so answers use those: each prediction is
one of them, and each row's probabilities are keyed by them. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["label_names", "relabel"]


def label_names(estimator_classes: Sequence[Any], training_classes: Sequence[Any]) -> list[str]:
    """For each of the estimator's classes, the training label it stands for, as text.

    A class matches the training label equal to it (``1.0 == True``, ``1 == 1.0``) or
    written the same; without recorded labels, the estimator's own are used.
    """
    names = []
    for c in estimator_classes:
        match = next((t for t in training_classes if _same(t, c)), c)
        names.append(str(match))
    return names


def _same(label: Any, cls: Any) -> bool:
    try:
        if label == cls:
            return True
    except (TypeError, ValueError):  # numpy scalars compared with odd types
        pass
    return str(label) == str(cls)


def relabel(
    result: dict[str, Any], estimator_classes: Sequence[Any], training_classes: Sequence[Any]
) -> dict[str, Any]:
    """A classifier's ``{"predictions", "probabilities"}`` with the training labels."""
    if "probabilities" not in result:
        return result  # regression: numbers
    own = [str(c) for c in estimator_classes]
    names = label_names(estimator_classes, training_classes)
    to_label = dict(zip(own, names, strict=True))
    predictions = [to_label.get(str(p), str(p)) for p in result["predictions"]]
    probabilities = result["probabilities"]
    if names != own:
        probabilities = [
            {to_label[key]: p for key, p in row.items()} for row in result["probabilities"]
        ]
    return {**result, "predictions": predictions, "probabilities": probabilities}
