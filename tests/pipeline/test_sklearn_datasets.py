"""Day one on a user's own CSV: the datasets scikit-learn ships, written the way real
exports look (a row-number column, an ID column, yes/no text, numbers stored as text
with blanks, dd-mm-yyyy dates), taken from ``nbops init`` to a served champion with no
setting changed by hand.

One build per dataset (module-scoped), shared by every assertion about it; the build
time of each is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from tests.conftest import BIN, build_env, free_port

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


def diabetes() -> tuple[pd.DataFrame, str]:
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(
        columns={"target": "progression"}
    )
    return messy(frame, seed=1, text_number="bmi", flag=("bp", 95.0)), "progression"


def breast_cancer() -> tuple[pd.DataFrame, str]:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[[*data.feature_names[:8], "target"]].copy()
    frame["malignant"] = np.where(frame.pop("target") == 0, "Yes", "No")
    return messy(frame, seed=2, text_number="mean radius", flag=("mean texture", 19.0)), "malignant"


@dataclass
class Built:
    root: Path
    name: str
    target: str
    seconds: float
    output: str

    def read(self, path: str) -> dict:
        return json.loads((self.root / "products" / path).read_text())


@pytest.fixture(scope="module", params=[diabetes, breast_cancer], ids=["regression", "binary"])
def built(request, tmp_path_factory) -> Built:
    frame, target = request.param()
    base = tmp_path_factory.mktemp(request.param.__name__)
    csv = base / f"{request.param.__name__}.csv"
    frame.to_csv(csv, index=True)  # the index: a row-number column with an empty header
    project = base / f"{request.param.__name__.replace('_', '-')}-model"
    subprocess.run(
        [str(BIN / "nbops"), "init", str(project), "--data", str(csv), "--target", target],
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    result = subprocess.run(
        ["make", "build"], cwd=project, capture_output=True, text=True, timeout=900, env=build_env()
    )
    seconds = time.perf_counter() - started
    print(f"\n{request.param.__name__}: {len(frame)} rows, make build {seconds:.1f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return Built(project, project.name, target, seconds, result.stdout + result.stderr)


def test_identifiers_are_dropped_and_raw_text_typed(built: Built) -> None:
    roles = {r["column"]: r for r in built.read("data/features.json")["roles"]}
    assert roles["Unnamed: 0"]["role"] == "drop"
    assert roles["Unnamed: 0"]["reason"].startswith("identifier: every value is a different")
    assert roles["record_id"]["role"] == "drop"
    assert roles["visit_date"]["role"] == "datetime"
    assert next(r for c, r in roles.items() if c.startswith("high "))["role"] == "boolean"
    text_number = "bmi" if "bmi" in roles else "mean radius"
    assert roles[text_number]["role"] == "numeric"


def test_the_first_build_releases_a_champion_for_the_projects_model(built: Built) -> None:
    decision = built.read("release/decision.json")
    assert decision["action"] == "promote", decision["summary"]
    checks = {c["name"]: c for c in decision["checks"]}
    assert checks["baseline"]["passed"] and "the naive baseline's" in checks["baseline"]["detail"]
    if built.read("metrics.json")["task"] == "regression":
        assert checks["r2"]["passed"] and "floor" not in checks
    assert f"registered {built.name} version 1" in built.output

    models = subprocess.run(
        [str(BIN / "nbops"), "models"], cwd=built.root, capture_output=True, text=True, timeout=120
    )
    assert models.returncode == 0, models.stderr
    assert models.stdout.startswith(built.name) and "champion" in models.stdout


def test_serve_with_no_settings_answers_in_the_project(built: Built, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
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
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.3)

        with urllib.request.urlopen(f"{url}/model", timeout=30) as response:
            described = json.loads(response.read())
        assert (described["name"], described["alias"]) == (built.name, "champion")

        test = pd.read_parquet(built.root / "products" / "data" / "test.parquet")
        rows = json.loads(
            test.drop(columns=[built.target]).head(3).to_json(orient="records", date_format="iso")
        )
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"records": rows}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            pytest.fail(f"{error.code}: {error.read().decode()}")
        assert len(answer["predictions"]) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
