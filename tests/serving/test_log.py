"""The prediction log: batched off the request path, nothing lost on a graceful close."""

from __future__ import annotations

import sqlite3
import threading

from nbops.serving.log import PredictionLog


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


def test_close_flushes_every_recorded_prediction_from_many_threads(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    threads = [
        threading.Thread(target=lambda k=k: [log.record(**entry(k * 1000 + i)) for i in range(500)])
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    db = sqlite3.connect(tmp_path / "p.db")
    assert db.execute(
        "select count(*), count(distinct request_id) from predictions"
    ).fetchone() == (4000, 4000)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_record_returns_without_waiting_for_the_database(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", flush_seconds=5)
    log.record(**entry(1))
    assert log.written == 0, "the write happens later, off the request path"
    log.close()
    assert log.written == 1


def test_feedback_needs_a_known_request(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", flush_seconds=0.01)
    log.record(**entry(7))
    log.close()
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    assert log.known_request("r7") and not log.known_request("nope")
    log.feedback("r7", [True])
    log.close()
    assert sqlite3.connect(tmp_path / "p.db").execute("select labels from feedback").fetchone() == (
        "[true]",
    )
