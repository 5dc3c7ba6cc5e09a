"""Where monitoring gets its data: the start of a window, and a window of a real prediction log."""

from __future__ import annotations

import json
import time
import types
from datetime import datetime, timezone
from pathlib import Path

import pytest

import nbops.serving.log as log_module
from nbops.errors import ConfigError
from nbops.monitoring.watch import column_types, default_log_url, load_log_window, since_from
from nbops.serving.log import PredictionLog, read_feedback, read_predictions

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# -- since_from -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2026-11-01", utc(2026, 11, 1)),
        ("2026-11-01T08:00:00Z", utc(2026, 11, 1, 8)),
        ("2026-11-01T08:00:00+02:00", utc(2026, 11, 1, 6)),
        ("2026-11-01T08:00:00", utc(2026, 11, 1, 8)),  # naive: UTC, not the machine's zone
        ("2026-11-01 08:30", utc(2026, 11, 1, 8, 30)),
    ],
)
def test_since_reads_an_iso_date_or_time(since: str, expected: float) -> None:
    assert since_from(None, since, now=T0) == expected
    assert since_from("24h", since, now=T0) == expected  # --since wins over the window


def test_without_since_the_window_counts_back_from_now() -> None:
    assert since_from("24h", None, now=T0) == T0 - DAY
    assert since_from("90m", "", now=T0) == T0 - 5400
    assert since_from(None, None, now=T0) == T0 - 7 * DAY  # the default window: 7d
    assert abs(since_from("1h", None) - (time.time() - 3600)) < 5  # now: the clock


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/11/2026"])
def test_a_since_it_cannot_read_is_a_config_error_naming_it(since: str) -> None:
    with pytest.raises(ConfigError, match=rf"--since '{since}' is not an ISO date or time"):
        since_from("7d", since, now=T0)


def test_a_window_it_cannot_read_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Window '7 days' is not understood"):
        since_from("7 days", None, now=T0)


