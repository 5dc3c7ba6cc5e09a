"""The prediction log: batched off the request path, nothing lost on a graceful close."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pytest
import sqlalchemy as sa

from nbops.errors import ConfigError
from nbops.serving.log import PredictionLog


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    """The same tests on the embedded default and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    return request.getfixturevalue("postgres").create_database(f"log_{uuid.uuid4().hex[:8]}")


def rows(url, query):
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(query).fetchall()
    finally:
        engine.dispose()


def entry(i):
    return {
        "request_id": f"r{i}",
        "model_name": "churn",
        "model_version": "1",
        "route": "champion",
        "latency_ms": 1.0,
        "inputs": {"records": [{"x": i}]},
        "outputs": {"predictions": [i]},
        "n_rows": 1,
    }


def test_close_flushes_every_recorded_prediction_from_many_threads(log_url):
    log = PredictionLog(log_url)
    threads = [
        threading.Thread(target=lambda k=k: [log.record(**entry(k * 1000 + i)) for i in range(500)])
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert rows(log_url, "select count(*), count(distinct request_id) from predictions") == [
        (4000, 4000)
    ]
    inputs, outputs = rows(
        log_url, "select inputs, outputs from predictions where request_id = 'r7005'"
    )[0]
    assert (inputs, outputs) == ('{"records":[{"x":7005}]}', '{"predictions":[7005]}')


def test_sqlite_log_uses_wal_so_readers_never_block_the_writer(tmp_path):
    PredictionLog(f"sqlite:///{tmp_path / 'p.db'}").close()
    assert sqlite3.connect(tmp_path / "p.db").execute("pragma journal_mode").fetchone()[0] == "wal"


def test_record_returns_without_waiting_for_the_database(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", flush_seconds=5)
    log.record(**entry(1))
    assert log.written == 0, "the write happens later, off the request path"
    log.close()
    assert log.written == 1


def test_feedback_needs_a_known_request(log_url):
    log = PredictionLog(log_url, flush_seconds=0.01)
    log.record(**entry(7))
    log.close()
    log = PredictionLog(log_url)  # a restart: the table is already there
    assert log.known_request("r7") and not log.known_request("nope")
    log.feedback("r7", [True])
    log.close()
    assert rows(log_url, "select labels from feedback") == [("[true]",)]


@pytest.mark.parametrize(
    "url", ["mysql+nodriver://x/y", "not a url", "postgresql+nodriver://localhost/db"]
)
def test_an_unusable_log_url_is_a_config_error_naming_the_setting(url):
    with pytest.raises(ConfigError, match="NBOPS_PREDICTION_LOG=.*Use sqlite:////"):
        PredictionLog(url)
