"""The prediction log: every answered request, written in batches off the request path.

``record()`` puts an entry on an in-memory queue and returns at once; a writer thread
inserts queued entries in one transaction every ``flush_seconds`` (or sooner when
``batch_size`` are waiting). ``close()`` (graceful shutdown, SIGTERM) drains the queue.

Guarantee: every prediction answered before a *graceful* shutdown is in the log. On a
hard crash (``kill -9``, power loss) the entries of at most the last ``flush_seconds``
(default 0.05 s) may be lost; the log itself stays consistent (each batch is one
transaction; SQLite runs in WAL mode).
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from nbops.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PredictionLog", "read_feedback", "read_predictions"]

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


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _engine(url: str) -> sa.Engine:
    # PostgreSQL through psycopg 3 (installed with nbops) unless the URL names a driver.
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"NBOPS_PREDICTION_LOG={url!r} is not a usable SQLAlchemy URL ({exc}). "
            "Use sqlite:////path/to/log.db or postgresql://user:password@host/db."
        ) from exc
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:
            # WAL: readers never block the writer. synchronous=NORMAL in WAL mode loses no
            # committed batch when the process dies, only on power loss (see module doc).
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


class PredictionLog:
    def __init__(self, url: str, *, flush_seconds: float = 0.05, batch_size: int = 500) -> None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(url)
        _METADATA.create_all(self.engine)
        self.flush_seconds, self.batch_size = flush_seconds, batch_size
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.written = 0
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

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self.flush_seconds)
                if item is None:
                    stop = True
                else:
                    batch.append(item)
                deadline = time.monotonic() + self.flush_seconds
                while len(batch) < self.batch_size and time.monotonic() < deadline:
                    try:
                        item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
            except queue.Empty:
                continue
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for entry in batch:
            entry["inputs"], entry["outputs"] = _dumps(entry["inputs"]), _dumps(entry["outputs"])
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    conn.execute(PREDICTIONS.insert(), batch)
                self.written += len(batch)
                return
            except sa.exc.OperationalError:  # e.g. SQLite busy: retry, never drop
                time.sleep(0.05 * (attempt + 1))
        with self.engine.begin() as conn:
            conn.execute(PREDICTIONS.insert(), batch)
        self.written += len(batch)

    def close(self) -> None:
        """Drain the queue and stop the writer (graceful shutdown)."""
        self._queue.put(None)
        self._writer.join(timeout=30)
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


def _read(url: str, query: Any, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise ConfigError(
            f"No prediction log at {url}: nothing has been served with this log yet. "
            "Check NBOPS_PREDICTION_LOG (or env.yaml's monitor.log), or monitor a batch file with --data FILE."
        )
    engine = _engine(url)
    try:
        _METADATA.create_all(engine)  # an empty log reads as no rows
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)
