"""The server survives every bad request: a corpus of malformed uploads, bodies and headers (the
project's bad-input files, DICOMs, and seeded random mutations of good uploads), each answered
without a 5xx, and the server still answers afterwards."""

from __future__ import annotations

import random

import httpx
import numpy as np
import pytest
from conftest import AUTH, TOKEN, make_client, png_bytes

from pcbm.data import open_dataset

PATHS = ("/v1/predict", "/v1/report", "/v1/intervene")


def _good_png() -> bytes:
    return png_bytes(open_dataset("phantom:n=1,seed=4,size=96")[0].image)


def _dicom_bytes(tmp_path, **kw) -> bytes:
    from dicom_helpers import PHI_REGION, make_dicom, phi_frame

    return make_dicom(tmp_path / "x.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True, **kw).read_bytes()


def _mutations(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        b = bytearray(data)
        kind = rng.randrange(5)
        if kind == 0:  # flip bytes
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 1:  # truncate
            b = b[: rng.randrange(1, len(b))]
        elif kind == 2:  # insert junk
            i = rng.randrange(len(b))
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        elif kind == 3:  # corrupt the header region
            for i in range(8, min(len(b), 40)):
                if rng.random() < 0.3:
                    b[i] = rng.randrange(256)
        else:  # duplicate a chunk
            i = rng.randrange(len(b))
            b += b[i:i + rng.randint(1, 500)]
        out.append(bytes(b))
    return out


def _images(tmp_path) -> list[tuple[bytes, str]]:
    """(bytes, declared type) of every image case."""
    from bad_input_corpus import build_workspace

    ws = build_workspace(tmp_path / "ws")
    cases = [(p.read_bytes(), "image/png") for p in sorted((ws / "img").glob("*.png")) if p.is_file()]
    cases += [(p.read_bytes(), "application/dicom") for p in sorted(ws.glob("dicom*/*.dcm"))]
    rng = random.Random(0)
    good, dcm = _good_png(), _dicom_bytes(tmp_path)
    import cv2

    ok, jpg = cv2.imencode(".jpg", open_dataset("phantom:n=1,seed=4,size=96")[0].image)
    cases += [(b, "image/png") for b in _mutations(good, rng, 40)]
    cases += [(b, "image/jpeg") for b in _mutations(jpg.tobytes(), rng, 20)]
    cases += [(b, "application/dicom") for b in _mutations(dcm, rng, 25)]
    cases += [(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(300)), "image/png"),
              (b"\xff\xd8\xff" + b"\0" * 10, "image/jpeg"), (b"\0" * 128 + b"DICM", "application/dicom"),
              (b"\0" * 128 + b"DICM" + b"\xff" * 1000, ""), (png_bytes(np.zeros((16, 5000), np.uint8)), "image/png"),
              (png_bytes(np.zeros((20, 20, 3), np.uint8)), "image/png"), (good * 3, "image/png")]
    return cases


@pytest.fixture(scope="module")
def fuzz_client(engine):
    c = make_client(engine, max_upload_bytes=256 * 1024, window_size=50)
    yield c
    c.__exit__(None, None, None)


def test_malformed_uploads_never_5xx(fuzz_client, tmp_path) -> None:
    c = fuzz_client
    seen = set()
    for i, (data, ctype) in enumerate(_images(tmp_path)):
        path = PATHS[i % len(PATHS)]
        extra = {"set": "csp_visible=1"} if path == "/v1/intervene" else {}
        r = c.post(path, files={"image": ("f", data, ctype)}, data=extra, headers=AUTH)
        assert r.status_code < 500, (i, ctype, r.status_code, r.text)
        if r.status_code >= 400:
            assert r.json()["error"] and "/proc/self/fd" not in r.text
        seen.add(r.status_code)
    assert {200, 400} <= seen, seen
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    assert c.post("/v1/predict", files={"image": ("f", _good_png(), "image/png")}, headers=AUTH).status_code == 200


def test_malformed_bodies_and_headers_never_5xx(fuzz_client) -> None:
    c = fuzz_client
    good = _good_png()
    b = "XyZ"
    part = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + good + f"\r\n--{b}--\r\n".encode()
    rng = random.Random(1)
    bodies: list[tuple[bytes, dict[str, str]]] = [
        (part, {"Content-Type": f"multipart/form-data; boundary={b}"}),  # the well-formed one
        (part, {"Content-Type": "multipart/form-data"}),  # no boundary
        (part, {"Content-Type": "multipart/form-data; boundary=" + "a" * 300}),
        (part, {"Content-Type": "multipart/form-data; boundary=other"}),
        (part[:-10], {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (part.replace(b"Content-Disposition", b"Content-Dispositio"), {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (b"--" + b.encode() + b"\r\n" + b"H" * 10000 + b"\r\n\r\n", {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n".encode() for i in range(40))
         + f"--{b}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (f"--{b}\r\nContent-Disposition: form-data; name=\"pixel_spacing_mm\"\r\n\r\n".encode() + b"\xff\xfe" * 10
         + f"\r\n--{b}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (f"--{b}\r\nContent-Disposition: form-data; name=\"pixel_spacing_mm\"\r\n\r\n".encode() + b"9" * 5000
         + f"\r\n--{b}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (b"", {"Content-Type": f"multipart/form-data; boundary={b}"}),
        (good, {"Content-Type": "image/png"}), (b"{}", {"Content-Type": "application/json"}), (good, {}),
        (part, {"Content-Type": b"multipart/form-data; boundary=\"XyZ\"; charset=\xc3\xa9"}),
    ]
    bodies += [(bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000))),
                {"Content-Type": f"multipart/form-data; boundary={b}"}) for _ in range(30)]
    bodies += [(bytes(m), {"Content-Type": f"multipart/form-data; boundary={b}"}) for m in _mutations(part, rng, 30)]
    codes = []
    for i, (body, headers) in enumerate(bodies):
        r = c.post(PATHS[i % len(PATHS)], content=body, headers={**AUTH, **headers})
        assert r.status_code < 500, (i, r.status_code, r.text)
        codes.append(r.status_code)
    assert codes[0] == 200 and 400 in codes and 415 in codes
    weird_headers = [
        {"Authorization": b"Bearer " + TOKEN.encode() + b"\xc3\xa9"}, {"Authorization": "Bearer  " + TOKEN},
        {"Authorization": "bearer " + TOKEN}, {"Authorization": b"Bearer " + b"\xff" * 5000},
        {**AUTH, "Content-Length": "abc"}, {**AUTH, "Content-Length": "-5"}, {**AUTH, "Content-Length": "99999999999999"},
        {**AUTH, "Content-Type": ";;;"}, {**AUTH, "Content-Type": "multipart/form-data; boundary="},
    ]
    for h in weird_headers:
        try:
            r = c.post("/v1/predict", content=part, headers=h)
        except Exception:  # noqa: BLE001 - the client itself may refuse to send an impossible header
            continue
        assert r.status_code < 500, (h, r.status_code, r.text)
    for path in ("/v1/predict?format=%ff", "/v1/report?format=" + "x" * 5000, "/%00", "/v1/../v1/model", "/v1/model/x"):
        assert c.post(path, content=part, headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={b}"}).status_code < 500
        assert c.get(path, headers=AUTH).status_code < 500
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/predict", content=part, headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={b}"}).status_code == 200


def test_raw_http_garbage_on_a_real_server(engine) -> None:
    """Malformed HTTP on a real uvicorn socket (what TestClient cannot send): bad request lines, huge
    headers, a body shorter than its Content-Length, a connection dropped mid-upload. The server then
    still answers a good request."""
    import socket
    import threading
    import time

    import uvicorn

    from pcbm.live.app import free_port
    from pcbm.serve.app import create_app
    from pcbm.serve.service import ServeSettings

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, ServeSettings(tokens=(TOKEN,))), host="127.0.0.1",
                                           port=port, log_level="critical", timeout_keep_alive=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started and time.time() - t0 < 30:
        time.sleep(0.05)
    good = _good_png()
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n")
    payload = b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\n" + good + b"\r\n--B--\r\n"
    garbage = [b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\n\r\n",
               b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"b" * 100000 + b"\r\n\r\n",
               (head + f"Content-Length: {len(payload) + 5000}\r\n\r\n").encode() + payload,  # shorter than declared
               (head + "Content-Length: 10\r\nContent-Length: 20\r\n\r\n").encode() + payload[:20],
               (head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n").encode(),
               (head + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload[: len(payload) // 3]]  # dropped
    try:
        for g in garbage:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(g)
                    s.shutdown(socket.SHUT_WR)
                    reply = s.recv(200)
                except OSError:
                    continue
                if reply:
                    assert not reply.startswith(b"HTTP/1.1 5"), (g[:60], reply)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as c:
            assert c.get("/healthz").status_code == 200
            assert c.post("/v1/predict", files={"image": ("a.png", good, "image/png")}).status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
