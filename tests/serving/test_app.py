"""`nbops serve` as a real uvicorn process over the reference build's registry."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from tests.conftest import BIN, build_env
from tests.serving.conftest import TOKEN, Service

pytestmark = pytest.mark.pipeline


def test_predict_answers_with_probabilities_model_and_request_id(shared, rows):
    service = shared
    status, body = service.call("POST", "/predict", {"records": rows[:3]})
    assert status == 200, body
    assert len(body["predictions"]) == 3 and set(body["probabilities"][0]) == {"True", "False"}
    assert (
        body["model"] == {"name": "churn", "version": "1", "alias": "champion"}
        and len(body["request_id"]) == 32
    )
    columns = {k: [r[k] for r in rows[:3]] for k in rows[0]}
    assert (
        service.call("POST", "/predict", {"columns": columns})[1]["predictions"]
        == body["predictions"]
    )


def test_served_probabilities_are_the_models_own(shared, rows, built_project):
    from nbops.registry import Registry

    _, model = Registry(built_project.root).load("churn", "champion")
    expected = model.predict_proba(
        pd.DataFrame(rows).assign(signup_date=lambda f: pd.to_datetime(f["signup_date"]))
    )[:, 1]
    _, body = shared.call("POST", "/predict", {"records": rows})
    served = [p["True"] for p in body["probabilities"]]
    assert served == pytest.approx(expected.tolist(), abs=5e-7)  # answers are rounded to 6 places


def test_health_ready_model_and_openapi(shared):
    service = shared
    assert service.call("GET", "/health", token=None) == (200, {"status": "ok"})
    assert service.call("GET", "/ready", token=None)[1]["ready"] is True
    model = service.call("GET", "/model")[1]
    assert {f["name"] for f in model["schema"]} >= {"plan", "tenure_months", "signup_date"}
    assert model["scorer"] == "compiled", "the fast path serves the reference model"
    openapi = service.call("GET", "/openapi.json")[1]
    row = openapi["components"]["schemas"]["PredictRequest"]["properties"]["records"]["items"]
    assert (
        row["properties"]["tenure_months"]["anyOf"][0] == {"type": "number"}
        and "as text" in row["properties"]["tenure_months"]["anyOf"][1]["description"]
        and "customer_id" not in row["properties"]
    )


@pytest.mark.parametrize(
    ("request_kwargs", "status", "needle"),
    [
        ({"body": {"records": [{"plan": 1}]}}, 422, "expected a string"),
        ({"raw": b"{not json"}, 400, "not valid JSON"),
        ({"body": {"records": [{}] * 201}}, 422, "more than the limit of 200"),
        ({"raw": b" " * 1_100_000}, 413, "over the limit"),
        ({"body": {"records": []}, "token": "wrong"}, 401, "bearer token"),
        ({"body": {"records": []}, "token": None}, 401, "bearer token"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(shared, request_kwargs, status, needle):
    code, body = shared.call("POST", "/predict", **request_kwargs)
    assert code == status
    assert needle in json.dumps(body)


def test_every_answered_prediction_is_logged_and_counted(service, rows):
    def one(i):
        return service.call("POST", "/predict", {"records": [rows[i % len(rows)]]})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(400)))
    assert all(code == 200 for code, _ in results), "zero errors under load"
    metrics = service.call("GET", "/metrics")[1]
    assert 'nbops_predictions_total{model="churn",route="champion",version="1"} 400.0' in metrics
    service.stop()  # SIGTERM: graceful, flushes the log
    logged = {request_id for request_id, _ in service.logged()}
    assert {body["request_id"] for _, body in results} <= logged


def test_feedback_links_ground_truth_to_a_prediction(shared, rows):
    service = shared
    _, body = service.call("POST", "/predict", {"records": rows[:2]})
    time.sleep(0.3)
    assert service.call(
        "POST", "/feedback", {"request_id": body["request_id"], "labels": [True, False]}
    ) == (200, {"ok": True})
    code, error = service.call("POST", "/feedback", {"request_id": "nope", "labels": [True]})
    assert code == 404 and "unknown request_id" in error["error"]
    assert service.call("POST", "/feedback", {"labels": [1]})[0] == 422


def test_a_promotion_is_picked_up_without_dropping_a_request(service, rows, built_project):
    from nbops.registry import Registry

    registry = Registry(built_project.root)
    v1 = registry.alias("churn", "champion")
    v2 = registry.register_uploaded("churn", run_id=v1.run_id, tags={"nbops.gate": "promote"})
    stop_at = time.monotonic() + 60
    seen, codes = set(), []
    registry.promote("churn", v2.version, reason="hot swap test")
    while time.monotonic() < stop_at and v2.version not in seen:
        code, body = service.call("POST", "/predict", {"records": [rows[0]]})
        codes.append(code)
        seen.add(body.get("model", {}).get("version"))
    assert v2.version in seen and set(codes) == {200}
    registry.rollback("churn", reason="restore for other tests")


@pytest.fixture
def challenger(built_project):
    """A second version of the champion's model held as challenger, removed afterwards."""
    from nbops.registry import Registry

    registry = Registry(built_project.root)
    champion = registry.alias("churn", "champion")
    version = registry.register_uploaded(
        "churn", run_id=champion.run_id, tags={"nbops.gate": "hold"}
    )
    registry.apply_gate(
        "churn", version.version, action="hold", summary="challenger for routing tests", run_id=None
    )
    yield version.version
    registry.client.delete_registered_model_alias("churn", "challenger")


