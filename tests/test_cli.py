"""The ``nbops`` command line, invoked in-process with click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner, Result

import nbops
from nbops.cli import main
from nbops.data import datasets
from nbops.data.schema import load_schema, validate
from nbops.data.sources import read_table


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,amount,region,signup,active,code\n"
        "1,1.5,NA,2024-01-05,yes,01234\n"
        "2,,EU,01/06/2024,no,00042\n"
        "3,2.25,NA,2024/01/07 10:30,yes,12345\n"
        "4,3,US,2024-01-08,no,00001\n"
    )
    return path


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Commands:" in result.stdout
    for command in ("schema", "data"):
        assert f"  {command} " in result.stdout
    assert "--verbose" in result.stdout


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("schema", "--help"), "infer"),
        (
            ("schema", "infer", "--help"),
            "Example:\n    nbops schema infer data/customers.csv --target Churn",
        ),
        (("data", "--help"), "generate"),
        (("data", "generate", "--help"), "Example:\n    nbops data generate"),
        (("score", "--help"), "Example:\n    nbops score data/customers.csv --out"),
    ],
)
def test_subcommand_help(args: tuple[str, ...], shown: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 0
    assert shown in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"nbops, version {nbops.__version__}\n"


def test_schema_infer_prints_yaml_that_load_schema_accepts(tmp_path: Path, messy_csv: Path) -> None:
    result = invoke("schema", "infer", str(messy_csv))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert yaml.safe_load(result.stdout)["columns"]["region"]["isin"] == ["EU", "NA", "US"]
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(result.stdout)  # what `> schema.yaml` would write
    schema = load_schema(schema_path)
    assert validate(read_table(messy_csv).frame, schema).ok


def test_schema_infer_types_the_target_as_ingest_does(tmp_path: Path, messy_csv: Path) -> None:
    # A yes/no target keeps its labels as written (ingest's rule); without --target the
    # draft would demand booleans and the first build would fail validation.
    result = invoke("schema", "infer", str(messy_csv), "--target", "active")
    assert result.exit_code == 0, result.output
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(result.stdout)
    assert yaml.safe_load(result.stdout)["columns"]["active"]["dtype"] != "boolean"
    assert validate(read_table(messy_csv, target="active").frame, load_schema(schema_path)).ok

    wrong = invoke("schema", "infer", str(messy_csv), "--target", "Active")
    assert wrong.exit_code == 2 and "'Active' is not a column" in wrong.stderr


def test_schema_infer_bundled(tmp_path: Path) -> None:
    result = invoke("schema", "infer", "bundled", "--rows", "200")
    assert result.exit_code == 0
    assert "Drafted by `nbops schema infer bundled`" in result.stdout
    (tmp_path / "s.yaml").write_text(result.stdout)
    assert validate(datasets.make_churn(200), load_schema(tmp_path / "s.yaml")).ok


def test_known_error_is_one_paragraph_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    result = invoke("schema", "infer", str(missing))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: Data file '{missing}' does not exist")
    assert result.stderr.count("\n") == 1  # one paragraph, one line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_shows_the_traceback(tmp_path: Path, flag: str) -> None:
    result = invoke(flag, "schema", "infer", str(tmp_path / "missing.csv"))
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DataSourceError" in result.stderr
    assert "Error: Data file" in result.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_data_generate_writes_the_rows(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "data" / f"churn{suffix}"
    result = invoke("data", "generate", str(out), "--rows", "100")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote 100 rows to {out}\n"
    assert len(read_table(out).frame) == 100
    if suffix == ".parquet":
        assert pq.ParquetFile(out).metadata.num_rows == 100


def test_data_generate_passes_seed_and_drift(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def fake_write(path: str, rows: int, *, seed: int, drift: float) -> Path:
        calls.append((path, rows, seed, drift))
        return Path(path)

    monkeypatch.setattr(datasets, "write_churn", fake_write)
    out = str(tmp_path / "x.parquet")
    result = invoke("data", "generate", out, "--rows", "12", "--seed", "7", "--drift", "0.5")
    assert result.exit_code == 0
    assert calls == [(out, 12, 7, 0.5)]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--rows", "0", "Invalid value for --rows: must be at least 1"),
        ("--rows", "-3", "Invalid value for --rows: must be at least 1"),
        ("--drift", "-1", "Invalid value for --drift: must be 0 or more"),
        ("--rows", "many", "Invalid value for '--rows'"),
    ],
)
def test_data_generate_rejects_bad_options(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "out.parquet"
    result = invoke("data", "generate", str(out), option, value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_schema_infer_bundled_rejects_zero_rows() -> None:
    result = invoke("schema", "infer", "bundled", "--rows", "0")
    assert result.exit_code in (1, 2)
    assert isinstance(result.exception, SystemExit)
    assert "Error:" in result.stderr and "--rows" in result.stderr


def test_serve_never_prints_the_prediction_log_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append(app))
    # No registry here: the startup line is what this test reads, not the model check.
    monkeypatch.setattr("nbops.cli._require_served", lambda model, alias: None)
    monkeypatch.setenv("NBOPS_MODEL", "churn")
    monkeypatch.setenv("NBOPS_PREDICTION_LOG", "postgresql+psycopg://nbops:log-pass-42@db:5432/log")
    monkeypatch.chdir(tmp_path)
    import os

    # `nbops serve` exports its settings for uvicorn's workers: undo that afterwards.
    monkeypatch.setattr(os, "environ", os.environ.copy())

    result = invoke("serve", "--port", "8123")

    assert result.exit_code == 0, result.output
    assert started, "the server was started"
    assert "(log: postgresql+psycopg://nbops:***REDACTED***@db:5432/log)" in result.output
    assert "log-pass-42" not in result.output


def test_monitor_retrain_prints_the_gates_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A breach with --retrain: the retraining build's gate decision is read as a
    ReleaseDecision and its action and summary printed."""
    from nbops.monitoring import watch
    from nbops.release.gate import GatePolicy, ReleaseDecision

    breached = watch.MonitorRun(
        True,
        {
            "breached": True,
            "reasons": ["3 of 5 input columns drifted"],
            "model_name": "churn",
            "serving_version": "2",
            "window": {"source": "batch.csv", "rows": 40, "requests": 1, "labelled_rows": 0},
        },
        {"columns": [], "prediction": None},
        "",
    )
    gate = ReleaseDecision("churn", "hold", "Held: no better than v2.", GatePolicy(), "2")
    monkeypatch.setattr(watch, "run_monitoring", lambda root, **options: breached)
    monkeypatch.setattr(watch, "retrain", lambda root: (0, gate))
    monkeypatch.setenv("NBOPS_MODEL", "churn")
    monkeypatch.chdir(tmp_path)

    result = invoke("monitor", "--retrain")

    assert result.exit_code == 1, result.output
    assert "ALERT: 3 of 5 input columns drifted" in result.output
    assert "Gate: HOLD — Held: no better than v2." in result.output
