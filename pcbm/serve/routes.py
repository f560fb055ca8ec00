"""The service's routes, one router per route group (FastAPI's "bigger applications" layout):
:func:`model_routes` (predict, report, intervene, model), :func:`monitoring_routes` (drift, the
window, metrics) and :func:`health_routes` (liveness, readiness). :func:`pcbm.serve.app.create_app`
includes them around one :class:`~pcbm.serve.service.Service`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from pcbm.serve import schemas as S
from pcbm.serve.auth import TokenChecker
from pcbm.serve.metrics import endpoint_label
from pcbm.serve.service import ServeSettings, Service, Upload
from pcbm.serve.uploads import ApiError, parse_multipart

_ERRORS = {code: {"model": S.ErrorOut} for code in (400, 401, 408, 413, 415, 503)}
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


async def _timely_body(request: Request, settings: ServeSettings) -> bytes:
    """The request body (:func:`_body`), refused with 408 when it has not all arrived within
    ``body_timeout_s``: a client that stalls mid-upload holds its bytes that long, never a model slot."""
    try:
        with anyio.fail_after(settings.body_timeout_s):
            return await _body(request, settings.max_upload_bytes)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {settings.body_timeout_s:g} s; "
                            "send it whole, and retry", _CLOSE) from None


def authorizer(tokens: TokenChecker) -> Callable[[Request], None]:
    """The dependency that refuses a request without a valid bearer token (401)."""

    def authorized(request: Request) -> None:
        if not tokens.check(request.headers.get("authorization")):
            raise ApiError(401, "missing or invalid bearer token (Authorization: Bearer TOKEN)",
                           {"WWW-Authenticate": 'Bearer realm="pcbm"'})

    return authorized


def _admission(service: Service, settings: ServeSettings) -> Callable[[Request, Any], Any]:
    """``admitted(request, work)``: the model routes' gate (see its docstring)."""

    async def admitted(request: Request, work: Any) -> Any:
        """Read and parse the upload (bounded in size and time), then run ``work(upload, form, wanted)``
        in a thread within the in-flight limit; ``wanted()`` says whether the client is still connected
        (a queued request whose client left is dropped when its turn comes instead of computed). The
        slot is taken only once the body is in: a slow or stalled upload cannot hold one."""
        body = await _timely_body(request, settings)
        form = parse_multipart(body, request.headers.get("content-type"))
        if not service.gate.try_enter():
            service.metrics.rejected.labels(endpoint_label(request.url.path)).inc()
            raise ApiError(503, f"busy: {service.gate.max_in_flight} requests in flight; retry shortly",
                           {"Retry-After": str(settings.retry_after_s), **_CLOSE})
        service.metrics.in_flight.inc()
        try:
            def wanted() -> bool:  # asked from the worker thread when the request's turn comes
                return not anyio.from_thread.run(request.is_disconnected)

            def job() -> Any:
                return work(service.read(form), form, wanted)

            return await run_in_threadpool(job)
        finally:
            service.gate.leave()
            service.metrics.in_flight.dec()

    return admitted


def model_routes(service: Service, settings: ServeSettings, auth: list[Any]) -> APIRouter:
    """POST /v1/predict, /v1/report, /v1/intervene and GET /v1/model."""
    router = APIRouter()
    admitted = _admission(service, settings)

    @router.post("/v1/predict", response_model=S.PredictionRecord, dependencies=auth, responses=_ERRORS,
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

    @router.post("/v1/report", dependencies=auth, openapi_extra=_UPLOAD_DOC, tags=["model"],
              responses={**_ERRORS, 200: {"content": {"text/html": {}, "application/json": {}},
                                          "description": "the concept report"}})
    async def report(request: Request, format: Literal["html", "json"] = Query("html")) -> Any:  # noqa: A002
        """The concept report of one image: self-contained HTML (default) or JSON."""
        out = await admitted(request, lambda up, form, wanted: service.report(up, format, wanted))
        return HTMLResponse(out) if format == "html" else JSONResponse(out)

    @router.post("/v1/intervene", response_model=S.InterventionOut, dependencies=auth, responses=_ERRORS,
              openapi_extra=_INTERVENE_DOC, tags=["model"])
    async def intervene(request: Request) -> Any:
        """Set property concepts or erase visual concepts, and see the decision before and after."""
        def work(up: Upload, form: Any, wanted: Any) -> Any:
            return service.intervene(up, form.fields.get("set", []), form.fields.get("erase", []), wanted)

        return JSONResponse(await admitted(request, work))

    @router.get("/v1/model", response_model=S.ModelOut, dependencies=auth, responses=_ERRORS, tags=["model"])
    def model() -> Any:
        """The model's card, metrics, ontology and energy per 1000 inferences."""
        return JSONResponse(service.model_card())

    return router


def monitoring_routes(service: Service, auth: list[Any]) -> APIRouter:
    """GET /v1/drift, /v1/monitor/window and /metrics."""
    router = APIRouter()

    @router.get("/v1/drift", response_model=S.DriftOut, dependencies=auth, responses=_ERRORS, tags=["monitoring"])
    def drift() -> Any:
        """PSI and KS of the recent window against the package's reference statistics."""
        d = service.drift()
        if d is None:
            raise ApiError(404, "this model package has no reference.json: no drift to measure")
        return JSONResponse(d)

    @router.get("/v1/monitor/window", dependencies=auth, responses=_ERRORS, tags=["monitoring"])
    def window() -> Any:
        """The drift window (concept values and decisions, no images) for ``pcbm monitor``."""
        return JSONResponse(service.window.to_json(service.reference, service.identity))

    @router.get("/metrics", dependencies=auth, responses=_ERRORS, tags=["monitoring"],
             response_class=Response)
    def metrics() -> Response:
        """Prometheus text exposition (all workers)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


def health_routes(service: Service) -> APIRouter:
    """GET /healthz (liveness) and /readyz (warmed up), without auth."""
    router = APIRouter()

    @router.get("/healthz", response_model=S.Health, tags=["health"])
    def healthz() -> Any:
        """Liveness: this process answers."""
        return {"ok": True, "uptime_s": round(time.time() - service.started, 1), "pid": os.getpid()}

    @router.get("/readyz", response_model=S.Ready, responses={503: {"model": S.Ready}}, tags=["health"])
    def readyz() -> Any:
        """Readiness: the model is loaded and warmed up."""
        if service.ready.is_set():
            return {"ready": True, "model": service.identity}
        return JSONResponse({"ready": False, "reason": service.ready_error or "warming up"}, status_code=503)

    return router
