"""The REST app: ``create_app(engine, settings)`` (a FastAPI app factory, no module-level state).

Routes (all under bearer auth but ``/healthz``, ``/readyz`` and the OpenAPI docs):

* ``POST /v1/predict`` — multipart field ``image`` (PNG, JPEG or DICOM), optional field
  ``pixel_spacing_mm``: the Prediction record with the model's identity and what was read.
* ``POST /v1/report`` — the concept report: self-contained HTML, or JSON with ``?format=json``.
* ``POST /v1/intervene`` — fields ``set`` (``NAME=VALUE``, repeatable) and ``erase`` (``NAME`` or
  ``NAME@x0,y0,x1,y1``, repeatable), as ``pcbm intervene``: the decision before and after.
* ``GET /v1/model`` — card, metrics, ontology, thresholds, energy per 1000 inferences.
* ``GET /v1/drift`` — drift of the window against the package's reference;
  ``GET /v1/monitor/window`` — the window itself, for ``pcbm monitor``.
* ``GET /healthz`` (liveness), ``GET /readyz`` (warmed up), ``GET /metrics`` (Prometheus).

Every refusal is JSON ``{"error": "...", "status": N}``: 401 without a valid token, 413 for a body
over the limit, 408 (and the connection closed) for a body not all in within ``body_timeout_s``,
415 for something not PNG/JPEG/DICOM or not multipart, 400 for a corrupt image, one too large by
its header, or a bad field (the reader's reason), 503 with ``Retry-After`` when the worker has
``max_in_flight`` model requests already or a request's turn at the model has not come within
``queue_timeout_s``. The body is read before a model slot is taken, so a slow upload never holds
one. Nothing of an upload is written to disk or to a log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pcbm.errors import InputError
from pcbm.serve.auth import TokenChecker
from pcbm.serve.metrics import endpoint_label
from pcbm.serve.routes import authorizer, health_routes, model_routes, monitoring_routes
from pcbm.serve.service import ServeSettings, Service
from pcbm.serve.uploads import ApiError, quiet_readers

log = logging.getLogger("pcbm.serve")

def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class _Observe:
    """ASGI middleware: request duration, requests by code, errors (never a body, header or query logged)."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        code = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                code[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m = self.service.metrics
            ep = endpoint_label(scope.get("path", ""))
            m.duration.labels(ep).observe(time.perf_counter() - t0)
            m.requests.labels(ep, str(scope.get("method", "?"))[:8], str(code[0])).inc()
            if code[0] >= 400:
                m.errors.labels(ep, str(code[0])).inc()


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal as JSON ``{"error", "status"}``; an unexpected exception logged and answered 500."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message, e.headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError) -> JSONResponse:
        return _error(400, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(400, f"bad request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        log.error("internal error on %s: %s", endpoint_label(request.url.path), type(e).__name__, exc_info=e)
        return _error(500, "internal error (logged on the server)")


def create_app(engine: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The service app around a loaded :class:`pcbm.runtime.Engine` (see the module docstring).

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(Engine("pkg/"), ServeSettings(tokens=("x" * 32,))))  # doctest: +SKIP
    """
    settings = settings or ServeSettings()
    quiet_readers()
    own_state = settings.state_dir is None
    state_dir = tempfile.mkdtemp(prefix="pcbm-serve-") if own_state else str(settings.state_dir)
    service = Service(engine, settings, state_dir)
    tokens = TokenChecker(settings.tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        threading.Thread(target=service.warm_up, name="pcbm-serve-warmup", daemon=True).start()
        try:
            yield
        finally:
            if service.metrics.multiproc:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid(), service.metrics.multiproc)
            if own_state:
                shutil.rmtree(state_dir, ignore_errors=True)

    app = FastAPI(title="pcbm serve", version=str(engine.identity.get("version") or ""), lifespan=lifespan,
                  description="Fetal-ultrasound standard-plane detection with a progressive concept bottleneck model, "
                              "explained: plane, ISUOG criteria met or missing, measurements, concept interventions.")
    app.state.service = service
    app.add_middleware(_Observe, service=service)

    _install_error_handlers(app)
    auth = [Depends(authorizer(tokens))]
    app.include_router(model_routes(service, settings, auth))
    app.include_router(monitoring_routes(service, auth))
    app.include_router(health_routes(service))
    return app
