"""Every metric nbops reports, which direction is better, and each task's default.

The one description of the metrics: evaluation computes them, the gate and the monitor
compare them, the build summary lists them in this order. No scikit-learn here, so the
release step and the summary can read it without importing it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PRIMARY", "GREATER_IS_BETTER"]

#: Every metric nbops reports (in the order reports list them), and whether greater is better.
GREATER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,
    "accuracy": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
#: The primary metric of each task unless env.yaml names one.
DEFAULT_PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
