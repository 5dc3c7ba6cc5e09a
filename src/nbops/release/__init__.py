"""Stage 3, release: does this build's model replace the one in production?

- ``gate``: the decision, with statistics (paired bootstrap, floors); pure;
- ``prepare``: what the gate notebook needs around it: the champion (from the
  registry, through :mod:`nbops.tracking`), both models' scores, slices, the model card.

Before 0.2 ``nbops.release`` was the module now named ``nbops.release.prepare``; its
names still resolve here, with a warning, for notebooks written against 0.1.
"""

from __future__ import annotations

import warnings
from typing import Any

_PREPARE = (
    "Champion",
    "GateScores",
    "find_champion",
    "gate_scores",
    "model_card",
    "release_requirements",
    "slice_drops",
)


def __getattr__(name: str) -> Any:
    if name in _PREPARE:
        warnings.warn(
            f"nbops.release.{name} moved to nbops.release.prepare.{name}; the old name goes away in 0.3.",
            FutureWarning,
            stacklevel=2,
        )
        from nbops.release import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module 'nbops.release' has no attribute {name!r}")
