"""Day one on a user's own CSV: the datasets scikit-learn ships (regression, binary,
multi-class), written the way real exports look (a row-number column, an ID column,
yes/no text, numbers stored as text with blanks, dd-mm-yyyy dates), taken from ``nbops
init`` to a served champion with no setting changed by hand, which answers the rows of
the file as written with the evaluate step's labels and probabilities, and which
``nbops monitor`` finds clean on held-back rows, and whose monitoring notebooks find
shifted rows drifted; ``nbops score`` on the file's own test rows as written gives the
evaluate step's answers, with the ID columns, a probability column per class (none for
regression), the report, the run and the rejected rows with their reasons.

One build and one service per dataset (module-scoped), shared by every assertion about
it; the build time of each is printed (run with ``-s`` to see it). The monitoring
verdicts are judged by the monitoring notebooks' code in this process
(tests/pipeline/notebook_code.py): the verdict is what is about this data. ``nbops
monitor``'s build around the same notebooks (kernels, the recorded run, what it prints)
is the same for any data: it runs here once, on the binary dataset's held-back rows (its
exit code on drift is in test_monitoring.py).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from nbops.data.artifacts import load_model
from nbops.data.target import TargetInfo
from nbops.modeling.evaluation import score_model
from tests.conftest import BIN, build_env, free_port, run_cli
from tests.pipeline.notebook_code import run_notebooks

pytestmark = pytest.mark.pipeline


def messy(
    frame: pd.DataFrame, *, seed: int, text_number: str, flag: tuple[str, float]
) -> pd.DataFrame:
    """``frame`` as a spreadsheet export: an ID, a yes/no column from ``flag`` (a column
    and its threshold), ``text_number`` as text with blanks, a dd-mm-yyyy date."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.copy()
    out.insert(0, "record_id", [f"R-{i:05d}" for i in rng.permutation(n) + 10_000])
    column, threshold = flag
    out[f"high {column}"] = np.where(out[column] > threshold, "Yes", "No")
    as_text = out[text_number].round(4).astype(str)
    out[text_number] = as_text.where(rng.random(n) > 0.05, " ")  # blanks, as Excel leaves them
    days = pd.to_datetime("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    out["visit_date"] = days.strftime("%d-%m-%Y")
    return out


#: The row-number column: the CSV's unnamed index, as pandas reads it back.
ROW_NUMBER = "Unnamed: 0"
#: Monitoring a batch file reads no prediction log.
NO_LOG = "sqlite:////nonexistent/log.db"


def diabetes() -> tuple[pd.DataFrame, str, dict]:
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(
        columns={"target": "progression"}
    )
    return frame, "progression", {"seed": 1, "text_number": "bmi", "flag": ("bp", 95.0)}


def breast_cancer() -> tuple[pd.DataFrame, str, dict]:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[[*data.feature_names[:8], "target"]].copy()
    frame["malignant"] = np.where(frame.pop("target") == 0, "Yes", "No")
    style = {"seed": 2, "text_number": "mean radius", "flag": ("mean texture", 19.0)}
    return frame, "malignant", style


def wine() -> tuple[pd.DataFrame, str, dict]:
    frame = load_wine(as_frame=True).frame
    cultivars = np.array(["Barolo", "Grignolino", "Barbera"])
    frame["cultivar"] = cultivars[frame.pop("target").to_numpy()]
    return frame, "cultivar", {"seed": 3, "text_number": "alcohol", "flag": ("magnesium", 100.0)}


@dataclass
class Built:
    root: Path
    name: str
    dataset: str
    target: str
    seconds: float
    output: str
    csv: Path  # the training file, as the user has it
    held_back: Path  # rows of the same source the build never saw (no target)
    shifted: Path  # the held-back rows with every numeric feature moved by 3 SD

    def read(self, path: str) -> dict:
        return json.loads((self.root / "products" / path).read_text())


@pytest.fixture(
    scope="module",
    params=[diabetes, breast_cancer, wine],
    ids=["regression", "binary", "multiclass"],
)
def built(request, tmp_path_factory) -> Built:
    frame, target, style = request.param()
    base = tmp_path_factory.mktemp(request.param.__name__)
    held = np.random.default_rng(0).random(len(frame)) < 0.2
    source = frame[~held].reset_index(drop=True)
    held_back = frame[held].set_axis(np.arange(len(source), len(frame)))  # row numbers go on
    numeric = [c for c in source.select_dtypes("number").columns if c != target]
    shifted = held_back.assign(**{c: held_back[c] + 3 * source[c].std() for c in numeric})
    # The index is the row-number column with an empty header, as spreadsheets export it.
    csv_path = base / f"{request.param.__name__}.csv"
    messy(source, **style).to_csv(csv_path, index=True)
    for name, rows in (("held_back", held_back), ("shifted", shifted)):
        messy(rows, **style).drop(columns=[target]).to_csv(base / f"{name}.csv", index=True)
    project = base / f"{request.param.__name__.replace('_', '-')}-model"
    # In this process (the console script of `nbops init` is tests/commands/test_init.py's).
    run_cli(base, "init", str(project), "--data", str(csv_path), "--target", target)
    started = time.perf_counter()
    result = subprocess.run(
        ["make", "build"], cwd=project, capture_output=True, text=True, timeout=900, env=build_env()
    )
    seconds = time.perf_counter() - started
    print(f"\n{request.param.__name__}: {len(source)} rows, make build {seconds:.1f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return Built(
        project,
        project.name,
        request.param.__name__,
        target,
        seconds,
        result.stdout + result.stderr,
        csv_path,
        base / "held_back.csv",
        base / "shifted.csv",
    )


@pytest.fixture(scope="module")
def served(built: Built, tmp_path_factory) -> str:
    """``nbops serve`` in the project with no settings; its URL once ready."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(BIN / "nbops"), "serve", "--port", str(port)],
        cwd=built.root,
        env=build_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.3)  # polling a deadline, not synchronising
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def predict(url: str, rows: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"records": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        pytest.fail(f"{error.code}: {error.read().decode()}")


def evaluate_step_answer(built: Built, test: pd.DataFrame) -> tuple[TargetInfo, Any]:
    """The target, and what the evaluate step computed for the ``test`` rows with the
    model it released (``score_model``'s predictions, classes and probabilities)."""
    target = TargetInfo(**built.read("data/features.json")["target"])
    model = load_model(built.root / "products" / "model" / "model.joblib")
    X_test, y_test = test.drop(columns=[target.name]), test[target.name]
    return target, score_model(model, X_test, y_test, target)


def test_identifiers_are_dropped_and_raw_text_typed(built: Built) -> None:
    roles = {r["column"]: r for r in built.read("data/features.json")["roles"]}
    assert roles[ROW_NUMBER]["role"] == "drop"
    assert roles[ROW_NUMBER]["reason"].startswith("identifier: every value is a different")
    assert roles["record_id"]["role"] == "drop"
    assert roles["visit_date"]["role"] == "datetime"
    assert next(r for c, r in roles.items() if c.startswith("high "))["role"] == "boolean"
    text_number = next(c for c in ("bmi", "mean radius", "alcohol") if c in roles)
    assert roles[text_number]["role"] == "numeric"


def test_the_first_build_releases_a_champion_for_the_projects_model(built: Built) -> None:
    decision = built.read("release/decision.json")
    assert decision["action"] == "promote", decision["summary"]
    checks = {c["name"]: c for c in decision["checks"]}
    assert checks["baseline"]["passed"] and "the naive baseline's" in checks["baseline"]["detail"]
    metrics = built.read("metrics.json")
    if metrics["task"] == "regression":
        assert checks["r2"]["passed"] and "floor" not in checks
        assert metrics["primary_metric"] == "rmse" and metrics["metrics"]["r2"] > 0.3
        assert metrics["metrics"]["rmse"] < metrics["baseline"]["rmse"]
        assert metrics["metrics"]["rmse"] == min(m["rmse"] for m in metrics["candidates"].values())
    elif len(built.read("data/features.json")["target"]["classes"]) == 2:
        assert metrics["metrics"]["roc_auc"] > 0.9
    else:
        assert metrics["metrics"]["accuracy"] > 0.85
    assert f"registered {built.name} version 1" in built.output

    models = run_cli(built.root, "models", env=build_env())
    assert models.stdout.startswith(built.name) and "champion" in models.stdout


def test_serve_with_no_settings_lists_the_labels_of_the_file(built: Built, served: str) -> None:
    described = get(f"{served}/model")
    assert (described["name"], described["alias"]) == (built.name, "champion")
    labels = pd.read_csv(built.csv, dtype=str, keep_default_na=False)[built.target]
    if described["task"] == "classification":  # "Yes"/"No", cultivar names: as written
        assert described["classes"] == sorted(set(labels))


def test_every_test_row_as_written_in_the_file_gets_the_evaluate_steps_answer(
    built: Built, served: str
) -> None:
    with built.csv.open(newline="") as handle:  # a client's own CSV reader: all text
        by_number = {int(row.pop("")): row for row in csv.DictReader(handle)}
    test = pd.read_parquet(built.root / "products" / "data" / "test.parquet")
    rows = [by_number[n] for n in test[ROW_NUMBER]]
    for row in rows:
        del row[built.target]
    assert any(row["visit_date"].count("-") == 2 and row["visit_date"][2] == "-" for row in rows)

    answer = predict(served, rows)

    target, expected = evaluate_step_answer(built, test)
    assert len(answer["predictions"]) == len(test) > 20
    if target.task == "regression":
        np.testing.assert_allclose(answer["predictions"], expected.predictions, rtol=0, atol=1e-9)
        return
    assert answer["predictions"] == [str(label) for label in expected.predictions]
    served_proba = [[row[str(c)] for c in expected.classes] for row in answer["probabilities"]]
    np.testing.assert_allclose(served_proba, expected.probabilities, rtol=0, atol=1e-9)


#: The dataset whose held-back rows go through ``nbops monitor`` itself.
MONITORED_BY_COMMAND = "breast_cancer"


def monitor(built: Built, batch: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nbops"), "monitor", "--data", str(batch)],
        cwd=built.root,
        capture_output=True,
        text=True,
        timeout=600,
        env=build_env(NBOPS_PREDICTION_LOG=NO_LOG),
    )


def test_monitor_finds_held_back_rows_clean_and_shifted_rows_drifted(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    if built.dataset == MONITORED_BY_COMMAND:
        clean = monitor(built, built.held_back)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "All clear" in clean.stdout
    # The monitoring notebooks in this process: the held-back rows (unless just judged
    # by the command's build), then the shifted rows.
    monkeypatch.chdir(built.root)
    monkeypatch.setenv("NBOPS_PREDICTION_LOG", NO_LOG)
    if built.dataset != MONITORED_BY_COMMAND:
        run_notebooks(built.root, "pipeline.monitor.yaml", monitor={"data": str(built.held_back)})
    decision = built.read("monitor/decision.json")
    assert not decision["breached"], decision["reasons"]

    run_notebooks(built.root, "pipeline.monitor.yaml", monitor={"data": str(built.shifted)})
    decision = built.read("monitor/decision.json")
    assert decision["breached"] and any("drift" in reason for reason in decision["reasons"])


# -- nbops score on the user's own rows ----------------------------------------------

#: Test rows spoiled as exports spoil them: (position in the batch, the column, by kind
#: as in Built's file, the text written, what the reason names).
SPOILED = (
    (2, "text_number", "twelve", "expected a number"),
    (9, "visit_date", "31-13-2023", "expected a date"),
    (17, "flag", "maybe", "expected true or false"),
)


@dataclass
class Batch:
    """A file of the project's test rows as the training file writes them (messy text, no
    target), with :data:`SPOILED` rows among them, and what the evaluate step answered."""

    path: Path
    test: pd.DataFrame  # the valid rows, in the file's order (products/data/test.parquet)
    spoiled: dict[int, tuple[str, str, str]]  # data row number → (record_id, column, reason)
    target: TargetInfo
    expected: Any  # score_model's answer for ``test``


@pytest.fixture(scope="module")
def batch(built: Built, tmp_path_factory) -> Batch:
    with built.csv.open(newline="") as handle:  # the text as written, field by field
        header, *lines = list(csv.reader(handle))
    by_number = {int(line[0]): line for line in lines}
    test = pd.read_parquet(built.root / "products" / "data" / "test.parquet")
    rows = [by_number[n] for n in test[ROW_NUMBER]]
    columns = {
        "text_number": next(c for c in ("bmi", "mean radius", "alcohol") if c in header),
        "visit_date": "visit_date",
        "flag": next(c for c in header if c.startswith("high ")),
    }
    spoiled = {}
    for at, kind, text, reason in SPOILED:
        row = list(rows[at])
        row[header.index(columns[kind])] = text
        row[header.index("record_id")] = f"BAD-{at}"
        rows.insert(at, row)
        spoiled[at + 1] = (f"BAD-{at}", columns[kind], reason)
    drop = header.index(built.target)
    path = tmp_path_factory.mktemp("score") / "batch.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([c for i, c in enumerate(row) if i != drop] for row in [header, *rows])
    target, expected = evaluate_step_answer(built, test)
    return Batch(path, test, spoiled, target, expected)


def score(built: Built, batch: Batch, out: Path) -> tuple[str, str]:
    """``nbops score`` of ``batch`` into ``out`` by the real program, in the project with
    no settings; what it printed (stdout, and all of it for messages), once it exits 0."""
    done = subprocess.run(
        [str(BIN / "nbops"), "score", str(batch.path), "--out", str(out)],
        cwd=built.root,
        capture_output=True,
        text=True,
        timeout=300,
        env=build_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, done.stdout + done.stderr


def assert_scores_are_the_evaluate_steps(scores: pd.DataFrame, batch: Batch) -> None:
    """Every valid row once, in the file's order, with its IDs and the evaluate step's
    prediction; a probability column per class for a classifier, none for regression."""
    test, expected = batch.test, batch.expected
    proba = [f"proba_{label}" for label in expected.classes or ()]
    assert list(scores.columns) == [
        ROW_NUMBER,
        "record_id",
        "prediction",
        *proba,
        "model_name",
        "model_version",
        "scored_at",
    ]
    assert len(scores) == len(test) > 20
    assert scores[ROW_NUMBER].astype(int).tolist() == test[ROW_NUMBER].tolist()
    assert scores["record_id"].tolist() == test["record_id"].tolist()
    if batch.target.task == "regression":
        assert pd.api.types.is_float_dtype(scores["prediction"])
        np.testing.assert_allclose(scores["prediction"], expected.predictions, rtol=0, atol=1e-9)
        return
    # The labels as the file writes them ("Yes"/"No", cultivar names), as the service answers.
    assert scores["prediction"].tolist() == [str(label) for label in expected.predictions]
    assert len(proba) == len(batch.target.classes) == (3 if len(proba) > 2 else 2)
    np.testing.assert_allclose(scores[proba], expected.probabilities, rtol=0, atol=1e-9)


def test_score_gives_each_row_of_the_users_file_the_evaluate_steps_answer(
    built: Built, batch: Batch, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"

    printed, everything = score(built, batch, out)

    scores = pd.read_parquet(out)
    assert_scores_are_the_evaluate_steps(scores, batch)
    assert (scores["model_name"] == built.name).all() and (scores["model_version"] == "1").all()
    valid = len(batch.test)
    assert printed.startswith(
        f"Scored {valid} of {valid + len(SPOILED)} rows with {built.name} v1"
    ), everything
    if batch.target.task == "regression":
        assert f"Mean prediction: {scores['prediction'].mean():.6g}" in printed, everything
    else:
        shares = scores["prediction"].value_counts(normalize=True)
        assert all(f"{label} {share:.1%}" in printed for label, share in shares.items()), everything
    # The valid rows are the evaluate step's test rows, whose predictions are the profile's.
    assert "Drift against the training profile" in printed, everything
    assert "predictions ok" in printed, everything

    # The rows that could not be typed, with their row number, ID and reason.
    rejects = pd.read_csv(out.with_name("scores.rejects.csv"), dtype=str, keep_default_na=False)
    assert list(rejects.columns) == ["row", ROW_NUMBER, "record_id", "reasons"]
    found = {int(r.row): (r.record_id, *r.reasons.split(": ", 1)) for r in rejects.itertuples()}
    assert sorted(found) == sorted(batch.spoiled)
    for row, (record_id, column, reason) in batch.spoiled.items():
        assert found[row][:2] == (record_id, column) and reason in found[row][2], found[row]

    # The report a reviewer reads, and the run in the project's history.
    report = out.with_name("scores.report.html")
    assert f"Report: {report}" in printed and "failed" not in printed, everything
    assert report.stat().st_size > 10_000
    html = report.read_text()
    assert f"{valid:,} of {valid + len(SPOILED):,} rows scored" in html
    assert "Recorded as run " in printed, everything  # not spooled
    run_id = printed.split("Recorded as run ")[1][:12]
    listed = run_cli(built.root, "runs", "list", env=build_env()).stdout
    assert any(line.startswith(run_id) and " score " in line for line in listed.splitlines())


def test_score_writes_csv_with_the_same_rows_and_numbers(
    built: Built, batch: Batch, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"

    run_cli(built.root, "score", str(batch.path), "--out", str(out), env=build_env())

    scores = pd.read_csv(out, dtype={ROW_NUMBER: str, "record_id": str, "model_version": str})
    assert_scores_are_the_evaluate_steps(scores, batch)
    assert len(pd.read_csv(out.with_name("scores.rejects.csv"))) == len(SPOILED)
    assert out.with_name("scores.report.html").is_file()
