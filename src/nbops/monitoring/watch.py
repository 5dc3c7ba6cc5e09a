"""Where monitoring gets its data: the serving model's reference profile (from the
registry), a window of the prediction log, or a batch file scored by the model.

The integration side of monitoring; the statistics are in :mod:`nbops.monitoring.drift` and the
alarm logic in :mod:`nbops.monitoring.live`. Used by the monitoring notebooks
(``notebooks/monitor/``) and ``nbops monitor``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.errors import ConfigError, ReleaseError
from nbops.monitoring.drift import Profile
from nbops.monitoring.live import labelled, parse_window, requests_to_rows

if TYPE_CHECKING:  # imported where used: the gate's module pulls in scikit-learn
    from nbops.release.gate import ReleaseDecision

__all__ = [
    "MonitorRun",
    "Window",
    "column_types",
    "default_log_url",
    "load_batch",
    "load_log_window",
    "retrain",
    "run_monitoring",
    "serving_reference",
]

PROFILE_FILE = "reference_profile.json"


@dataclass
class Window:
    """The data one monitoring run looks at."""

    source: str  # "log" or the batch file's path
    start: float | None  # epoch seconds
    end: float
    inputs: pd.DataFrame  # one row per predicted row, the model's input columns
    predictions: pd.DataFrame  # request_id, row, ts, model_version, route, prediction, score
    labelled: pd.DataFrame  # predictions with a `label` column (feedback or batch labels)
    requests: int

    def describe(self) -> dict[str, Any]:
        versions = (
            self.predictions["model_version"].value_counts().to_dict()
            if not self.predictions.empty
            else {}
        )
        return {
            "source": self.source,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "requests": self.requests,
            "rows": len(self.inputs),
            "labelled_rows": len(self.labelled),
            "rows_by_model_version": {str(k): int(v) for k, v in versions.items()},
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def default_log_url(root: Path) -> str:
    """``NBOPS_PREDICTION_LOG``, else the project's ``.nbops/predictions.db`` (as served)."""
    from nbops.serving.settings import Settings

    return Settings.from_env(root=root).prediction_log_url


def serving_reference(root: Path, model_name: str, alias: str) -> tuple[str, Profile]:
    """(version, reference profile) of the model version holding ``alias``."""
    from nbops.tracking.registry import Registry

    registry = Registry(root)
    version = registry.alias(model_name, alias)
    if version is None:
        raise ReleaseError(
            f"Model '{model_name}' has no {alias}: there is nothing in production to monitor. "
            f"See `nbops models`; a build that passes the gate sets it."
        )
    files = registry.files(model_name, version.version, (PROFILE_FILE,))
    if PROFILE_FILE not in files:
        raise ReleaseError(
            f"Model '{model_name}' version {version.version} has no reference profile (it was registered "
            "before nbops computed one at training). Run `make build` to register a new version, then monitor that."
        )
    return version.version, Profile.from_dict(json.loads(files[PROFILE_FILE]))


def since_from(window: str | None, since: str | None, *, now: float | None = None) -> float:
    """The start of the window: ``since`` (an ISO date or time) wins over ``window``."""
    now = time.time() if now is None else now
    if since:
        try:
            parsed = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(
                f"--since {since!r} is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T08:00:00Z."
            ) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return now - parse_window(window or "7d").total_seconds()


def load_log_window(
    url: str,
    *,
    model_name: str,
    start: float,
    positive_class: str | None,
    end: float | None = None,
) -> Window:
    """The requests logged for ``model_name`` since ``start`` (shadow scores excluded)."""
    from nbops.serving.log import read_feedback, read_predictions

    end = time.time() if end is None else end
    logged = read_predictions(url, since=start, until=end, model_name=model_name)
    inputs, predictions = requests_to_rows(logged, positive_class=positive_class)
    feedback = read_feedback(url, since=start)
    return Window(
        "log", start, end, inputs, predictions, labelled(predictions, feedback), len(logged)
    )


