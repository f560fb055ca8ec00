"""The live page's web app (FastAPI): the page, its WebSocket, the session's files, health.

Routes: ``GET /`` the page; ``GET /healthz`` liveness (200 while this process serves; says how the
engine and the source are); ``GET /stats`` counters and latencies; ``WS /ws`` frames (binary: 16
bytes of seq and capture time as float64, then a JPEG) and JSON messages (``hello``, ``result``,
``engine``, ``report``, ``captured``), and the page's ``{"action": "capture"}``; ``POST /capture``
the capture button for scripts; ``GET /session/{path}`` the gallery, reports and summary;
``POST /summary`` writes the session summary now.

Every route but ``/healthz`` is behind the page's lock (:mod:`pcbm.live.lock`): the session's token
(``?token=`` or ``Authorization: Bearer``) and an ``Origin`` check; ``/stats`` counts the refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from pcbm.errors import InputError
from pcbm.live.lock import LockMiddleware, PageLock
from pcbm.serve.auth import is_loopback


def create_app(session: Any, *, tokens: Sequence[str]) -> Any:
    """The FastAPI app of a started :class:`~pcbm.live.session.LiveSession`.

    Args:
        session: the started session.
        tokens: the page's tokens (:func:`pcbm.live.lock.page_tokens`); empty serves without a lock,
            for loopback names only. The lock is ``app.state.lock``.
    """
    hub = session.hub
    lock = PageLock(tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        hub.loop = asyncio.get_running_loop()
        pump = asyncio.create_task(hub.frame_pump())
        try:
            yield
        finally:
            pump.cancel()
            hub.loop = None

    app = FastAPI(title="pcbm live", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(LockMiddleware, lock=lock)
    app.state.lock = lock
    page = resources.files("pcbm.live").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        st = session.status()
        return {"ok": True, "engine": st["engine"].get("state"), "source": st.get("source_state"),
                "frames_captured": st.get("frames_captured"), "frames_processed": st.get("frames_processed")}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return {**session.status(), "refused": dict(lock.refused)}

    @app.post("/capture")
    def capture() -> dict[str, Any]:
        try:
            return hub.capture_now()
        except InputError as e:
            raise HTTPException(409, str(e)) from None

    @app.post("/summary")
    def summary() -> JSONResponse:
        path = session.write_summary(session.slot.stats() if session.slot else None)
        return JSONResponse({"summary": f"/session/{path.name}"})

    @app.get("/session/{path:path}")
    def session_file(path: str) -> Any:
        root = Path(session.folder).resolve()
        p = (root / path).resolve()
        if root not in p.parents or not p.is_file():
            raise HTTPException(404, "no such file in this session")
        return FileResponse(p)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = hub.add(websocket)
        sender = asyncio.create_task(hub.serve_client(client))
        try:
            while True:
                msg = await websocket.receive_json()
                if isinstance(msg, dict) and msg.get("action") == "capture":
                    try:
                        await asyncio.to_thread(hub.capture_now)
                    except InputError as e:
                        client.msgs.append({"type": "error", "error": str(e)})
                        client.wake.set()
        except (WebSocketDisconnect, RuntimeError, ValueError):
            pass
        finally:
            hub.clients.discard(client)
            sender.cancel()

    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (for tests and benchmarks on loopback)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(session: Any, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20.0,
            token: str | None = None) -> Any:
    """Serve ``session``'s page on a background thread (uvicorn); yields the base URL.

    With ``token`` every route but ``/healthz`` needs it (``?token=`` or ``Authorization: Bearer``);
    without, only a loopback ``host`` is served.
    """
    import threading
    import time

    import uvicorn

    if token is None and not is_loopback(host):
        raise InputError(f"serving the live page on {host!r} needs a token (loopback hosts only without one)")
    port = port or free_port(host)
    app = create_app(session, tokens=(token,) if token else ())
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="pcbm-live-web", daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started:
        if time.time() - t0 > timeout or not thread.is_alive():
            raise RuntimeError(f"the live page did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
