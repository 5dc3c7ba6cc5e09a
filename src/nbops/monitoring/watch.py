"""Where monitoring gets its data: the serving model's reference profile (from the
registry), a window of the prediction log, or a batch file scored by the model.

A batch file is read, scored and counted against the profile a part at a time (Parquet
row groups, CSV chunks; :func:`batch_window`), on this machine or on the workers of a
``dask.distributed`` cluster, and the parts' counts are merged in the file's order
(:class:`nbops.monitoring.drift.WindowCounts`): the file's rows are never all in memory,
and both routes run the same code on the same parts, so they give the same figures.

The integration side of monitoring; the statistics are in :mod:`nbops.monitoring.drift` and the
alarm logic in :mod:`nbops.monitoring.live`. Used by the monitoring notebooks
(``notebooks/monitor/``) and ``nbops monitor``.

The serving model's version, reference profile and model are read from the project's
embedded store without MLflow when it is one (:func:`nbops.tracking.registry.load_version`,
as ``nbops serve`` and ``nbops score`` read them): importing MLflow and opening its store
cost the window's kernel 1.5 s of CPU, and made skops' import slower still. numpy,
pandas and the statistics are imported where used, so ``nbops monitor``, which only
starts the monitoring build, does not import them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import ConfigError, ReleaseError

if TYPE_CHECKING:  # imported where used: the gate's module pulls in scikit-learn
    import pandas as pd

    from nbops.monitoring.drift import Profile, WindowCounts
    from nbops.release.gate import ReleaseDecision

    Part = tuple[WindowCounts, pd.DataFrame, pd.DataFrame]

__all__ = [
    "MonitorRun",
    "Window",
    "batch_window",
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
    #: the inputs counted against the reference profile (a batch file's, merged over its
    #: parts; its ``inputs`` are then left empty)
    counts: WindowCounts | None = None

    def counted(self, reference: Profile) -> WindowCounts:
        """The window's inputs and served outputs counted against ``reference`` (what
        :func:`nbops.monitoring.drift.compare_counts` judges)."""
        from nbops.monitoring.drift import count

        if self.counts is not None:
            return self.counts
        return count(reference, self.inputs, predictions=_served(self.predictions))

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
            "rows": self.counts.rows if self.counts is not None else len(self.inputs),
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
    from nbops.monitoring.drift import Profile
    from nbops.tracking.registry import alias_version, version_files

    version = alias_version(root, model_name, alias)
    if version is None:
        raise ReleaseError(
            f"Model '{model_name}' has no {alias}: there is nothing in production to monitor. "
            f"See `nbops models`; a build that passes the gate sets it."
        )
    files = version_files(root, model_name, version.version, (PROFILE_FILE,))
    if PROFILE_FILE not in files:
        raise ReleaseError(
            f"Model '{model_name}' version {version.version} has no reference profile (it was registered "
            "before nbops computed one at training). Run `make build` to register a new version, then monitor that."
        )
    return version.version, Profile.from_dict(json.loads(files[PROFILE_FILE]))


def since_from(window: str | None, since: str | None, *, now: float | None = None) -> float:
    """The start of the window: ``since`` (an ISO date or time) wins over ``window``."""
    from nbops.monitoring.windows import parse_window

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
    from nbops.monitoring.live import labelled, requests_to_rows
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
    import numpy as np
    import pandas as pd

    from nbops.data.sources import read_table
    from nbops.tracking.registry import load_version

    if not Path(path).exists():
        raise ConfigError(
            f"Batch file {path} does not exist: pass a CSV or Parquet file with --data."
        )
    version, model, files = load_version(root, model_name, alias, ("features.json",))
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


def _served(predictions: pd.DataFrame) -> Any:
    """What the reference profile's prediction sketch holds: the positive class's
    probability (or the predicted number) when there is one, else the label as text."""
    if not len(predictions):
        return None
    if predictions["score"].notna().any():
        return predictions["score"]
    return predictions["prediction"].astype(str)


#: Rows per part of a batch file: Parquet row groups are joined up to at least this
#: many, CSV files are read this many rows at a time.
PART_ROWS = 262_144
_HERE = "monitor the file on this machine"


def batch_window(
    path: str | Path,
    *,
    root: Path,
    model_name: str,
    version: str,
    reference: Profile,
    target: str | None,
    positive_class: str | None,
    scheduler: str | None = None,
    part_rows: int | None = None,
) -> Window:
    """A batch file (CSV, TSV or Parquet) scored by ``model_name`` ``version`` and
    counted against ``reference``, a part at a time (see the module docstring).

    Each part is typed as the model's training data was (:func:`column_types`), scored,
    and counted; its target column, when present, gives live metrics. The result keeps
    the counts and one narrow row of predictions per input row, never the inputs.

    Args:
        scheduler: a ``dask.distributed`` scheduler (``tcp://HOST:PORT``): the Parquet
            file's parts are scored and counted on its workers, each loading the model
            version from the registry (hash checked). Workers need nbops installed and
            the project and the file at the same paths as here.
        part_rows: rows per part (default :data:`PART_ROWS`).

    Raises:
        ConfigError: the file does not exist, or the scheduler cannot be reached or the
            file is not Parquet (with ``scheduler``).
        DataSourceError: the file is empty, of an unknown kind or unreadable.
    """
    import pandas as pd

    from nbops import cluster
    from nbops.data.sources import check_file, read_parts

    if not Path(path).exists():
        raise ConfigError(
            f"Batch file {path} does not exist: pass a CSV or Parquet file with --data."
        )
    source = check_file(
        path,
        fix="Pass a CSV or Parquet file of new data with --data.",
        empty="Export the data again, or pass another file with --data.",
    )
    rows = int(part_rows or PART_ROWS)  # an env.yaml override may come as text
    now = time.time()
    job = {
        "root": str(root),
        "model_name": model_name,
        "version": version,
        "path": str(source),
        "reference": reference.to_dict(),
        "target": target,
        "positive_class": positive_class,
        "now": now,
    }
    parquet = source.suffix.lower() in {".parquet", ".pq"}
    if scheduler:
        cluster.require_parquet(source, here=_HERE)
        parts = _on_cluster(scheduler, job, cluster.parquet_parts(source, rows))
    elif parquet:
        parts = (
            _parquet_part(job, groups, offset)
            for groups, offset in cluster.parquet_parts(source, rows)
        )
    else:
        parts = _csv_parts(job, read_parts(source, rows=rows))
    counts: WindowCounts | None = None
    predictions: list[pd.DataFrame] = []
    labelled_parts: list[pd.DataFrame] = []
    for part_counts, part_predictions, part_labelled in parts:
        # merged in the file's order: the float tail sums add up the same way every run
        counts = part_counts if counts is None else counts.merge(part_counts)
        predictions.append(part_predictions)
        labelled_parts.append(part_labelled)
    if counts is None or counts.rows == 0:
        from nbops.errors import DataSourceError

        raise DataSourceError(
            f"Batch file '{source}' has a header but no data rows: nothing to monitor. "
            "Export the data again, or pass another file with --data."
        )
    frame = pd.concat(predictions, ignore_index=True)
    labelled_rows = pd.concat(labelled_parts, ignore_index=True)
    return Window(str(path), None, now, pd.DataFrame(), frame, labelled_rows, counts.rows, counts)


def _on_cluster(address: str, job: dict[str, Any], parts: list[tuple[list[int], int]]) -> Any:
    """The parts on the cluster's workers; their results in the file's order."""
    from nbops import cluster

    client = cluster.connect(address, here=_HERE)
    futures: list[Any] = []
    try:
        futures = [
            client.submit(_parquet_part, job, groups, offset, pure=False)
            for groups, offset in parts
        ]
        for future in futures:
            yield cluster.part_result(future, address, needs="the project and the batch file")
    finally:
        if futures:
            client.cancel(futures)
        client.close()


def _model(job: dict[str, Any]) -> tuple[Any, dict[str, str] | None]:
    """The model version of the job, hash checked, and its input types; once per process."""
    from nbops.cluster import on_worker
    from nbops.tracking.registry import load_version

    def load() -> tuple[Any, dict[str, str] | None]:
        root = Path(job["root"])
        _, model, files = load_version(root, job["model_name"], job["version"], ("features.json",))
        return model, column_types(files["features.json"]) if "features.json" in files else None

    return on_worker(("monitor", job["root"], job["model_name"], job["version"]), load)


def _parquet_part(job: dict[str, Any], groups: list[int], offset: int) -> Part:
    """Some row groups of the file, scored and counted (here or on a worker)."""
    from nbops.data.sources import read_parts

    (frame,) = read_parts(Path(job["path"]), rows=0, groups=groups)
    return _count_part(job, frame, offset)


def _csv_parts(job: dict[str, Any], frames: Any) -> Any:
    offset = 0
    for frame in frames:
        yield _count_part(job, frame, offset)
        offset += len(frame)


def _count_part(job: dict[str, Any], frame: pd.DataFrame, offset: int) -> Part:
    """One part of a batch file: typed, scored, counted against the reference profile."""
    import numpy as np
    import pandas as pd

    from nbops.data.sources import clean_frame
    from nbops.monitoring.drift import Profile, count

    model, types = _model(job)
    target = job["target"]
    frame, _ = clean_frame(frame, target=target, types=types)
    inputs = frame.drop(columns=[target]) if target and target in frame.columns else frame
    predictions = _scored(
        model,
        inputs,
        positive_class=job["positive_class"],
        offset=offset,
        version=job["version"],
        now=job["now"],
    )
    reference = Profile.from_dict(job["reference"])
    # an empty part (a Parquet row group of no rows) counts no predictions, not None
    served = _served(predictions) if len(predictions) else np.empty(0)
    counts = count(reference, inputs, predictions=served)
    labelled = predictions.iloc[0:0].assign(label=pd.Series(dtype=object))
    if target and target in frame.columns:
        labelled = predictions.assign(label=frame[target].to_numpy())
    return counts, predictions, labelled


def _scored(
    model: Any,
    inputs: pd.DataFrame,
    *,
    positive_class: str | None,
    offset: int,
    version: str,
    now: float,
) -> pd.DataFrame:
    """One row per input row: request_id, row, ts, model_version, route, prediction, score."""
    import numpy as np
    import pandas as pd

    predictions = pd.DataFrame(
        {
            "request_id": "batch",
            "row": np.arange(offset, offset + len(inputs)),
            "ts": now,
            "model_version": version,
            "route": "batch",
        }
    )
    if not len(inputs):
        return predictions.assign(prediction=pd.Series(dtype=object), score=np.nan)
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(inputs)
        classes = [str(c) for c in model.classes_]
        predictions["prediction"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        positive = classes.index(positive_class) if positive_class in classes else None
        predictions["score"] = proba[:, positive] if positive is not None else np.nan
    else:
        predictions["prediction"] = model.predict(inputs)
        predictions["score"] = predictions["prediction"].astype(float)
    return predictions


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
    scheduler: str | None = None,
    chunk_rows: int | None = None,
) -> MonitorRun:
    """Build ``pipeline.monitor.yaml`` (forced: the log moves) as a recorded run in the
    experiment ``<project>-monitoring``; return its decision. ``model_name`` replaces
    env.yaml's ``release.model_name`` for this run; ``scheduler`` counts the ``data``
    file on a Dask cluster (:func:`batch_window`), ``chunk_rows`` rows per part.

    Raises:
        ConfigError: no monitoring pipeline; a window, ``--scheduler`` or ``--chunk-rows``
            that cannot work; no prediction log yet (checked here, before a notebook runs).
        TrackingError: the tracking store (a remote one) does not answer.
    """
    import subprocess
    import sys

    from nbops.tracking.store import experiment_name

    spec = root / MONITOR_SPEC
    if not spec.is_file():
        raise ConfigError(
            f"No {MONITOR_SPEC} in {root}: monitoring needs the monitoring pipeline next to pipeline.yaml "
            "(see the nbops template)."
        )
    if window or since:
        since_from(window, since)  # a typo fails here, not inside a notebook
    overrides: dict[str, Any] = {"window": window, "since": since, "alias": alias}
    if data:
        from nbops.tracking.redact import refuse_url

        refuse_url(data, name="--data", command="nbops monitor", error=ConfigError)
        overrides["data"] = str(Path(data).resolve())
    if scheduler or chunk_rows is not None:
        _check_batch_options(root, spec, data, scheduler, chunk_rows)
        overrides |= {"scheduler": scheduler, "chunk_rows": chunk_rows}
    if not data and not _batch_in_settings(root):
        from nbops.serving.log import require_log

        require_log(default_log_url(root))  # no log yet: say so before a build starts
    from nbops.tracking.store import require_reachable

    # The model and its profile come from the store: one that is away is one paragraph
    # here, its password hidden, not MLflow's traceback in the window notebook's report.
    require_reachable(root)
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


def _batch_in_settings(root: Path) -> bool:
    """Whether env.yaml names a batch file to monitor (``monitor.data``) instead of the log."""
    import yaml

    try:
        env = yaml.safe_load((root / "env.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return True  # the build reads env.yaml itself and says what is wrong with it
    monitor = env.get("monitor") if isinstance(env, dict) else None
    return bool(isinstance(monitor, dict) and monitor.get("data"))


def _check_batch_options(
    root: Path, spec: Path, data: str | None, scheduler: str | None, chunk_rows: int | None
) -> None:
    """``--scheduler`` and ``--chunk-rows`` apply to a batch file, in a project whose
    monitoring pipeline takes them; the scheduler must answer (a one-paragraph error
    here, not a failed notebook)."""
    option = "--scheduler" if scheduler else "--chunk-rows"
    if not data:
        raise ConfigError(
            f"{option} applies to a batch file: add --data FILE.parquet (the prediction log "
            "is read on this machine)."
        )
    if "{{monitor.scheduler}}" not in spec.read_text():
        raise ConfigError(
            f"This project's {MONITOR_SPEC} predates {option}: copy pipeline.monitor.yaml, "
            "notebooks/monitor/ and the monitor section of env.yaml from a new project "
            "(`nbops init`), or leave out the option."
        )
    if chunk_rows is not None and chunk_rows < 1:
        raise ConfigError(f"--chunk-rows is {chunk_rows}: give a number of rows of at least 1.")
    if scheduler:
        from nbops import cluster

        cluster.require_parquet(Path(data), here=_HERE)
        cluster.connect(scheduler, here=_HERE).close()


def retrain(root: Path) -> tuple[int, ReleaseDecision | None]:
    """A training build tagged ``trigger=drift`` on the project's configured data; the
    gate judges its model as usual. Returns (exit code, the gate's decision).

    The build is forced: Ploomber reruns a task when its code or parameters change, not
    when the data behind an unchanged path or query does, and retraining is for the data
    as it is now (a build with nothing to do would also judge nothing and record nothing).
    """
    import subprocess
    import sys

    env = dict(os.environ, NBOPS_TRIGGER="drift")
    code = subprocess.run(
        [str(Path(sys.executable).parent / "ploomber"), "build", "--force"], cwd=root, env=env
    ).returncode
    from nbops.release.gate import ReleaseDecision

    decision = root / "products" / "release" / "decision.json"
    if code != 0 or not decision.is_file():
        return code, None
    return code, ReleaseDecision.from_dict(json.loads(decision.read_text()))
