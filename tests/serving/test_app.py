"""`nbops serve` as a real uvicorn process over the reference build's registry."""

from __future__ import annotations

import json
import select
import signal
import socket
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from nbops.serving.log import stored_text
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
    from nbops.tracking.registry import Registry

    _, model = Registry(built_project.root).load("churn", "champion")
    expected = model.predict_proba(
        pd.DataFrame(rows).assign(signup_date=lambda f: pd.to_datetime(f["signup_date"]))
    )[:, 1]
    _, body = shared.call("POST", "/predict", {"records": rows})
    served = [p["True"] for p in body["probabilities"]]
    assert served == pytest.approx(expected.tolist(), rel=0, abs=1e-9)  # not rounded


def test_health_ready_model_and_openapi(shared):
    service = shared
    assert service.call("GET", "/health", token=None) == (200, {"status": "ok"})
    assert service.call("GET", "/ready", token=None)[1]["ready"] is True
    model = service.call("GET", "/model")[1]
    assert {f["name"] for f in model["schema"]} >= {"plan", "tenure_months", "signup_date"}
    assert model["scorer"] == "compiled", "the fast path serves the reference model"
    # Each worker scores with one BLAS and one OpenMP thread: more cores, more --workers.
    assert {t["api"] for t in model["threads"]} >= {"openmp", "blas"}
    assert [t for t in model["threads"] if t["threads"] != 1] == []
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
        ({"body": {"records": [{}], "note": 1}}, 422, '["body", "note"]'),
        (
            {"raw": b'{"records": [{}], "x": ' + b"[" * 300 + b"]" * 300 + b"}"},
            422,
            "nested more than 16 levels deep",
        ),
        ({"body": {"records": []}, "token": "wrong"}, 401, "bearer token"),
        ({"body": {"records": []}, "token": None}, 401, "bearer token"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(shared, request_kwargs, status, needle):
    code, body = shared.call("POST", "/predict", **request_kwargs)
    assert code == status
    assert needle in json.dumps(body)


def test_a_graceful_stop_flushes_every_answered_prediction(built_project, tmp_path, rows):
    """The flush interval is a minute: only the shutdown's drain can write these."""
    service = Service(built_project, tmp_path, NBOPS_LOG_FLUSH_SECONDS="60")

    def one(i):
        return service.call("POST", "/predict", {"records": [rows[i % len(rows)]]})

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(400)))
        assert all(code == 200 for code, _ in results), "zero errors under load"
        metrics = service.call("GET", "/metrics")[1]
        assert (
            'nbops_predictions_total{model="churn",route="champion",version="1"} 400.0' in metrics
        )
        assert service.logged() == [], "nothing is flushed before the stop"
    finally:
        service.stop()  # SIGTERM: graceful, flushes the log
    logged = {request_id for request_id, _ in service.logged()}
    assert {body["request_id"] for _, body in results} <= logged


def test_feedback_links_ground_truth_to_a_prediction(shared, rows):
    service = shared
    _, body = service.call("POST", "/predict", {"records": rows[:2]})
    # Accepted once the writer has logged the prediction (within a flush interval).
    assert service.poll(
        "POST",
        "/feedback",
        {"request_id": body["request_id"], "labels": [True, False]},
        until=lambda answer: answer[0] != 404,
    ) == (200, {"ok": True})
    code, error = service.call("POST", "/feedback", {"request_id": "nope", "labels": [True]})
    assert code == 404 and "unknown request_id" in error["error"]
    assert service.call("POST", "/feedback", {"labels": [1]})[0] == 422


def nested(depth):
    return json.loads("[" * depth + "]" * depth)


@pytest.mark.parametrize(
    ("feedback", "loc"),
    [
        ({"request_id": "r", "labels": nested(300)}, ["body", "labels", 0, 0]),
        ({"request_id": "r", "labels": [True, {"a": 1}]}, ["body", "labels", 1]),
        ({"request_id": "r", "labels": {"a": 1}}, ["body", "labels"]),
        ({"request_id": "r", "labels": [1] * 201}, ["body", "labels"]),
        ({"request_id": "r", "labels": [1], "extra": nested(100)}, ["body", "extra"]),
        ({"request_id": 7, "labels": [1]}, ["body", "request_id"]),
        ({"request_id": "r" * 65, "labels": [1]}, ["body", "request_id"]),
        ([1], ["body"]),
    ],
)
def test_bad_feedback_is_a_422_naming_the_field(shared, feedback, loc):
    code, body = shared.call("POST", "/feedback", feedback)
    assert code == 422, body
    assert any(d["loc"][: len(loc)] == loc for d in body["detail"]), body