def test_canary_sends_a_sticky_share_to_the_challenger(built_project, tmp_path, rows, challenger):
    service = Service(built_project, tmp_path, "--canary", "0.3")
    try:
        assert service.call("GET", "/model")[1]["routing"] == {
            "canary": 0.3,
            "shadow": False,
            "challenger": challenger,
        }
        first = {
            k: service.call(
                "POST",
                "/predict",
                {"records": [rows[0]]},
                headers={"X-Routing-Key": f"customer-{k}"},
            )[1]["model"]
            for k in range(200)
        }
        share = sum(
            m["version"] == challenger and m["alias"] == "challenger" for m in first.values()
        ) / len(first)
        assert 0.2 < share < 0.4, share
        again = {
            k: service.call(
                "POST",
                "/predict",
                {"records": [rows[0]]},
                headers={"X-Routing-Key": f"customer-{k}"},
            )[1]["model"]
            for k in range(30)
        }
        assert all(again[k] == first[k] for k in again), "the same key always gets the same model"
    finally:
        service.stop()
    routes = {
        route
        for (route,) in sqlite3.connect(service.log_path).execute(
            "select distinct route from predictions"
        )
    }
    assert routes == {"champion", "challenger"}


def test_shadow_logs_the_challenger_but_answers_with_the_champion(
    built_project, tmp_path, rows, challenger
):
    service = Service(built_project, tmp_path, "--shadow")
    try:
        answers = [service.call("POST", "/predict", {"records": rows[:2]})[1] for _ in range(20)]
        assert {a["model"]["alias"] for a in answers} == {"champion"}
        time.sleep(0.5)
    finally:
        service.stop()
    logged = (
        sqlite3.connect(service.log_path)
        .execute(
            "select route, model_version, count(*) from predictions group by route, model_version"
        )
        .fetchall()
    )
    assert ("shadow", challenger, 20) in logged and (
        "champion",
        answers[0]["model"]["version"],
        20,
    ) in logged


def test_kill_9_under_load_loses_at_most_the_last_flush_and_the_log_stays_readable(
    built_project, tmp_path, rows
):
    service = Service(built_project, tmp_path)
    answered = []

    def load():
        for _ in range(10_000):
            try:
                code, body = service.call("POST", "/predict", {"records": [rows[0]]})
            except OSError:
                return
            if code == 200:
                answered.append((time.monotonic(), body["request_id"]))

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(load)
        time.sleep(4)
        killed_at = time.monotonic()
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=10)
    service.output.close()
    db = sqlite3.connect(service.log_path)
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    logged = {r for (r,) in db.execute("select request_id from predictions")}
    settled = {r for t, r in answered if t < killed_at - 0.5}
    assert len(settled) > 50 and settled <= logged, (
        f"{len(settled - logged)} answered predictions missing"
    )
    restarted = Service(built_project, tmp_path)  # same log file
    try:
        assert restarted.call("POST", "/predict", {"records": [rows[0]]})[0] == 200
    finally:
        restarted.stop()


def test_the_prediction_log_can_live_in_postgresql(built_project, tmp_path, rows, postgres):
    url = postgres.create_database("service_log")
    service = Service(built_project, tmp_path, log_url=url)
    try:
        answered = [
            service.call("POST", "/predict", {"records": rows[:2]})[1]["request_id"]
            for _ in range(25)
        ]
        time.sleep(0.3)
        assert service.call(
            "POST", "/feedback", {"request_id": answered[0], "labels": [True, False]}
        ) == (200, {"ok": True})
    finally:
        service.stop()  # SIGTERM flushes
    import psycopg

    with psycopg.connect(url) as conn:
        logged = {r for (r,) in conn.execute("select request_id from predictions")}
        feedback = conn.execute("select request_id, labels from feedback").fetchall()
    assert set(answered) <= logged and feedback == [(answered[0], "[true,false]")]


def test_a_fuzzer_driven_by_the_openapi_document_finds_no_server_error(shared, tmp_path):
    """schemathesis generates valid and invalid requests for every operation."""
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{shared.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its example database goes here
        env=build_env(),
    )
    assert result.returncode == 0, result.stdout[-4000:]
