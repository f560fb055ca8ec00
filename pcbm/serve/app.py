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
over the limit, 415 for something not PNG/JPEG/DICOM or not multipart, 400 for a corrupt image or a
bad field (the reader's reason), 503 with ``Retry-After`` when the worker has ``max_in_flight``
model requests already. Nothing of an upload is written to disk or to a log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pcbm.errors import InputError
from pcbm.serve import schemas as S
from pcbm.serve.auth import TokenChecker
from pcbm.serve.metrics import endpoint_label
from pcbm.serve.service import ServeSettings, Service, Upload
from pcbm.serve.uploads import ApiError, parse_multipart, quiet_readers

log = logging.getLogger("pcbm.serve")

_ERRORS = {code: {"model": S.ErrorOut} for code in (400, 401, 413, 415, 503)}
_UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or DICOM (first frame)"},
        "pixel_spacing_mm": {"type": "number", "description": "mm per pixel (else the DICOM header's, if any)"}}}}}}}
_INTERVENE_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"], "properties": {
        **_UPLOAD_DOC["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"],
        "set": {"type": "array", "items": {"type": "string"},
                "description": "NAME=VALUE: csp_visible=1, cerebellum_visible=no, hc_mm=170, kidney=0"},
        "erase": {"type": "array", "items": {"type": "string"}, "description": "NAME or NAME@x0,y0,x1,y1 (image pixels)"},
    }}}}}}


# a refusal sent before the body was read ends the connection, and says so: a client that reused it
# would otherwise find it reset (wrk counted those as read errors)
_CLOSE = {"Connection": "close"}


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


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if n > limit:
            raise ApiError(413, f"request body of {n} bytes is over the limit of {limit} bytes", _CLOSE)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes", _CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


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

    def authorized(request: Request) -> None:
        if not tokens.check(request.headers.get("authorization")):
            raise ApiError(401, "missing or invalid bearer token (Authorization: Bearer TOKEN)",
                           {"WWW-Authenticate": 'Bearer realm="pcbm"'})

    auth = [Depends(authorized)]

    async def admitted(request: Request, work: Any) -> Any:
        """Parse the upload and run ``work(upload, form, wanted)`` in a thread, within the in-flight limit;
        ``wanted()`` says whether the client is still connected (a queued request whose client left is
        dropped when its turn comes instead of computed)."""
        if not service.gate.try_enter():
            service.metrics.rejected.labels(endpoint_label(request.url.path)).inc()
            raise ApiError(503, f"busy: {service.gate.max_in_flight} requests in flight; retry shortly",
                           {"Retry-After": str(settings.retry_after_s), "Connection": "close"})
        service.metrics.in_flight.inc()
        try:
            body = await _body(request, settings.max_upload_bytes)
            form = parse_multipart(body, request.headers.get("content-type"))

            def wanted() -> bool:  # asked from the worker thread when the request's turn comes
                return not anyio.from_thread.run(request.is_disconnected)

            def job() -> Any:
                return work(service.read(form), form, wanted)

            return await run_in_threadpool(job)
        finally:
            service.gate.leave()
            service.metrics.in_flight.dec()

    @app.post("/v1/predict", response_model=S.PredictionRecord, dependencies=auth, responses=_ERRORS,
              openapi_extra=_UPLOAD_DOC, tags=["model"])
    async def predict(request: Request,
                      navigate: bool = Query(False, description="add a 'navigation' field: the next probe move "
                                                                "toward a standard plane and why (phantom-trained)"),
                      target: str | None = Query(None, description="with navigate: the plane to steer toward "
                                                                    "(default: the nearest, the most probable one)")) -> Any:
        """The plane, its ISUOG status, property concepts and measurements of one image (and, with
        ``navigate=true``, the next probe move)."""
        steer = service.navigation_target(navigate, target)  # a bad target fails before the upload is read

        def work(up: Upload, form: Any, wanted: Any) -> Any:
            return service.record_json(service.predict(up, wanted=wanted, navigate=steer), up)

        return JSONResponse(await admitted(request, work))

    @app.post("/v1/report", dependencies=auth, openapi_extra=_UPLOAD_DOC, tags=["model"],
              responses={**_ERRORS, 200: {"content": {"text/html": {}, "application/json": {}},
                                          "description": "the concept report"}})
    async def report(request: Request, format: Literal["html", "json"] = Query("html")) -> Any:  # noqa: A002
        """The concept report of one image: self-contained HTML (default) or JSON."""
        out = await admitted(request, lambda up, form, wanted: service.report(up, format, wanted))
        return HTMLResponse(out) if format == "html" else JSONResponse(out)

    @app.post("/v1/intervene", response_model=S.InterventionOut, dependencies=auth, responses=_ERRORS,
              openapi_extra=_INTERVENE_DOC, tags=["model"])
    async def intervene(request: Request) -> Any:
        """Set property concepts or erase visual concepts, and see the decision before and after."""
        def work(up: Upload, form: Any, wanted: Any) -> Any:
            return service.intervene(up, form.fields.get("set", []), form.fields.get("erase", []), wanted)

        return JSONResponse(await admitted(request, work))

    @app.get("/v1/model", response_model=S.ModelOut, dependencies=auth, responses=_ERRORS, tags=["model"])
    def model() -> Any:
        """The model's card, metrics, ontology and energy per 1000 inferences."""
        return JSONResponse(service.model_card())

    @app.get("/v1/drift", response_model=S.DriftOut, dependencies=auth, responses=_ERRORS, tags=["monitoring"])
    def drift() -> Any:
        """PSI and KS of the recent window against the package's reference statistics."""
        d = service.drift()
        if d is None:
            raise ApiError(404, "this model package has no reference.json: no drift to measure")
        return JSONResponse(d)

    @app.get("/v1/monitor/window", dependencies=auth, responses=_ERRORS, tags=["monitoring"])
    def window() -> Any:
        """The drift window (concept values and decisions, no images) for ``pcbm monitor``."""
        return JSONResponse(service.window.to_json(service.reference, service.identity))

    @app.get("/metrics", dependencies=auth, responses=_ERRORS, tags=["monitoring"],
             response_class=Response)
    def metrics() -> Response:
        """Prometheus text exposition (all workers)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=S.Health, tags=["health"])
    def healthz() -> Any:
        """Liveness: this process answers."""
        return {"ok": True, "uptime_s": round(time.time() - service.started, 1), "pid": os.getpid()}

    @app.get("/readyz", response_model=S.Ready, responses={503: {"model": S.Ready}}, tags=["health"])
    def readyz() -> Any:
        """Readiness: the model is loaded and warmed up."""
        if service.ready.is_set():
            return {"ready": True, "model": service.identity}
        return JSONResponse({"ready": False, "reason": service.ready_error or "warming up"}, status_code=503)

    return app