def test_a_promotion_is_picked_up_without_dropping_a_request(shared, rows, built_project):
    from nbops.tracking.registry import Registry

    # The module's running service (a start costs seconds of CPU): it has served the
    # champion since the module began, as a service in production has.
    service = shared
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
    service.poll(  # the tests after this one see the champion again
        "POST",
        "/predict",
        {"records": [rows[0]]},
        until=lambda answer: answer[1]["model"]["version"] == v1.version,
    )


@pytest.fixture
def challenger(built_project):
    """A second version of the champion's model held as challenger, removed afterwards."""
    from nbops.tracking.registry import Registry

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
    # A minute's flush interval: only the shutdown (shadow queue drained, then the log)
    # can write what is logged below.
    service = Service(built_project, tmp_path, "--shadow", NBOPS_LOG_FLUSH_SECONDS="60")
    try:
        answers = [service.call("POST", "/predict", {"records": rows[:2]})[1] for _ in range(20)]
        assert {a["model"]["alias"] for a in answers} == {"champion"}
        assert service.logged() == []
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


def test_kill_9_under_load_loses_only_the_newest_answers_and_the_log_stays_readable(
    built_project, tmp_path, rows
):
    service = Service(built_project, tmp_path)
    answered, killed = [], False

    def load():
        for _ in range(10_000):
            try:
                code, body = service.call("POST", "/predict", {"records": [rows[0]]})
            except Exception:  # a connection cut by the kill ends this client, nothing else
                if killed:
                    return
                raise
            assert code == 200, body
            answered.append((time.time(), body["request_id"]))

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(load) for _ in range(4)]
        deadline = time.monotonic() + 30
        while len(answered) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        killed_at = time.time()
        killed = True
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=10)
    for client in clients:
        client.result()  # an error in a client fails the test instead of vanishing
    service.output.close()
    db = sqlite3.connect(service.log_path)
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    logged = dict(db.execute("select request_id, ts from predictions"))
    # The promise (docs/serving.md): only the newest answers may be lost, those of the
    # last flush interval and the batch being written: about 0.1 s when the service has
    # its CPU. On a machine with more runnable processes than cores the writer's wake-up
    # is late like everything else, so the wall-clock figure is checked loosely (1 s),
    # and the order strictly: the writer takes answers in the order they were given, so
    # one answered before the newest logged entry was recorded is in the log (50 ms for
    # two requests' threads recording out of order).
    newest = max(logged.values(), default=0.0)
    before_newest = {r for t, r in answered if t < newest - 0.05}
    settled = {r for t, r in answered if t < killed_at - 1.0}
    assert len(before_newest) > 50 and before_newest <= logged.keys(), (
        f"{len(before_newest - logged.keys())} predictions answered before the newest "
        "logged one are missing: the log lost an older batch"
    )
    assert settled <= logged.keys(), f"{len(settled - logged.keys())} answered predictions missing"
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
        assert service.poll(
            "POST",
            "/feedback",
            {"request_id": answered[0], "labels": [True, False]},
            until=lambda answer: answer[0] != 404,
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


def chunked_upload(service, path, *, limit=1_048_576, chunk=64 * 1024, most=64 * 1024 * 1024):
    """POST an endless chunked body (no Content-Length) until the service answers;
    (status line, bytes sent)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent, piece = 0, f"{chunk:x}\r\n".encode() + b"[" * chunk + b"\r\n"
        while sent < most:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break
            try:
                conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        conn.settimeout(30)
        return conn.recv(65536).split(b"\r\n")[0].decode(), sent


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_a_chunked_upload_over_the_limit_is_refused_while_it_arrives(shared, path):
    """Chunked bodies declare no length: the service counts bytes as they come and
    answers 413 once past the limit, without holding the body."""
    before = shared.rss()
    status, sent = chunked_upload(shared, path)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    # Answered mid-upload: far less than the 64 MiB the client would have sent (what
    # is sent beyond the 1 MiB limit sat in socket buffers when the answer came).
    assert sent < 16 * 1024 * 1024, sent
    assert shared.rss() - before < 20 * 1024 * 1024
    assert shared.call("GET", "/ready")[0] == 200


def test_ready_and_metrics_report_the_log_writer(shared, rows):
    shared.call("POST", "/predict", {"records": rows[:1]})
    ready = shared.poll("GET", "/ready", until=lambda a: a[1]["log"]["written"] >= 1)[1]
    assert ready["ready"] and ready["log"]["writer_alive"] and ready["log"]["ok"]
    metrics = shared.call("GET", "/metrics")[1]
    assert "nbops_prediction_log_writer_up 1.0" in metrics
    assert "nbops_prediction_log_dropped_total 0.0" in metrics


def test_a_locked_log_and_a_poisonous_request_lose_no_answered_prediction(
    built_project, tmp_path, rows
):
    """Another connection holds the log's write lock far longer than the writer used to
    retry (timings scaled: 0.1 s busy timeout and pauses instead of 5 s); requests keep
    being answered, and every one is logged once the lock is released."""
    service = Service(built_project, tmp_path, NBOPS_LOG_RETRY_SECONDS="0.1")
    try:
        first = service.call("POST", "/predict", {"records": rows[:1]})[1]["request_id"]
        service.poll("GET", "/ready", until=lambda a: a[1]["log"]["written"] == 1)
        holder = sqlite3.connect(service.log_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            answered = [
                service.call("POST", "/predict", {"records": rows[i : i + 1]})[1]["request_id"]
                for i in range(20)
            ]
            poison = {"records": rows[:1], "x": nested(300)}
            code, body = service.call("POST", "/predict", poison)
            assert code == 422 and "nested" in json.dumps(body)
            ready = service.poll("GET", "/ready", until=lambda a: a[1]["log"]["failures"] >= 15)[1]
            assert ready["ready"] and ready["log"]["retrying"] and ready["log"]["failures"] >= 15
        finally:
            holder.close()
        ready = service.poll("GET", "/ready", until=lambda a: a[1]["log"]["written"] == 21)[1]
        assert ready["log"]["ok"] and ready["log"]["writer_alive"]
    finally:
        service.stop()
    assert {first, *answered} == {r for r, _ in service.logged()}


def test_a_reload_failure_is_logged_counted_and_still_refreshes_the_challenger(
    built_project, tmp_path, rows
):
    """A champion that fails to load (its recorded hash is wrong) keeps the loaded one
    serving, and the challenger (shadow) is still picked up in the same check."""
    from nbops.tracking.registry import Registry

    service = Service(built_project, tmp_path, "--shadow")
    registry = Registry(built_project.root)
    champion = registry.alias("churn", "champion")
    try:
        broken = registry.register_uploaded("churn", run_id=champion.run_id, tags={})
        registry.client.set_model_version_tag(
            "churn", broken.version, "nbops.model_sha256", "0" * 64
        )
        registry.promote("churn", broken.version, reason="reload failure test")
        failures = 'nbops_reload_failures_total{alias="champion"}'
        assert failures in service.poll("GET", "/metrics", until=lambda a: failures in a[1])[1]
        # Only now a challenger: the checks that pick it up all fail on the champion.
        held = registry.register_uploaded("churn", run_id=champion.run_id, tags={})
        registry.apply_gate(
            "churn", held.version, action="hold", summary="reload test", run_id=None
        )
        routing = service.poll(
            "GET", "/model", until=lambda a: a[1]["routing"]["challenger"] == held.version
        )[1]["routing"]
        assert routing["challenger"] == held.version
        code, body = service.call("POST", "/predict", {"records": rows[:1]})
        assert code == 200 and body["model"]["version"] == champion.version
    finally:
        service.stop()
        registry.promote("churn", champion.version, reason="restore for other tests")
        registry.client.delete_registered_model_alias("churn", "challenger")
    output = (tmp_path / "service.log").read_text()
    assert "reload of churn@champion failed; still serving version" in output
    assert output.count("reload of churn@champion failed") == 1, "one line per new problem"


def test_a_hundred_row_request_is_answered_and_logged_as_sent(shared, rows):
    hundred = (rows * 2)[:100]
    body = json.dumps({"records": hundred}, indent=1).encode()  # a client's own spacing
    code, answer = shared.call("POST", "/predict", raw=body)
    assert code == 200, answer
    assert len(answer["predictions"]) == len(answer["probabilities"]) == 100
    assert answer["predictions"][50:] == answer["predictions"][:50]  # the same rows again
    assert set(answer["predictions"]) <= {"True", "False"}

    def logged():
        found = (
            sqlite3.connect(shared.log_path)
            .execute(
                "select inputs, outputs from predictions where request_id = ?",
                (answer["request_id"],),
            )
            .fetchall()
        )
        return found[0] if found else None

    deadline = time.monotonic() + 30
    while (entry := logged()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert entry is not None, "logged within a flush interval"
    inputs, outputs = map(stored_text, entry)  # LZ4 frames on SQLite (see the log's doc)
    assert inputs == body.decode()  # byte for byte what the client sent
    assert json.loads(outputs) == {k: answer[k] for k in ("predictions", "probabilities")}


def test_one_bad_cell_in_a_hundred_rows_is_a_422_naming_its_row_and_column(shared, rows):
    hundred = [dict(r) for r in (rows * 2)[:100]]
    hundred[57]["tenure_months"] = "seven"
    code, answer = shared.call("POST", "/predict", {"records": hundred})
    assert code == 422
    assert answer["detail"] == [
        {
            "loc": ["body", "records", 57, "tenure_months"],
            "msg": "expected a number (or a blank, NA or N/A for a missing value), got 'seven'",
        }
    ]
