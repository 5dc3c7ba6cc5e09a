"""The FastAPI app factory: ``create_app(settings)``; uvicorn runs ``app_from_env``.

Endpoints: ``POST /predict``, ``POST /feedback``, ``GET /health`` (alive), ``GET /ready``
(model loaded, log writer running), ``GET /model``, ``GET /metrics`` (Prometheus). Bodies
are counted while they arrive (413 once over the limit, chunked or not), parsed with
orjson and validated against the model's training contract; bad input is a 4xx naming
each field, never a 500. No endpoint runs user-supplied code.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import hmac
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.concurrency import run_in_threadpool

from nbops.serving.log import PredictionLog
from nbops.serving.model import ServedModel, load_served_model
from nbops.serving.settings import Settings
from nbops.serving.validation import Batch, validate

__all__ = ["app_from_env", "create_app"]

logger = logging.getLogger("nbops.serving")

_OPEN = {"/health", "/ready"}
_ENDPOINTS = {
    "/predict",
    "/feedback",
    "/health",
    "/ready",
    "/model",
    "/metrics",
    "/docs",
    "/openapi.json",
}
#: Oversized bodies up to this declared size are read and discarded before the 413 is sent.
_DRAIN_LIMIT = 16 * 1024 * 1024
#: JSON bodies nest at most this deep: no valid request needs more than 3, and the log
#: writes /feedback's labels with orjson, which writes only 255 levels.
_MAX_DEPTH = 16
_PREDICT_KEYS = frozenset({"records", "columns"})
#: Net allocations of containers between two young-generation garbage collections.
_GC_YOUNG = 20_000
_FEEDBACK_KEYS = frozenset({"request_id", "labels"})


def _one_thread() -> None:
    """One BLAS and one OpenMP thread for scoring in the calling thread, for good.

    A worker scores one small batch at a time: scikit-learn's gradient-boosting
    predictor otherwise starts an OpenMP team on every core for each batch, and the
    threads spin-wait for work: 1.6x the CPU of one thread for 100 rows on an idle
    2-core machine, 30x on a busy one. More cores serve more rows through ``--workers``.
    (OpenMP's limit belongs to the thread that sets it: every scoring thread calls this.)
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _threads() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded and the threads each would use here."""
    from threadpoolctl import threadpool_info

    return [
        {"api": info["user_api"], "library": info["internal_api"], "threads": info["num_threads"]}
        for info in threadpool_info()
    ]


def _dump(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _dump(data),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, *, detail: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return _json(body, status)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nbops_requests_total", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "nbops_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.predictions = Counter(
            "nbops_predictions_total",
            "Rows predicted",
            ["model", "version", "route"],
            registry=self.registry,
        )
        self.errors = Counter(
            "nbops_errors_total",
            "Requests answered with an error",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self.reload_failures = Counter(
            "nbops_reload_failures_total",
            "Failed checks or loads of a served alias (the loaded version keeps serving)",
            ["alias"],
            registry=self.registry,
        )
        self.shadow_skipped = Counter(
            "nbops_shadow_skipped_total",
            "Shadow copies not scored because the shadow queue was full",
            registry=self.registry,
        )


class _LogCollector:
    """The prediction log writer's health, read when ``/metrics`` is scraped."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def collect(self) -> Any:
        log: PredictionLog | None = self.state["log"]
        if log is None:
            return
        health = log.health()
        name = "nbops_prediction_log"
        yield GaugeMetricFamily(
            f"{name}_writer_up", "1 while the log writer thread runs", value=health["writer_alive"]
        )
        yield GaugeMetricFamily(
            f"{name}_retrying", "1 while writes fail and are retried", value=health["retrying"]
        )
        yield GaugeMetricFamily(f"{name}_queued", "Entries waiting", value=health["queued"])
        for key, text in (
            ("written", "Entries written"),
            ("dropped", "Entries never written (queue full, or unwritable at shutdown)"),
            ("placeholders", "Entries written with a placeholder for an unstorable value"),
            ("failures", "Failed write attempts (retried)"),
        ):
            yield CounterMetricFamily(f"{name}_{key}", text, value=health[key])


def create_app(settings: Settings) -> _Guard:
    """Build the service for ``settings``; the model is loaded when the app starts.

    Returns the ASGI app uvicorn runs: :class:`_Guard` (token, size limit, metrics, and
    ``POST /predict`` answered directly) around the FastAPI app (``.api``), which serves
    every other endpoint, the OpenAPI document and ``/docs``.
    """
    metrics = _Metrics()
    state: dict[str, Any] = {"model": None, "challenger": None, "log": None}
    metrics.registry.register(_LogCollector(state))

    wants_challenger = settings.canary > 0 or settings.shadow
    shadow_pool = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="nbops-shadow", initializer=_one_thread
    )
    # The executor's own queue is unbounded: a slow challenger must not grow memory.
    shadow_slots = threading.BoundedSemaphore(settings.shadow_queue)

    def load_challenger() -> ServedModel | None:
        from nbops.errors import ReleaseError

        try:
            return load_served_model(settings.root, settings.model, "challenger")
        except ReleaseError:
            return None  # no challenger: canary and shadow wait for one

    last_failure: dict[str, str] = {}

    def reload_failed(alias: str, exc: Exception) -> None:
        metrics.reload_failures.labels(alias).inc()
        message = f"{type(exc).__name__}: {exc}"
        if last_failure.get(alias) != message:  # one line per new problem, not per check
            held = state["model" if alias == settings.alias else "challenger"]
            logger.warning(
                "reload of %s@%s failed; still serving %s: %s",
                settings.model,
                alias,
                f"version {held.version}" if held is not None else "nothing for it",
                message,
            )
        last_failure[alias] = message

    def reload_loop(stop: threading.Event) -> None:
        from nbops.tracking.registry import Registry

        # Each alias is checked on its own: a champion that fails to load must not keep
        # the challenger (canary, shadow) from being refreshed, and the reverse.
        while not stop.wait(settings.reload_seconds):
            try:
                registry = Registry(settings.root)
                current = registry.alias(settings.model, settings.alias)
                if current is not None and current.version != state["model"].version:
                    state["model"] = load_served_model(
                        settings.root, settings.model, settings.alias
                    )  # atomic swap
                last_failure.pop(settings.alias, None)
            except Exception as exc:  # noqa: BLE001 - keep serving the loaded version
                reload_failed(settings.alias, exc)
            if not wants_challenger:
                continue
            try:
                registry = Registry(settings.root)
                challenger = registry.alias(settings.model, "challenger")
                held = state["challenger"]
                if challenger is None:
                    state["challenger"] = None
                elif held is None or held.version != challenger.version:
                    state["challenger"] = load_served_model(
                        settings.root, settings.model, "challenger"
                    )
                last_failure.pop("challenger", None)
            except Exception as exc:  # noqa: BLE001 - keep the loaded challenger
                reload_failed("challenger", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["model"] = load_served_model(settings.root, settings.model, settings.alias)
        state["challenger"] = load_challenger() if wants_challenger else None
        # After the model's libraries are loaded (threadpoolctl limits those it finds).
        _one_thread()
        state["log"] = PredictionLog(
            settings.prediction_log_url,
            flush_seconds=settings.log_flush_seconds,
            max_queue=settings.log_queue,
            retry_seconds=settings.log_retry_seconds,
        )
        stop = threading.Event()
        threading.Thread(
            target=reload_loop, args=(stop,), name="nbops-alias-watch", daemon=True
        ).start()
        # Everything loaded so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise pause requests for ~100 ms.
        gc.collect()
        gc.freeze()
        # A 100-row request allocates a few hundred dicts and lists, so with the default
        # threshold (700 net allocations) a young-generation pass ran every few
        # requests, about a tenth of a 100-row request's CPU; a pass still runs after at
        # most 20,000 allocations, so cyclic garbage stays bounded.
        gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])
        # The log writer and alias watcher are Python threads: let them hand the GIL
        # back to the request loop after 1 ms instead of the default 5 ms (p99 latency).
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            stop.set()
            shadow_pool.shutdown(wait=True)  # shadow answers are logged too
            state["log"].close()  # flush every answered prediction

    app = FastAPI(
        title="nbops prediction service",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        model: ServedModel | None = state["model"]
        log: PredictionLog | None = state["log"]
        if model is None or log is None:
            return _json({"ready": False}, 503)
        health = log.health()
        # A failing database keeps the service ready (answers wait in the log's queue and
        # are retried); a dead writer does not: nothing answered from then on is logged.
        return _json(
            {
                "ready": health["writer_alive"],
                "model": model.name,
                "version": model.version,
                "log": health,
            },
            200 if health["writer_alive"] else 503,
        )

    @app.get("/model")
    async def model_info() -> Response:
        challenger = state["challenger"]
        routing = {
            "canary": settings.canary,
            "shadow": settings.shadow,
            "challenger": challenger.version if challenger else None,
        }
        return _json({**state["model"].describe(), "routing": routing, "threads": _threads()})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/predict",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        status, content = score(await request.body(), request.headers.get("x-routing-key"))
        return Response(content, status_code=status, media_type="application/json")

    @functools.cache
    def predicted(name: str, version: str, route: str) -> Any:
        # One child per served version: .labels() takes a lock and checks its values.
        return metrics.predictions.labels(name, version, route)

    def score(body: bytes, routing_key: str | None) -> tuple[int, bytes]:
        """POST /predict: (status, JSON body). Shared by the FastAPI route and the raw
        ASGI fast path in :class:`_Guard`."""
        started = time.perf_counter()
        if len(body) > settings.max_body_bytes:
            return 413, _dump(
                {
                    "error": f"request body of {len(body)} bytes is over the limit of {settings.max_body_bytes}; send fewer rows per request"
                }
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.errors.labels("/predict", "json").inc()
            return 400, _dump({"error": f"the body is not valid JSON: {exc}"})
        shape = _shape_errors(payload, _PREDICT_KEYS, body)
        if shape:
            metrics.errors.labels("/predict", "validation").inc()
            return 422, _dump(
                {"error": "the request has fields it may not have (see detail)", "detail": shape}
            )
        model: ServedModel = state["model"]
        challenger: ServedModel | None = state["challenger"]
        if (
            challenger is not None
            and settings.canary > 0
            and _in_canary(routing_key, settings.canary)
        ):
            model = challenger
        batch, errors = validate(
            payload,
            model.features,
            max_rows=settings.max_rows,
            reject_unseen=settings.unseen_categories == "reject",
            ignore=model.ignored,
        )
        if errors:
            metrics.errors.labels("/predict", "validation").inc()
            return 422, _dump(
                {
                    "error": "the request does not match the model's input schema (see detail; GET /model lists it)",
                    "detail": [e.to_dict() for e in errors],
                }
            )
        assert batch is not None
        answer = model.answer(batch)  # JSON: {"predictions": [...], "probabilities": [...]}
        request_id = uuid.uuid4().hex
        # The log stores the body as it came (valid JSON: orjson just read it) and the
        # answer as sent, without serialising either again.
        inputs = orjson.Fragment(body)
        state["log"].record(
            request_id=request_id,
            model_name=model.name,
            model_version=model.version,
            route=model.alias,
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs=inputs,
            outputs=orjson.Fragment(answer),
            n_rows=batch.n_rows,
        )
        predicted(model.name, model.version, model.alias).inc(batch.n_rows)
        if settings.shadow and challenger is not None and model is not challenger:
            if shadow_slots.acquire(blocking=False):
                shadow_pool.submit(shadow_score, challenger, batch, inputs, request_id)
            else:
                metrics.shadow_skipped.inc()
        head = _dump(
            {
                "request_id": request_id,
                "model": {"name": model.name, "version": model.version, "alias": model.alias},
            }
        )
        return 200, head[:-1] + b"," + answer[1:]  # the answer's fields follow the head's

    def shadow_score(
        challenger: ServedModel, batch: Batch, inputs: orjson.Fragment, request_id: str
    ) -> None:
        started = time.perf_counter()
        try:
            shadow_call(challenger, batch, inputs, request_id, started)
        finally:
            shadow_slots.release()

    def shadow_call(
        challenger: ServedModel,
        batch: Batch,
        inputs: orjson.Fragment,
        request_id: str,
        started: float,
    ) -> None:
        with contextlib.suppress(Exception):  # a failing shadow never affects the answer
            answer = challenger.answer(batch)
            state["log"].record(
                request_id=request_id,
                model_name=challenger.name,
                model_version=challenger.version,
                route="shadow",
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=inputs,
                outputs=orjson.Fragment(answer),
                n_rows=batch.n_rows,
            )
            metrics.predictions.labels(challenger.name, challenger.version, "shadow").inc(
                batch.n_rows
            )

    @app.post(
        "/feedback",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}
                },
            }
        },
    )
    async def feedback(request: Request) -> Response:
        body = await request.body()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.errors.labels("/feedback", "json").inc()
            return _error(400, f"the body is not valid JSON: {exc}")
        problems = _feedback_errors(payload, body, max_rows=settings.max_rows)
        if problems:
            metrics.errors.labels("/feedback", "validation").inc()
            return _error(
                422,
                'expected {"request_id": "<id from /predict>", "labels": [<true value per row>]}',
                detail=problems,
            )
        # The database is reached from a worker thread: a slow or locked log must not
        # stall the event loop, which answers /predict.
        return await run_in_threadpool(store_feedback, payload["request_id"], payload["labels"])

    def store_feedback(request_id: str, labels: Any) -> Response:
        import sqlalchemy as sa

        log: PredictionLog = state["log"]
        try:
            if not log.known_request(request_id):
                return _error(
                    404,
                    f"unknown request_id {request_id!r}: send feedback for ids returned by /predict (they are logged within a fraction of a second)",
                )
            log.feedback(request_id, labels)
        except sa.exc.SQLAlchemyError as exc:
            metrics.errors.labels("/feedback", "log").inc()
            logger.warning("feedback for %s not stored: %s", request_id, exc)
            return _error(
                503,
                f"the prediction log is unavailable ({type(exc).__name__}); send the feedback again later",
            )
        return _json({"ok": True})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        model: ServedModel | None = state["model"]
        properties: dict[str, Any] = {}
        for f in model.features if model else []:
            kind = _field_schema(f.role)
            if f.categories and f.role == "categorical" and settings.unseen_categories == "reject":
                kind = {**kind, "enum": list(f.categories)}
            properties[f.name] = {"anyOf": [kind, {"type": "null"}]} if f.nullable else kind
        row = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["FeedbackRequest"] = {
            "type": "object",
            "required": ["request_id", "labels"],
            "properties": {
                "request_id": {
                    "type": "string",
                    "description": "the request_id a /predict answer returned",
                },
                "labels": {"type": "array", "description": "the true value for each row"},
            },
        }
        schemas["PredictRequest"] = {
            "type": "object",
            "required": ["records"],
            "properties": {
                "records": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.max_rows,
                    "items": row,
                }
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return _Guard(app, settings=settings, metrics=metrics, predict=score)


class _Guard:
    """Pure ASGI middleware (no per-request task, unlike ``@app.middleware``): bearer
    token, body size limit, request counts and latency per endpoint."""

    def __init__(
        self,
        app: FastAPI,
        *,
        settings: Settings,
        metrics: _Metrics,
        predict: Callable[[bytes, str | None], tuple[int, bytes]],
    ) -> None:
        self.api = self.app = app
        self.settings, self.metrics, self.predict = settings, metrics, predict
        self.expected = f"Bearer {settings.token}".encode() if settings.token else None
        # /predict's metric children, looked up once (.labels() takes a lock per call).
        self.predict_latency = metrics.latency.labels("/predict")
        self.answered = functools.cache(
            lambda status: metrics.requests.labels("/predict", str(status))
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in _ENDPOINTS else "other"  # bounded label values
        headers = dict(scope["headers"])
        if (
            self.expected is not None
            and path not in _OPEN
            and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected)
        ):
            self.metrics.errors.labels(endpoint, "auth").inc()
            self.metrics.requests.labels(endpoint, "401").inc()
            await _error(
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <NBOPS_API_TOKEN>'",
            )(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            if int(length) <= _DRAIN_LIMIT:
                # Read and discard the body so the client finishes sending and reads the
                # 413; answering mid-upload makes it see a broken pipe instead.
                while (await receive()).get("more_body"):
                    pass
            await self.too_large(scope, receive, send, endpoint, f"{int(length)} bytes")
            return
        # Counted while it arrives, whatever the framing (chunked uploads declare no
        # length): at most the limit is ever held in memory.
        try:
            body = await _read_body(receive, self.settings.max_body_bytes)
        except _ClientGone:
            return  # nothing to answer, and a partial body must not be scored or logged
        if body is None:
            await self.too_large(scope, receive, send, endpoint, "more bytes")
            return
        if path == "/predict" and scope["method"] == "POST":
            # The hot path, without the framework's per-request layers.
            status = 500
            try:
                status, content = self.predict(
                    body, headers.get(b"x-routing-key", b"").decode("latin-1") or None
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": content})
            finally:
                self.answered(status).inc()
                self.predict_latency.observe(time.perf_counter() - started)
            return
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # http.disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay, send_status)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def too_large(
        self, scope: Any, receive: Any, send: Any, endpoint: str, size: str
    ) -> None:
        self.metrics.requests.labels(endpoint, "413").inc()
        self.metrics.errors.labels(endpoint, "too_large").inc()
        await _error(
            413,
            f"request body of {size} is over the limit of {self.settings.max_body_bytes} bytes (NBOPS_MAX_BODY_BYTES); send fewer rows per request",
        )(scope, receive, send)


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it is over ``limit`` bytes (the rest is
    left unread: uvicorn discards it after the answer)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body"):  # one message: every small request
        return body if len(body) <= limit else None
    chunks, size = [body], len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_deep(value: Any, levels: int, brackets: int | None = None) -> list[Any] | None:
    """The path to a container nested more than ``levels`` deep in ``value``, or None.

    Walks one level at a time, scanning the types of a level's values in C, and stops
    once it has met as many containers as the body has opening brackets (``brackets``:
    each object or list has one, strings may add more), so a body of 100 flat records
    costs a glance at its records, not a Python call per value. Only a body that is
    too deep is walked again to name the path (:func:`_deep_path`).
    """
    level, seen = [value], 0
    for depth in range(levels + 1):
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            return None
        if depth == levels:
            return _deep_path(value, levels)
        seen += len(containers)
        if brackets is not None and seen >= brackets:
            return None  # every bracket belongs to a container seen: none is deeper
        level = list(
            chain.from_iterable(v.values() if isinstance(v, dict) else v for v in containers)
        )
        if not any(issubclass(kind, (dict, list)) for kind in set(map(type, level))):
            return None  # only scalars below this level
    return None


def _deep_path(value: Any, levels: int) -> list[Any] | None:
    """:func:`_too_deep` by recursion, first path in document order. Recursion is bounded
    by ``levels``, so this never hits Python's recursion limit."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    if levels == 0:
        return []
    for key, child in items:
        if isinstance(child, (dict, list)):
            path = _deep_path(child, levels - 1)
            if path is not None:
                return [key, *path]
    return None


def _shape_errors(payload: Any, allowed: frozenset[str], body: bytes) -> list[dict[str, Any]]:
    """Unknown top-level fields and excessive nesting, as field errors (``[]``: fine).

    Checked before validation, so a field the model ignores is held to it too."""
    errors: list[dict[str, Any]] = []
    if isinstance(payload, dict) and not payload.keys() <= allowed:
        errors += [
            {
                "loc": ["body", key],
                "msg": f"unknown field; expected only {' and '.join(sorted(allowed))}",
            }
            for key in payload
            if key not in allowed
        ]
    # Counting brackets is C-fast (a byte | 32 is "{" for "[" and "{" alone) and rules
    # out deep nesting for nearly every request (brackets inside strings only make it
    # walk the value).
    brackets = int(np.count_nonzero((np.frombuffer(body, np.uint8) | 32) == ord("{")))
    if brackets > _MAX_DEPTH:
        path = _too_deep(payload, _MAX_DEPTH, brackets)
        if path is not None:
            errors.append(
                {
                    "loc": ["body", *path[:4], "..."] if len(path) > 4 else ["body", *path],
                    "msg": f"nested more than {_MAX_DEPTH} levels deep",
                }
            )
    return errors


def _feedback_errors(payload: Any, body: bytes, *, max_rows: int) -> list[dict[str, Any]]:
    """What is wrong with a ``/feedback`` body, as field errors (``[]``: fine)."""
    if not isinstance(payload, dict):
        return [{"loc": ["body"], "msg": "expected a JSON object with request_id and labels"}]
    errors = _shape_errors(payload, _FEEDBACK_KEYS, body)
    request_id = payload.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        errors.append(
            {
                "loc": ["body", "request_id"],
                "msg": "required: the request_id string a /predict answer returned",
            }
        )
    if "labels" not in payload:
        errors.append({"loc": ["body", "labels"], "msg": "required: the true value for each row"})
        return errors
    labels = payload["labels"]
    scalar = (str, int, float, bool, type(None))
    if isinstance(labels, list):
        if len(labels) > max_rows:
            errors.append(
                {
                    "loc": ["body", "labels"],
                    "msg": f"{len(labels)} labels, more than the limit of {max_rows} rows",
                }
            )
        errors += [
            {
                "loc": ["body", "labels", i],
                "msg": "expected one value (string, number, boolean or null) per row",
            }
            for i, label in enumerate(labels)
            if not isinstance(label, scalar)
        ][:10]
    elif not isinstance(labels, scalar):
        errors.append(
            {
                "loc": ["body", "labels"],
                "msg": "expected a list with the true value of each row (or one value)",
            }
        )
    return errors


#: Each column takes its JSON type or the text of the training file, typed as ingest did.
_TEXT_FORMS = {
    "numeric": "a number as text, as in the training file: '29.85', ' 3 '; a blank, NA, N/A, null, ? or - is a missing value",
    "boolean": "yes/no, true/false, y/n, t/f or 1/0 in any case; a blank, NA or N/A is a missing value",
    "datetime": "ISO 8601 (2024-05-31, 2024-05-31T12:00:00+02:00, converted to UTC) or any date format the training file used (31/05/2024, May 31, 2024); a blank or NA is a missing value",
}


def _field_schema(role: str) -> dict[str, Any]:
    typed = {"numeric": {"type": "number"}, "boolean": {"type": "boolean"}}.get(role)
    text: dict[str, Any] = {"type": "string"}
    if role in _TEXT_FORMS:
        text["description"] = _TEXT_FORMS[role]
    return {"anyOf": [typed, text]} if typed else text


def _in_canary(key: str | None, share: float) -> bool:
    """Sticky routing: the same key always lands on the same side."""
    if key is None:
        return random.random() < share
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    return bucket < share


def app_from_env() -> _Guard:
    """Entry point for uvicorn (``factory=True``): settings from ``NBOPS_*`` variables."""
    # uvicorn configures only its own loggers: give the service's warnings (reload
    # failures, a failing log database) a line on stderr.
    nbops_logger = logging.getLogger("nbops")
    if not nbops_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
        nbops_logger.addHandler(handler)
        nbops_logger.setLevel(logging.INFO)
    return create_app(Settings.from_env())
