"""The FastAPI app factory: ``create_app(settings)``; uvicorn runs ``app_from_env``.

Endpoints: ``POST /predict``, ``POST /feedback``, ``GET /health`` (alive), ``GET /ready``
(model loaded), ``GET /model``, ``GET /metrics`` (Prometheus). Bodies are parsed with
orjson and validated against the model's training contract; bad input is a 4xx naming
each field, never a 500. No endpoint runs user-supplied code.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import random
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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

from nbops.serving.labels import relabel
from nbops.serving.log import PredictionLog
from nbops.serving.model import ServedModel, load_served_model
from nbops.serving.settings import Settings
from nbops.serving.validation import Batch, validate

__all__ = ["app_from_env", "create_app"]

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
#: Oversized bodies up to this size are read and discarded before the 413 is sent.
_DRAIN_LIMIT = 16 * 1024 * 1024


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


def create_app(settings: Settings) -> _Guard:
    """Build the service for ``settings``; the model is loaded when the app starts.

    Returns the ASGI app uvicorn runs: :class:`_Guard` (token, size limit, metrics, and
    ``POST /predict`` answered directly) around the FastAPI app (``.api``), which serves
    every other endpoint, the OpenAPI document and ``/docs``.
    """
    metrics = _Metrics()
    state: dict[str, Any] = {"model": None, "challenger": None, "log": None}

    wants_challenger = settings.canary > 0 or settings.shadow
    shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-shadow")

    def load_challenger() -> ServedModel | None:
        from nbops.errors import ReleaseError

        try:
            return load_served_model(settings.root, settings.model, "challenger")
        except ReleaseError:
            return None  # no challenger: canary and shadow wait for one

    def reload_loop(stop: threading.Event) -> None:
        from nbops.registry import Registry

        while not stop.wait(settings.reload_seconds):
            with contextlib.suppress(Exception):  # registry briefly unreachable: keep serving
                registry = Registry(settings.root)
                current = registry.alias(settings.model, settings.alias)
                if current is not None and current.version != state["model"].version:
                    state["model"] = load_served_model(
                        settings.root, settings.model, settings.alias
                    )  # atomic swap
                if wants_challenger:
                    challenger = registry.alias(settings.model, "challenger")
                    held = state["challenger"]
                    if challenger is None:
                        state["challenger"] = None
                    elif held is None or held.version != challenger.version:
                        state["challenger"] = load_challenger()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["model"] = load_served_model(settings.root, settings.model, settings.alias)
        state["challenger"] = load_challenger() if wants_challenger else None
        state["log"] = PredictionLog(settings.prediction_log_url)
        stop = threading.Event()
        threading.Thread(
            target=reload_loop, args=(stop,), name="nbops-alias-watch", daemon=True
        ).start()
        # Everything loaded so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise pause requests for ~100 ms.
        gc.collect()
        gc.freeze()
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
        if model is None:
            return _json({"ready": False}, 503)
        return _json({"ready": True, "model": model.name, "version": model.version})

    @app.get("/model")
    async def model_info() -> Response:
        challenger = state["challenger"]
        routing = {
            "canary": settings.canary,
            "shadow": settings.shadow,
            "challenger": challenger.version if challenger else None,
        }
        return _json({**state["model"].describe(), "routing": routing})

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
        result = _labelled(model, model.predict(batch))
        request_id = uuid.uuid4().hex
        state["log"].record(
            request_id=request_id,
            model_name=model.name,
            model_version=model.version,
            route=model.alias,
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs=payload,
            outputs=result,
            n_rows=batch.n_rows,
        )
        metrics.predictions.labels(model.name, model.version, model.alias).inc(batch.n_rows)
        if settings.shadow and challenger is not None and model is not challenger:
            shadow_pool.submit(shadow_score, challenger, batch, payload, request_id)
        return 200, _dump(
            {
                "request_id": request_id,
                "model": {"name": model.name, "version": model.version, "alias": model.alias},
                **result,
            }
        )

    def shadow_score(challenger: ServedModel, batch: Batch, payload: Any, request_id: str) -> None:
        started = time.perf_counter()
        with contextlib.suppress(Exception):  # a failing shadow never affects the answer
            result = _labelled(challenger, challenger.predict(batch))
            state["log"].record(
                request_id=request_id,
                model_name=challenger.name,
                model_version=challenger.version,
                route="shadow",
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=payload,
                outputs=result,
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
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"the body is not valid JSON: {exc}")
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("request_id"), str)
            or "labels" not in payload
        ):
            return _error(
                422,
                'expected {"request_id": "<id from /predict>", "labels": [<true value per row>]}',
                detail=[{"loc": ["body"], "msg": "request_id (string) and labels are required"}],
            )
        log: PredictionLog = state["log"]
        if not log.known_request(payload["request_id"]):
            return _error(
                404,
                f"unknown request_id {payload['request_id'][:64]!r}: send feedback for ids returned by /predict (they are logged within a fraction of a second)",
            )
        log.feedback(payload["request_id"], payload["labels"])
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
            self.metrics.requests.labels(endpoint, "413").inc()
            if int(length) <= _DRAIN_LIMIT:
                # Read and discard the body so the client finishes sending and reads the
                # 413; answering mid-upload makes it see a broken pipe instead.
                while (await receive()).get("more_body"):
                    pass
            await _error(
                413,
                f"request body of {int(length)} bytes is over the limit of {self.settings.max_body_bytes}; send fewer rows per request",
            )(scope, receive, send)
            return
        if path == "/predict" and scope["method"] == "POST":
            # The hot path, without the framework's per-request layers.
            status = 500
            try:
                chunks, message = [], await receive()
                chunks.append(message.get("body", b""))
                while message.get("more_body"):
                    message = await receive()
                    chunks.append(message.get("body", b""))
                status, content = self.predict(
                    b"".join(chunks), headers.get(b"x-routing-key", b"").decode("latin-1") or None
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
                self.metrics.requests.labels(endpoint, str(status)).inc()
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            return
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


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


def _labelled(model: ServedModel, result: dict[str, Any]) -> dict[str, Any]:
    """Predictions and probability keys as the training labels GET /model lists."""
    if model.task != "classification":
        return result
    return relabel(result, model.estimator.classes_, model.classes)


def _in_canary(key: str | None, share: float) -> bool:
    """Sticky routing: the same key always lands on the same side."""
    if key is None:
        return random.random() < share
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    return bucket < share


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``factory=True``): settings from ``NBOPS_*`` variables."""
    return create_app(Settings.from_env())