# -- load_log_window ------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The prediction log's clock, set by the test (the writer thread keeps real timers)."""
    now = [T0]
    fake = types.SimpleNamespace(time=lambda: now[0], monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(log_module, "time", fake)
    return now


def request(
    log: PredictionLog,
    request_id: str,
    *,
    inputs: dict,
    outputs: dict,
    version: str = "3",
    route: str = "champion",
    model: str = "churn",
) -> None:
    log.record(
        request_id=request_id,
        model_name=model,
        model_version=version,
        route=route,
        latency_ms=2.0,
        inputs=inputs,
        outputs=outputs,
        n_rows=len(outputs["predictions"]),
    )


TWO_ROWS = {
    "inputs": {"records": [{"tenure": 3, "plan": "basic"}, {"tenure": 40, "plan": "pro"}]},
    "outputs": {
        "predictions": ["yes", "no"],
        "probabilities": [{"no": 0.2, "yes": 0.8}, {"no": 0.7, "yes": 0.3}],
    },
}
ONE_ROW = {
    "inputs": {"columns": {"tenure": [12], "plan": ["basic"]}},
    "outputs": {"predictions": ["no"], "probabilities": [{"no": 0.6, "yes": 0.4}]},
}


@pytest.fixture
def log_url(tmp_path: Path, clock: list[float]) -> str:
    """A log with a day of traffic for `churn` from T0, and requests around it."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url, flush_seconds=0.01)
    clock[0] = T0 - 60  # before the window
    request(log, "early", **TWO_ROWS)
    clock[0] = T0  # the first second of the window counts
    request(log, "r1", **TWO_ROWS)
    request(log, "r1", **TWO_ROWS, version="4", route="shadow")  # the challenger's shadow score
    clock[0] = T0 + 3600
    request(log, "r2", **ONE_ROW, version="4", route="challenger")  # canary traffic counts
    request(log, "other", **TWO_ROWS, model="fraud")  # another model
    clock[0] = T0 + 7200
    request(log, "r3", **ONE_ROW)
    clock[0] = T0 + DAY  # the end of the window is excluded
    request(log, "late", **ONE_ROW)
    log.close()

    log = PredictionLog(url)
    clock[0] = T0 + 100
    log.feedback("early", ["yes", "yes"])  # sent inside the window, for a request before it
    log.feedback("r1", ["yes", "yes"])
    clock[0] = T0 + 200
    log.feedback("r1", ["no", "no"])  # a correction: the latest wins
    log.feedback("other", ["no", "no"])
    clock[0] = T0 + 5000
    log.feedback("r2", ["yes"])
    log.close()  # r3 gets no feedback
    return url


def test_a_window_holds_the_served_rows_of_the_model_in_start_to_end(log_url: str) -> None:
    window = load_log_window(
        log_url, model_name="churn", start=T0, end=T0 + DAY, positive_class="yes"
    )
    assert window.predictions[["request_id", "row", "model_version", "route"]].values.tolist() == [
        ["r1", 0, "3", "champion"],
        ["r1", 1, "3", "champion"],
        ["r2", 0, "4", "challenger"],
        ["r3", 0, "3", "champion"],
    ]
    assert window.predictions["ts"].tolist() == [T0, T0, T0 + 3600, T0 + 7200]
    assert window.predictions["prediction"].tolist() == ["yes", "no", "no", "no"]
    assert window.predictions["score"].tolist() == [0.8, 0.3, 0.4, 0.4]
    assert window.inputs.to_dict(orient="records") == [
        {"tenure": 3, "plan": "basic"},
        {"tenure": 40, "plan": "pro"},
        {"tenure": 12, "plan": "basic"},
        {"tenure": 12, "plan": "basic"},
    ]


def test_feedback_is_joined_to_the_window(log_url: str) -> None:
    window = load_log_window(
        log_url, model_name="churn", start=T0, end=T0 + DAY, positive_class="yes"
    )
    assert window.labelled[["request_id", "row", "prediction", "label"]].values.tolist() == [
        ["r1", 0, "yes", "no"],
        ["r1", 1, "no", "no"],
        ["r2", 0, "no", "yes"],
    ]


def test_a_window_describes_itself_for_the_report(log_url: str) -> None:
    window = load_log_window(
        log_url, model_name="churn", start=T0, end=T0 + DAY, positive_class="yes"
    )
    assert window.describe() == {
        "source": "log",
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-02T00:00:00+00:00",
        "requests": 3,
        "rows": 4,
        "labelled_rows": 3,
        "rows_by_model_version": {"3": 3, "4": 1},
    }


def test_a_window_with_no_traffic_is_empty_not_an_error(log_url: str) -> None:
    window = load_log_window(
        log_url, model_name="churn", start=T0 + 2 * DAY, end=T0 + 3 * DAY, positive_class="yes"
    )
    assert window.describe() == {
        "source": "log",
        "start": "2026-01-03T00:00:00+00:00",
        "end": "2026-01-04T00:00:00+00:00",
        "requests": 0,
        "rows": 0,
        "labelled_rows": 0,
        "rows_by_model_version": {},
    }
    assert "label" in window.labelled.columns


def test_the_window_ends_now_by_default(log_url: str) -> None:
    before = time.time()
    window = load_log_window(log_url, model_name="churn", start=T0, positive_class="yes")
    assert before <= window.end <= time.time()
    assert window.requests == 4  # "late", at the end of the fixed window, is in the past now


def test_a_log_that_does_not_exist_says_nothing_has_been_served(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nonexistent.db'}"
    with pytest.raises(ConfigError, match="nothing has been served with this log yet"):
        read_predictions(url)
    with pytest.raises(ConfigError, match="nothing has been served with this log yet"):
        read_feedback(url)
    with pytest.raises(ConfigError, match=r"No prediction log at sqlite:///.*nonexistent\.db"):
        load_log_window(url, model_name="churn", start=T0, positive_class="yes")
    assert not (tmp_path / "nonexistent.db").exists()  # reading never creates the log


# -- default_log_url ------------------------------------------------------------------


def test_the_log_url_comes_from_nbops_prediction_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NBOPS_PREDICTION_LOG", "postgresql://monitor@db/predictions")
    assert default_log_url(tmp_path) == "postgresql://monitor@db/predictions"


def test_the_default_log_is_the_projects_nbops_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    expected = f"sqlite:///{(tmp_path / '.nbops' / 'predictions.db').resolve()}"
    assert default_log_url(tmp_path) == expected
    monkeypatch.setenv("NBOPS_PROJECT", str(tmp_path / "elsewhere"))
    assert default_log_url(tmp_path) == expected  # the root given wins
    monkeypatch.chdir(tmp_path)
    assert default_log_url(Path(".")) == expected  # absolute, wherever the notebook runs


def test_a_batch_file_is_typed_by_the_roles_the_model_was_trained_with() -> None:
    roles = [
        {"column": "tenure", "role": "numeric"},
        {"column": "paperless", "role": "boolean"},
        {"column": "joined", "role": "datetime"},
        {"column": "plan", "role": "categorical"},
        {"column": "city", "role": "high_cardinality"},
        {"column": "customer_id", "role": "drop"},  # not a model input: typed by its values
    ]
    assert column_types(json.dumps({"roles": roles, "target": {}})) == {
        "tenure": "number",
        "paperless": "boolean",
        "joined": "datetime",
        "plan": "text",
        "city": "text",
    }


# -- --scheduler and --chunk-rows: named before the monitoring build runs ------------------------


@pytest.fixture
def monitored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with the monitoring pipeline and a batch file (no build: every
    case here fails before the pipeline would run)."""
    import shutil

    from nbops.data.datasets import make_churn

    repo = Path(__file__).resolve().parents[2]
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pipeline.yaml", "pipeline.monitor.yaml", "env.yaml"):
        shutil.copy(repo / name, root / name)
    make_churn(20, seed=3).to_parquet(root / "batch.parquet")
    make_churn(20, seed=3).to_csv(root / "batch.csv", index=False)
    monkeypatch.chdir(root)
    return root


def _monitor(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from nbops.cli import main

    result = CliRunner().invoke(main, ["monitor", *args])
    return result.exit_code, result.output


def test_an_unreachable_scheduler_is_one_paragraph_not_an_alarm(
    monitored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops import cluster
    from tests.conftest import free_port

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there

    code, output = _monitor("--data", "batch.parquet", "--scheduler", address)

    assert code == 2  # 1 would read as a breach
    assert output.startswith(f"Error: Cannot reach the Dask scheduler at {address}")
    assert "leave out --scheduler to monitor the file on this machine." in output
    assert len(output.strip().splitlines()) == 1
    assert not (monitored / "products").exists()  # no monitoring build was started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler applies to a batch file: add --data"),
        (
            ["--data", "batch.csv", "--scheduler", "tcp://127.0.0.1:1"],
            "splits a Parquet file by its row groups, and 'batch.csv' is text",
        ),
        (["--data", "batch.parquet", "--chunk-rows", "0"], "--chunk-rows is 0"),
    ],
)
def test_batch_options_that_cannot_work_are_named(
    monitored: Path, args: list[str], message: str
) -> None:
    code, output = _monitor(*args)
    assert code == 2 and message in output, output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "s3://ada:hunter2pw@bucket/new.parquet"],
            "--data s3://ada:***REDACTED***@bucket/new.parquet is a URL",
        ),
        (
            ["--data", "batch.parquet", "--scheduler", "tls://ada:hunter2pw@127.0.0.1:9"],
            "The --scheduler address has a user name, password or token in it",
        ),
    ],
    ids=["data-url", "scheduler-with-credentials"],
)
def test_credentials_in_a_url_are_refused_unshown_before_the_build(
    monitored: Path, args: list[str], message: str
) -> None:
    """Resolved as a path, a URL's ``://`` was gone and its password went into the
    build's parameters, the window notebook's error and its report, unredacted."""
    code, output = _monitor(*args)
    assert code == 2 and message in output, output
    assert "hunter2pw" not in output
    assert not (monitored / "products").exists()  # no monitoring build was started


def test_a_tracking_store_that_is_away_is_named_without_its_password_before_the_build(
    monitored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ada:hunter2pw@127.0.0.1:{free_port()}")

    code, output = _monitor("--data", "batch.parquet")

    assert code == 2 and "The tracking store is not available: http://ada:***REDACTED***@" in output
    assert "hunter2pw" not in output and len(output.strip().splitlines()) == 1
    assert not (monitored / "products").exists()  # no monitoring build was started
