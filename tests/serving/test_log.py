"""The prediction log: batched off the request path, nothing lost on a graceful close,
nothing lost to a poisonous entry or a locked database."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

import orjson
import pytest
import sqlalchemy as sa

from nbops.errors import ConfigError
from nbops.serving.log import COMPRESS_FROM, PredictionLog, read_predictions, stored_text


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


def test_an_unusable_log_url_is_named_without_its_password():
    """The message reaches the terminal, the service's log and the monitoring notebook's
    error (its report and the run's record)."""
    with pytest.raises(ConfigError) as raised:
        PredictionLog("postgresq://ada:hunter2pw@db:5432/log")
    assert "hunter2pw" not in str(raised.value)
    assert "NBOPS_PREDICTION_LOG='postgresq://ada:***REDACTED***@db:5432/log'" in str(raised.value)


def wait_for(predicate, timeout=30, what="condition"):
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def nested(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def test_an_entry_that_cannot_be_serialised_is_logged_as_a_placeholder(log_url):
    """orjson reads 1,024 levels but writes 255: one such entry used to kill the writer."""
    log = PredictionLog(log_url, flush_seconds=0.01)
    log.record(**entry(1))
    log.record(**{**entry(2), "inputs": {"records": [{"x": 2}], "extra": nested(300)}})
    wait_for(lambda: log.written == 2, what="the poisonous entry to be written")
    log.record(**entry(3))
    wait_for(lambda: log.written == 3, what="an entry after the poisonous one")
    assert log.health()["writer_alive"] and log.health()["placeholders"] == 1
    log.close()
    logged = dict(rows(log_url, "select request_id, inputs from predictions"))
    assert set(logged) == {"r1", "r2", "r3"}
    assert "inputs could not be serialised" in json.loads(logged["r2"])["nbops_unlogged"]


def test_an_entry_the_database_refuses_is_isolated_and_the_rest_of_its_batch_kept(log_url):
    # PostgreSQL refuses NUL characters in text; SQLite stores them: either way no loss.
    log = PredictionLog(log_url, flush_seconds=0.2)
    for i in range(5):
        log.record(**{**entry(i), "model_version": "1\x00" if i == 2 else "1"})
    log.close()
    assert rows(log_url, "select count(distinct request_id) from predictions") == [(5,)]
    assert log.health()["dropped"] == 0


@pytest.fixture
def sqlite_log(tmp_path):
    return f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "p.db"


def lock(path):
    """Another connection holding SQLite's write lock until ``.close()``."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_long_database_lock_delays_the_log_but_loses_nothing(sqlite_log):
    """The writer used to give up after 5 attempts (about 31 s of lock) and die. Timings
    are scaled down (busy timeout and longest pause 0.1 s): the lock outlasts many more
    attempts than that, and every entry recorded before or during it is written after."""
    url, path = sqlite_log
    log = PredictionLog(url, flush_seconds=0.01, retry_seconds=0.1)
    holder = lock(path)
    try:
        for i in range(50):
            log.record(**entry(i))
        wait_for(lambda: log.health()["failures"] >= 15, what="15 failed attempts")
        health = log.health()
        assert health["writer_alive"] and health["retrying"] and not health["ok"]
        assert "locked" in health["last_error"] and log.written == 0
        for i in range(50, 100):
            log.record(**entry(i))
    finally:
        holder.close()
    wait_for(lambda: log.written == 100, what="every entry after the lock is released")
    assert log.health()["ok"]
    log.close()
    assert rows(url, "select count(distinct request_id) from predictions") == [(100,)]


def test_an_entry_that_waited_through_a_slow_write_is_not_held_another_interval(sqlite_log):
    """The flush interval counts from when an entry was queued: one queued while the
    writer was stuck on the previous batch is written right after it (it used to wait a
    whole interval more, so a crash then lost older answers than the docs promise)."""
    url, path = sqlite_log
    log = PredictionLog(url, flush_seconds=2.0, retry_seconds=0.05)
    holder = lock(path)
    try:
        log.record(**entry(0))  # the writer takes it, waits its interval, hits the lock
        wait_for(lambda: log.health()["failures"] >= 1, what="the writer to hit the lock")
        log.record(**entry(1))
        time.sleep(2.2)  # entry 1's own interval has passed while the writer was stuck
    finally:
        holder.close()
    wait_for(lambda: log.written >= 1, timeout=10, what="the first batch after the lock")
    wait_for(lambda: log.written == 2, timeout=1.0, what="the entry that already waited")
    log.close()


def test_the_queue_is_bounded_and_what_it_drops_is_counted(sqlite_log):
    url, path = sqlite_log
    log = PredictionLog(url, flush_seconds=0.01, retry_seconds=0.05, max_queue=10)
    holder = lock(path)
    try:
        log.record(**entry(0))  # taken by the writer, which then waits on the lock
        wait_for(lambda: log.health()["failures"] >= 1, what="the writer to hit the lock")
        for i in range(1, 26):
            log.record(**entry(i))
        assert log.health()["queued"] == 10 and log.health()["dropped"] == 15
    finally:
        holder.close()
    log.close()
    assert rows(url, "select count(*) from predictions") == [(11,)]


def test_close_gives_up_on_a_database_that_stays_locked_and_reports_the_loss(sqlite_log, caplog):
    url, path = sqlite_log
    log = PredictionLog(url, flush_seconds=0.01, retry_seconds=0.05, close_seconds=0.5)
    holder = lock(path)
    try:
        for i in range(3):
            log.record(**entry(i))
        started = time.monotonic()
        log.close()
        assert time.monotonic() - started < 15
    finally:
        holder.close()
    assert log.dropped == 3 and not log.health()["writer_alive"]
    assert "3 answered predictions were not logged" in caplog.text


def test_a_new_sqlite_log_has_16_kib_pages_and_an_old_one_keeps_its_own(tmp_path):
    """Large pages halve the writer's CPU for 100-row bodies (benchmarks/serve.py); a log
    created before keeps its 4 KiB pages and is written as before."""
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("pragma page_size=4096")
        conn.execute("pragma journal_mode=WAL")
        conn.execute("create table keep (x)")
    for path in (tmp_path / "new.db", old):
        log = PredictionLog(f"sqlite:///{path}")
        body = json.dumps({"records": [{"x": "y" * 400}] * 100})
        log.record(**{**entry(1), "inputs": json.loads(body)})
        log.close()
        conn = sqlite3.connect(path)
        stored = conn.execute("select inputs from predictions").fetchone()[0]
        assert json.loads(stored_text(stored)) == json.loads(body)
        pages = conn.execute("pragma page_size").fetchone()[0]
        assert pages == (4096 if path == old else 16384)
        conn.close()


def big_body(seed):
    """A 100-row body as a client spaces it (~20 KB): over COMPRESS_FROM."""
    records = [{"id": f"C{seed}-{i:05d}", "tenure": i, "plan": "premium"} for i in range(100)]
    return json.dumps({"records": records}, indent=1).encode()


def test_a_large_body_reads_back_exactly_as_sent(log_url):
    """The body and the answer of a many-row request come back byte for byte through
    read_predictions, whether stored compressed (SQLite) or as text (PostgreSQL)."""
    body, answer = big_body(1), json.dumps({"predictions": [0.5] * 600}).encode()
    assert len(body) >= COMPRESS_FROM and len(answer) >= COMPRESS_FROM
    log = PredictionLog(log_url)
    log.record(**{**entry(1), "inputs": orjson.Fragment(body), "outputs": orjson.Fragment(answer)})
    log.record(**entry(2))
    log.close()
    logged = read_predictions(log_url).set_index("request_id")
    assert logged.loc["r1", "inputs"] == body.decode()
    assert logged.loc["r1", "outputs"] == answer.decode()
    assert logged.loc["r2", "inputs"] == '{"records":[{"x":2}]}'


def test_sqlite_stores_a_large_body_as_an_lz4_frame_and_a_small_one_as_text(tmp_path):
    """A fifth of the bytes for the writer to write twice (WAL, checkpoint); a standard
    LZ4 frame (its magic number first), so `lz4 -d` reads it too."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    body = big_body(2)
    log = PredictionLog(url)
    log.record(**{**entry(1), "inputs": orjson.Fragment(body)})
    log.record(**entry(2))
    log.close()
    stored = dict(rows(url, "select request_id, inputs from predictions"))
    assert isinstance(stored["r1"], bytes) and stored["r1"][:4] == b"\x04\x22\x4d\x18"
    assert len(stored["r1"]) < len(body) / 3
    assert stored_text(stored["r1"]) == body.decode()
    assert stored["r2"] == '{"records":[{"x":2}]}'


def test_an_old_log_with_large_text_bodies_still_reads_and_takes_new_entries(tmp_path):
    """A log written before compression (every value JSON text) reads as before, and
    entries compressed after it read alongside."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    PredictionLog(url).close()  # the table as every version created it
    old = big_body(3).decode()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "insert into predictions (request_id, ts, model_name, model_version, route,"
            " latency_ms, n_rows, inputs, outputs) values ('old', 1.0, 'churn', '1',"
            " 'champion', 1.0, 100, ?, '{\"predictions\":[1]}')",
            (old,),
        )
    conn.close()
    log = PredictionLog(url)
    log.record(**{**entry(1), "inputs": orjson.Fragment(big_body(4))})
    log.close()
    logged = read_predictions(url).set_index("request_id")
    assert logged.loc["old", "inputs"] == old
    assert logged.loc["r1", "inputs"] == big_body(4).decode()
    assert json.loads(logged.loc["old", "outputs"]) == {"predictions": [1]}


def test_without_an_lz4_codec_the_log_keeps_text(tmp_path, monkeypatch):
    """A pyarrow built without LZ4 must not stop the service: large values stay text."""
    import pyarrow as pa

    monkeypatch.setattr(
        pa, "Codec", type("NoLz4", (), {"is_available": staticmethod(lambda name: False)})
    )
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url)
    log.record(**{**entry(1), "inputs": orjson.Fragment(big_body(5))})
    log.close()
    assert rows(url, "select inputs from predictions") == [(big_body(5).decode(),)]
