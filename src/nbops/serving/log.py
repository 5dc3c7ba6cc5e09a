"""The prediction log: every answered request, written in batches off the request path.

``record()`` puts an entry on a bounded in-memory queue and returns at once; a writer
thread inserts queued entries in one transaction every ``flush_seconds`` (or sooner when
``batch_size`` are waiting). ``close()`` (graceful shutdown, SIGTERM) drains the queue.

The writer survives anything one entry or the database can do: each entry is serialised
on its own (a value that cannot be written, e.g. nested deeper than orjson writes, is
logged as a placeholder naming the problem); a locked or unreachable database is retried
with backoff, without limit, while new entries wait in the queue; an entry the database
refuses is isolated from its batch and logged as a placeholder. Memory stays bounded:
once ``max_queue`` entries wait (a long outage), new ones are dropped and counted.
:meth:`PredictionLog.health` reports all of this for ``/ready`` and ``/metrics``.

Guarantee: every prediction answered before a *graceful* shutdown is in the log, unless
the database is still unreachable ``close_seconds`` into the shutdown or the queue was
full (both counted and reported). When the process dies (``kill -9``, the OOM killer) only
the newest entries may be lost: those queued in the last ``flush_seconds`` (default 0.05 s,
counted from when the oldest of them was queued) and the batch being written. Batches
are written in queue order, so no older entry is ever missing; the log itself stays
consistent (each batch is one transaction; SQLite runs in WAL mode). A power cut may
also lose the batches committed since SQLite's last checkpoint (``synchronous=NORMAL``).

Format: ``inputs`` is the request body exactly as sent and ``outputs`` the answer's
JSON. On SQLite a value of ``COMPRESS_FROM`` bytes or more (a 100-row body is ~40 KB)
is stored as an LZ4 frame (a BLOB): the writer then writes a fifth of the bytes, each of
them twice in WAL mode (to the WAL, then at the checkpoint), for about a third of its
CPU. Smaller values, every value on PostgreSQL (which compresses large text itself) and
every row of a log written before are JSON text. :func:`read_predictions` gives text
either way (:func:`stored_text`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from nbops.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPRESS_FROM", "PredictionLog", "read_feedback", "read_predictions", "stored_text"]

logger = logging.getLogger(__name__)

_METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("route", sa.String(20), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
)
FEEDBACK = sa.Table(
    "feedback",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
)

#: Errors that say the database, not the entry, is the problem (locked, unreachable,
#: disk full, pool exhausted): the same batch is retried later.
_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
#: Page size of a new SQLite log (see _engine).
_PAGE_SIZE = 16384
#: On SQLite, inputs and outputs of at least this many bytes are stored as LZ4 frames:
#: below it compression saves no page and only costs time (a 1-row body is ~400 bytes).
COMPRESS_FROM = 2048
#: What the writer stores per entry, in this order.
_FIELDS = (
    "request_id",
    "ts",
    "model_name",
    "model_version",
    "route",
    "latency_ms",
    "n_rows",
    "inputs",
    "outputs",
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def stored_text(value: str | bytes | memoryview) -> str:
    """A logged ``inputs`` or ``outputs`` value as its JSON text: text as it is, an LZ4
    frame (a large value on SQLite, see the module doc) decompressed."""
    if isinstance(value, str):
        return value
    import pyarrow as pa

    return pa.input_stream(pa.py_buffer(value), compression="lz4").read().decode()


def _placeholder(problem: str) -> str:
    """What the log holds instead of a value it cannot store: valid JSON naming why."""
    return _dumps({"nbops_unlogged": problem})


def _engine(url: str, *, busy_seconds: float = 5.0) -> sa.Engine:
    # PostgreSQL through psycopg 3 (installed with nbops) unless the URL names a driver.
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        from nbops.tracking.redact import display_url

        # Shown without its password: the message reaches the terminal, the service's
        # log and the monitoring notebook's error (its report and record).
        raise ConfigError(
            f"NBOPS_PREDICTION_LOG={display_url(url)!r} is not a usable SQLAlchemy URL "
            f"({display_url(str(exc))}). "
            "Use sqlite:////path/to/log.db or postgresql://user:password@host/db."
        ) from exc
    if engine.dialect.name == "sqlite":
        busy_ms = max(int(busy_seconds * 1000), 1)

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:
            # WAL: readers never block the writer. synchronous=NORMAL in WAL mode loses no
            # committed batch when the process dies, only on power loss (see module doc).
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            # A new log gets 16 KiB pages (SQLite's default is 4 KiB): an entry holds the
            # request body as sent, ~40 KB for 100 rows, and its overflow pages are each
            # written to the WAL and again at the checkpoint: four times fewer writes
            # halve the writer's CPU. No effect on an existing database.
            cursor.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


class PredictionLog:
    """The service's prediction log (see the module doc for what it guarantees).

    Args:
        flush_seconds: how long an entry may wait before its batch is written.
        batch_size: entries per transaction at most (a full batch is written at once).
        max_queue: entries waiting at most; beyond it new entries are dropped and counted.
        retry_seconds: longest pause between attempts while the database fails (the
            pause doubles from 50 ms up to this), and SQLite's busy timeout per attempt.
        close_seconds: how long ``close()`` waits for the queue to drain.
    """

    def __init__(
        self,
        url: str,
        *,
        flush_seconds: float = 0.05,
        batch_size: int = 500,
        max_queue: int = 100_000,
        retry_seconds: float = 2.0,
        close_seconds: float = 30.0,
    ) -> None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(url, busy_seconds=min(retry_seconds, 5.0))
        _METADATA.create_all(self.engine)
        # The INSERT in the database's own dialect, compiled once: a batch goes to the
        # driver's executemany as it is, without SQLAlchemy's per-row parameter handling
        # (a third of the writer's CPU for 100-row requests).
        compiled = (
            PREDICTIONS.insert()
            .values({name: sa.bindparam(name) for name in _FIELDS})
            .compile(dialect=self.engine.dialect)
        )
        self._insert_sql = str(compiled)
        self._insert_order = list(compiled.positiontup or ()) if compiled.positional else None
        # LZ4 through pyarrow (a dependency already): ~20 µs for a 40 KB body, which
        # saves ~80 µs of SQLite writes. Only where a column can hold bytes.
        # (A pyarrow built without LZ4 keeps the text.)
        self._lz4 = None
        if self.engine.dialect.name == "sqlite":
            import pyarrow as pa

            if pa.Codec.is_available("lz4"):
                self._lz4 = pa.Codec("lz4")
        self.flush_seconds, self.batch_size = flush_seconds, batch_size
        self.max_queue, self.retry_seconds, self.close_seconds = (
            max_queue,
            retry_seconds,
            close_seconds,
        )
        # Unbounded as a structure so close() can always enqueue its wake-up; record()
        # enforces max_queue itself.
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._counts_lock = threading.Lock()
        self.written = 0
        #: entries never written: queue full, or refused / unreachable at shutdown
        self.dropped = 0
        #: entries written with a placeholder for a value that could not be stored
        self.placeholders = 0
        #: failed write attempts (each is retried) since the start
        self.failures = 0
        self.last_error: str | None = None
        #: True from a failed attempt until the next successful write
        self.retrying = False
        self._closing = threading.Event()
        #: set when a batch is full or on close(): the writer stops gathering and writes
        self._full = threading.Event()
        self._abandon = threading.Event()
        self._writer = threading.Thread(target=self._run, name="nbops-prediction-log", daemon=True)
        self._writer.start()

    def record(
        self,
        *,
        request_id: str,
        model_name: str,
        model_version: str,
        route: str,
        latency_ms: float,
        inputs: Any,
        outputs: Any,
        n_rows: int,
    ) -> None:
        waiting = self._queue.qsize()
        if waiting >= self.max_queue:
            self._count("dropped", 1)
            return
        if waiting + 1 >= self.batch_size and not self._full.is_set():
            self._full.set()  # a full batch is written at once
        self._queue.put(
            {
                "request_id": request_id,
                "ts": time.time(),
                "model_name": model_name,
                "model_version": model_version,
                "route": route,
                "latency_ms": latency_ms,
                "n_rows": n_rows,
                "inputs": inputs,  # serialised by the writer thread, off the request path
                "outputs": outputs,
            }
        )

    def health(self) -> dict[str, Any]:
        """The writer's state: ``ok`` is False when the writer thread is gone (nothing
        more will be logged) or the database is failing (entries wait and are retried)."""
        alive = self._writer.is_alive()
        return {
            "ok": alive and not self.retrying,
            "writer_alive": alive,
            "retrying": self.retrying,
            "queued": self._queue.qsize(),
            "written": self.written,
            "dropped": self.dropped,
            "placeholders": self.placeholders,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def feedback(self, request_id: str, labels: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                FEEDBACK.insert(),
                [
                    {
                        "request_id": request_id,
                        "ts": time.time(),
                        "labels": _dumps(labels),
                    }
                ],
            )

    def known_request(self, request_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(PREDICTIONS.c.id)
                    .where(PREDICTIONS.c.request_id == request_id)
                    .limit(1)
                ).first()
                is not None
            )

    # -- the writer thread ----------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        with self._counts_lock:
            setattr(self, name, getattr(self, name) + n)

    def _run(self) -> None:
        while True:
            try:
                batch, stop = self._collect()
                if batch:
                    self._write(batch)
                if stop:
                    return
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the log for good
                logger.exception("prediction log writer: unexpected error, continuing")
                self.last_error = f"{type(exc).__name__}: {exc}"

    def _collect(self) -> tuple[list[dict[str, Any]], bool]:
        """The next batch: waits up to ``flush_seconds`` for its first entry, then
        gathers more for at most ``flush_seconds``; (batch, stop) with stop on close()."""
        batch: list[dict[str, Any]] = []
        try:
            item = self._queue.get(timeout=self.flush_seconds)
        except queue.Empty:
            return batch, False
        if item is None:
            return self._rest(batch), True
        batch.append(item)
        # Sleep through the rest of the first entry's interval, then take what has come:
        # waking for every entry would cost each request a thread switch and a hand-over
        # of the GIL. The interval counts from when that entry was queued, not from now:
        # it may have waited while the previous batch was written, and a crash loses at
        # most what waits in one interval plus the batch being written.
        self._full.wait(max(item["ts"] + self.flush_seconds - time.time(), 0.0))
        self._full.clear()
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return self._rest(batch), True
            batch.append(item)
        return batch, False

    def _rest(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Shutdown: everything still queued goes into the last batches.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch
            if item is not None:
                batch.append(item)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        rows = [self._serialise(entry) for entry in batch]
        for start in range(0, len(rows), self.batch_size):
            self._insert(rows[start : start + self.batch_size])

    def _serialise(self, entry: dict[str, Any]) -> dict[str, Any]:
        row = dict(entry)
        for key in ("inputs", "outputs"):
            try:
                data = orjson.dumps(entry[key], default=str, option=orjson.OPT_SERIALIZE_NUMPY)
                if self._lz4 is not None and len(data) >= COMPRESS_FROM:
                    row[key] = self._lz4.compress(data, asbytes=True)
                else:
                    row[key] = data.decode()
            except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
                row[key] = _placeholder(f"{key} could not be serialised: {exc}")
                self._count("placeholders", 1)
        return row

    def _insert(self, rows: list[dict[str, Any]], *, replaced: bool = False) -> None:
        """Insert ``rows`` in one transaction; retry while the database fails; isolate
        and replace an entry the database refuses."""
        pause = 0.05
        while True:
            try:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(self._insert_sql, self._parameters(rows))
            except _TRANSIENT as exc:
                self._failed(exc)
                if self._abandon.is_set():
                    self._count("dropped", len(rows))
                    return
                self._abandon.wait(pause)  # wakes at once when close() gives up
                pause = min(pause * 2, self.retry_seconds)
                continue
            except Exception as exc:  # noqa: BLE001 - refused by the database: find the entry
                self._failed(exc, transient=False)
                if len(rows) > 1:
                    for row in rows:
                        self._insert([row])
                    return
                if replaced:
                    logger.error("prediction log: entry %s dropped: %s", rows[0]["request_id"], exc)
                    self._count("dropped", 1)
                    return
                rows, replaced = [self._replaced(rows[0], exc)], True
                continue
            with self._counts_lock:
                self.written += len(rows)
                self.retrying = False
            return

    def _parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        if self._insert_order is None:  # named parameters (psycopg): the rows as they are
            return [{name: row[name] for name in _FIELDS} for row in rows]
        get = itemgetter(*self._insert_order)
        return [get(row) for row in rows]

    def _replaced(self, row: dict[str, Any], exc: Exception) -> dict[str, Any]:
        self._count("placeholders", 1)
        logger.warning(
            "prediction log: entry %s refused by the database (%s); logged as a placeholder",
            row["request_id"],
            type(exc).__name__,
        )
        problem = _placeholder(f"refused by the database: {type(exc).__name__}")

        def text(value: Any, size: int) -> str:
            return str(value).replace("\x00", "")[:size]

        return {
            **row,
            "request_id": text(row["request_id"], 64),
            "model_name": text(row["model_name"], 200),
            "model_version": text(row["model_version"], 50),
            "route": text(row["route"], 20),
            "inputs": problem,
            "outputs": problem,
        }

    def _failed(self, exc: Exception, *, transient: bool = True) -> None:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        first = transient and not self.retrying
        with self._counts_lock:
            self.failures += 1
            self.retrying = self.retrying or transient
            self.last_error = message
        if first:
            logger.warning("prediction log: write failed, retrying with backoff: %s", message)

    def close(self) -> None:
        """Drain the queue and stop the writer (graceful shutdown).

        Waits up to ``close_seconds`` for a failing database; what is still unwritten
        then is counted in ``dropped`` and named in an error log line."""
        self._closing.set()
        self._queue.put(None)
        self._full.set()
        self._writer.join(timeout=self.close_seconds)
        if self._writer.is_alive():
            self._abandon.set()
            self._writer.join(timeout=10)
        if self.dropped:
            logger.error(
                "prediction log: %d answered predictions were not logged (%s)",
                self.dropped,
                self.last_error or "the queue was full",
            )
        self.engine.dispose()


def read_predictions(
    url: str,
    *,
    since: float | None = None,
    until: float | None = None,
    model_name: str | None = None,
    exclude_routes: tuple[str, ...] = ("shadow",),
) -> pd.DataFrame:
    """Logged requests between ``since`` and ``until`` (epoch seconds), oldest first."""
    query = sa.select(PREDICTIONS).order_by(PREDICTIONS.c.ts)
    if since is not None:
        query = query.where(PREDICTIONS.c.ts >= since)
    if until is not None:
        query = query.where(PREDICTIONS.c.ts < until)
    if model_name is not None:
        query = query.where(PREDICTIONS.c.model_name == model_name)
    if exclude_routes:
        query = query.where(PREDICTIONS.c.route.not_in(exclude_routes))
    return _read(url, query, [c.name for c in PREDICTIONS.columns])


def read_feedback(url: str, *, since: float | None = None) -> pd.DataFrame:
    """Labels sent to ``/feedback`` (``request_id, ts, labels`` as JSON text)."""
    query = sa.select(FEEDBACK).order_by(FEEDBACK.c.ts)
    if since is not None:
        query = query.where(FEEDBACK.c.ts >= since)
    return _read(url, query, [c.name for c in FEEDBACK.columns])


def require_log(url: str) -> None:
    """Raise unless the log at ``url`` may hold requests (an SQLite file that does not
    exist holds none; a server's log is asked when read).

    Raises:
        ConfigError: no SQLite log file at ``url``.
    """
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise ConfigError(
            f"No prediction log at {url}: nothing has been served with this log yet. "
            "Check NBOPS_PREDICTION_LOG (the log `nbops serve` writes; default "
            ".nbops/predictions.db), or monitor a batch file with --data FILE."
        )


def _read(url: str, query: Any, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    require_log(url)
    engine = _engine(url)
    try:
        _METADATA.create_all(engine)  # an empty log reads as no rows
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    finally:
        engine.dispose()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    for name in ("inputs", "outputs"):
        if name in frame.columns and len(frame):
            frame[name] = frame[name].map(stored_text)
    return frame