def load_batch(
    path: str | Path,
    *,
    root: Path,
    model_name: str,
    alias: str,
    target: str | None,
    positive_class: str | None,
) -> Window:
    """A batch file (CSV, TSV or Parquet) scored by the serving model; its ``target``
    column, when present, gives live metrics. Its columns are typed as the model's
    training data was (:func:`column_types`), not by their own values."""
    from nbops.data.sources import read_table
    from nbops.tracking.registry import Registry

    if not Path(path).exists():
        raise ConfigError(
            f"Batch file {path} does not exist: pass a CSV or Parquet file with --data."
        )
    version, model, files = Registry(root).load_with(model_name, alias, ("features.json",))
    types = column_types(files["features.json"]) if "features.json" in files else None
    frame = read_table(path, target=target, types=types).frame
    inputs = frame.drop(columns=[target]) if target and target in frame.columns else frame
    now = time.time()
    predictions = pd.DataFrame(
        {
            "request_id": "batch",
            "row": np.arange(len(frame)),
            "ts": now,
            "model_version": version.version,
            "route": "batch",
        }
    )
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(inputs)
        classes = [str(c) for c in model.classes_]
        predictions["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
        positive = classes.index(positive_class) if positive_class in classes else None
        predictions["score"] = proba[:, positive] if positive is not None else np.nan
    else:
        predictions["prediction"] = model.predict(inputs)
        predictions["score"] = predictions["prediction"].astype(float)
    scored = predictions.iloc[0:0].assign(label=pd.Series(dtype=object))
    if target and target in frame.columns:
        scored = predictions.assign(label=frame[target].to_numpy())
    return Window(str(path), None, now, inputs, predictions, scored, len(frame))


#: How a batch file's column is typed, by the role the model gave it.
_ROLE_TYPES = {
    "numeric": "number",
    "boolean": "boolean",
    "datetime": "datetime",
    "categorical": "text",
    "high_cardinality": "text",
}


def column_types(features_json: str) -> dict[str, str]:
    """The types of the model's input columns (for :func:`nbops.data.sources.read_table`),
    from the ``features.json`` registered with it: a batch file is typed as the training
    data was, whatever its own values look like."""
    roles = json.loads(features_json)["roles"]
    return {r["column"]: _ROLE_TYPES[r["role"]] for r in roles if r["role"] in _ROLE_TYPES}


def project_root_from_env() -> Path:
    """The project folder (for notebooks run by Ploomber from the project)."""
    from nbops.project import project_root

    return project_root(Path(os.environ.get("NBOPS_PROJECT", ".")))


# -- running the monitoring pipeline -----------------------------------------------------

MONITOR_SPEC = "pipeline.monitor.yaml"


@dataclass
class MonitorRun:
    ok: bool  # the monitoring build succeeded
    decision: dict[str, Any]  # products/monitor/decision.json (empty when not ok)
    drift: dict[str, Any]  # products/monitor/drift.json (empty when not ok)
    output: str  # ploomber's output, for a failed build


def run_monitoring(
    root: Path,
    *,
    window: str | None = None,
    since: str | None = None,
    data: str | None = None,
    alias: str | None = None,
    model_name: str | None = None,
) -> MonitorRun:
    """Build ``pipeline.monitor.yaml`` (forced: the log moves) as a recorded run in the
    experiment ``<project>-monitoring``; return its decision. ``model_name`` replaces
    env.yaml's ``release.model_name`` for this run."""
    import subprocess
    import sys

    from nbops.tracking.store import experiment_name

    if not (root / MONITOR_SPEC).is_file():
        raise ConfigError(
            f"No {MONITOR_SPEC} in {root}: monitoring needs the monitoring pipeline next to pipeline.yaml "
            "(see the nbops template)."
        )
    if window or since:
        since_from(window, since)  # a typo fails here, not inside a notebook
    overrides = {"window": window, "since": since, "alias": alias}
    if data:
        overrides["data"] = str(Path(data).resolve())
    args = [str(Path(sys.executable).parent / "ploomber"), "build", "-e", MONITOR_SPEC, "--force"]
    for key, value in overrides.items():
        if value:
            args += [f"--env--monitor--{key}", str(value)]
    if model_name:
        args += ["--env--release--model_name", model_name]
    env = dict(os.environ)
    env["NBOPS_EXPERIMENT"] = f"{experiment_name(root)}-monitoring"
    result = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
    products = root / "products" / "monitor"
    if result.returncode != 0 or not (products / "decision.json").is_file():
        return MonitorRun(False, {}, {}, result.stdout[-6000:] + result.stderr[-6000:])
    return MonitorRun(
        True,
        json.loads((products / "decision.json").read_text()),
        json.loads((products / "drift.json").read_text()),
        "",
    )


def retrain(root: Path) -> tuple[int, ReleaseDecision | None]:
    """A training build tagged ``trigger=drift`` on the project's configured data; the
    gate judges its model as usual. Returns (exit code, the gate's decision)."""
    import subprocess
    import sys

    env = dict(os.environ, NBOPS_TRIGGER="drift")
    code = subprocess.run(
        [str(Path(sys.executable).parent / "ploomber"), "build"], cwd=root, env=env
    ).returncode
    from nbops.release.gate import ReleaseDecision

    decision = root / "products" / "release" / "decision.json"
    if code != 0 or not decision.is_file():
        return code, None
    return code, ReleaseDecision.from_dict(json.loads(decision.read_text()))
