"""No cheap denial of service (issue 35, deliverable 2): the body is read, bounded in size and in
time, before a model slot is taken; a stalled upload gets 408 and holds no slot; a request waits for
its turn at the model at most ``queue_timeout_s``; a DICOM bomb is refused from its header.

The stalled upload is a raw socket against a real uvicorn server (in a thread, on a free port), so
the 408, the closed connection and the other client's 200 are what a client on the network sees."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import AUTH, TOKEN, make_client, upload

from pcbm.cli import main
from pcbm.errors import InputError
from pcbm.serve.service import ServeSettings

BOUNDARY = "dosboundary"


def _multipart(image: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture()
def server(engine):
    """A real uvicorn server on a free loopback port: max_in_flight=1, a 1-second body timeout."""
    import uvicorn

    from pcbm.serve.app import create_app

    app = create_app(engine, ServeSettings(tokens=(TOKEN,), max_in_flight=1, body_timeout_s=1.0))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    yield url, port, app.state.service
    srv.should_exit = True
    thread.join(10)
    sock.close()


def _read_all(conn: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (at most ``limit_s`` seconds)."""
    conn.settimeout(limit_s)
    out = b""
    while chunk := conn.recv(65536):
        out += chunk
    return out


def test_a_stalled_upload_gets_408_and_holds_no_model_slot(server, phantom_png) -> None:
    url, port, service = server
    body = _multipart(phantom_png)
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    staller = socket.create_connection(("127.0.0.1", port))
    try:
        staller.sendall(head + body[: len(body) // 2])  # half the body, then nothing
        t0 = time.perf_counter()
        time.sleep(0.3)  # the staller's request is in its handler, reading
        assert service.gate.in_flight == 0  # reading a body takes no model slot
        r = httpx.post(f"{url}/v1/predict", files=upload(phantom_png), headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text  # with max_in_flight=1, served while the staller stalls
        reply = _read_all(staller, 10)  # ... which gets 408 after the timeout, and its connection closed
        waited = time.perf_counter() - t0
    finally:
        staller.close()
    status, _, rest = reply.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408"), reply[:200]
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert json.loads(payload) == {"error": "the request body did not arrive within 1 s; send it whole, and retry",
                                   "status": 408}
    assert 0.9 <= waited < 8
    assert service.gate.in_flight == 0
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_request_waits_for_its_turn_at_most_queue_timeout(engine, phantom_png) -> None:
    c = make_client(engine, max_in_flight=2, queue_timeout_s=0.2, retry_after_s=3)
    try:
        run = c.app.state.service.gate.run
        assert run.acquire(timeout=5)  # the model is busy (stuck) with another request
        try:
            t0 = time.perf_counter()
            r = c.post("/v1/predict", files=upload(phantom_png), headers=AUTH)
            assert time.perf_counter() - t0 < 5
        finally:
            run.release()
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        assert r.json() == {"error": "busy: no turn at the model within 0.2 s; retry shortly", "status": 503}
        assert c.app.state.service.gate.in_flight == 0
        assert c.post("/v1/predict", files=upload(phantom_png), headers=AUTH).status_code == 200  # free again
        responses = c.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["responses"]
        assert {"400", "401", "408", "413", "415", "503"} <= set(responses)
    finally:
        c.__exit__(None, None, None)


def test_a_dicom_bomb_upload_is_refused_from_its_header(engine, tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_decode_limits import rle_bomb

    bomb = rle_bomb(tmp_path / "bomb.dcm", 40000, 40000).read_bytes()  # 1.6 GB decoded, 48 kB here
    c = make_client(engine)
    try:
        t0 = time.perf_counter()
        r = c.post("/v1/predict", files=upload(bomb, "application/dicom", "bomb.dcm"), headers=AUTH)
        assert time.perf_counter() - t0 < 2
        assert r.status_code == 400
        assert r.json()["error"] == ("upload: 40000x40000 px = 1600.0 megapixels a frame (Columns x Rows in its "
                                     "header; nothing decoded); the limit is 9 megapixels (9000000 pixels)")
    finally:
        c.__exit__(None, None, None)


@pytest.mark.parametrize(("field", "value"), [("body_timeout_s", 0), ("body_timeout_s", float("nan")),
                                              ("queue_timeout_s", -1.0), ("queue_timeout_s", float("inf"))])
def test_timeouts_must_be_positive_seconds(field, value) -> None:
    name = field[:-2].replace("_", "-")
    with pytest.raises(InputError, match=f"{name} must be a positive number of seconds, got {value}"):
        ServeSettings(**{field: value})


def test_serve_checks_the_timeouts_before_loading_the_model(capsys) -> None:
    try:
        main(["serve", "--model", "/nonexistent/pkg", "--allow-unauthenticated", "--body-timeout", "inf"])
    except SystemExit as e:
        assert e.code == 2
    assert "body-timeout must be a positive number of seconds, got inf" in capsys.readouterr().err
