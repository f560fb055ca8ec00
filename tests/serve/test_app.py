"""The REST app on a tiny package: records, reports, interventions, the model card, auth, limits,
overload, metrics. In process (TestClient); no timing asserted."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from conftest import AUTH, TOKEN, make_client, png_bytes, upload

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES


def test_predict_returns_the_record_with_the_model_identity(client, engine, phantom_png) -> None:
    r = client.post("/v1/predict", files=upload(phantom_png), data={"pixel_spacing_mm": "0.2"}, headers=AUTH)
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d["plane_probs"]) == set(PLANE_NAMES) and d["plane"] in PLANE_NAMES
    assert abs(sum(d["plane_probs"].values()) - 1) < 1e-3
    assert d["status"] in ("standard", "close_to_standard", "not_a_known_plane")
    assert set(d["properties"]) == set(PROPERTY_CONCEPT_NAMES)
    assert d["model"]["name"] == "tiny" and len(d["model"]["sha256"]) == 64 and d["model"]["version"]
    assert d["input"] == {"kind": "PNG", "width": 128, "height": 128, "pixel_spacing_mm": 0.2,
                          "spacing_source": "form field pixel_spacing_mm", "notes": []}
    assert d["image"] == "upload"  # never the client's file name
    import cv2

    direct = engine.predict(cv2.imdecode(np.frombuffer(phantom_png, np.uint8), 0), 0.2, name="upload").to_dict()
    assert d["plane_probs"] == direct["plane_probs"] and d["status"] == direct["status"]


def test_spacing_without_a_field_is_unknown_and_lengths_null(client, phantom_png) -> None:
    d = client.post("/v1/predict", files=upload(phantom_png), headers=AUTH).json()
    assert d["input"]["pixel_spacing_mm"] is None and d["properties"]["hc_mm"] is None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer " + "x" * 40}, {"Authorization": TOKEN},
                                     {"Authorization": "Basic " + TOKEN}, {"Authorization": "Bearer"}])
def test_model_routes_need_a_valid_token(client, phantom_png, headers) -> None:
    for method, path in (("post", "/v1/predict"), ("post", "/v1/report"), ("post", "/v1/intervene"),
                         ("get", "/v1/model"), ("get", "/metrics"), ("get", "/v1/drift"), ("get", "/v1/monitor/window")):
        kw = {"files": upload(phantom_png)} if method == "post" else {}
        r = getattr(client, method)(path, headers=headers, **kw)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["www-authenticate"].startswith("Bearer") and TOKEN not in r.text


def test_health_and_docs_need_no_token(client) -> None:
    assert client.get("/healthz").json()["ok"] is True
    assert client.get("/readyz").json()["ready"] is True
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/report", "/v1/intervene", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    ok = spec["paths"]["/v1/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("PredictionRecord")
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"PredictionRecord", "InterventionOut", "ModelOut", "ErrorOut"} <= set(spec["components"]["schemas"])


def test_refusals_name_the_reason(client, phantom_png) -> None:
    cases = [
        (upload(b"hello, not an image", "text/plain", "a.txt"), {}, 415, "PNG, JPEG or DICOM"),
        (upload(phantom_png[: len(phantom_png) // 2]), {}, 400, "truncated"),
        (upload(b"\x89PNG\r\n\x1a\n" + b"\0" * 50), {}, 400, "upload"),
        (upload(b"GIF89a....", "image/png"), {}, 400, "PNG signature"),
        (upload(b""), {}, 400, "empty"),
        (upload(phantom_png), {"pixel_spacing_mm": "-1"}, 400, "pixel_spacing_mm"),
        (upload(phantom_png), {"pixel_spacing_mm": "abc"}, 400, "pixel_spacing_mm"),
        ({"other": ("a.png", phantom_png, "image/png")}, {}, 400, "field 'image'"),
        (upload(png_bytes(np.full((4, 4), 9, np.uint8))), {}, 400, "at least 16 px"),
    ]
    for files, data, code, needle in cases:
        r = client.post("/v1/predict", files=files, data=data, headers=AUTH)
        assert r.status_code == code, (needle, r.status_code, r.text)
        assert needle in r.json()["error"] and r.json()["status"] == code
        assert "/proc/self/fd" not in r.text
    r = client.post("/v1/predict", files={"pixel_spacing_mm": (None, "0.2")}, headers=AUTH)
    assert r.status_code == 400 and "no 'image' part" in r.json()["error"]
    r = client.post("/v1/predict", content=phantom_png, headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    two = [("image", ("a.png", phantom_png, "image/png")), ("image", ("b.png", phantom_png, "image/png"))]
    assert client.post("/v1/predict", files=two, headers=AUTH).status_code == 400


def test_upload_over_the_limit_is_413(engine, phantom_png) -> None:
    c = make_client(engine, max_upload_bytes=len(phantom_png) // 2)
    try:
        r = c.post("/v1/predict", files=upload(phantom_png), headers=AUTH)
        assert r.status_code == 413 and "limit" in r.json()["error"]
        def chunks():  # no Content-Length: counted while it streams
            yield phantom_png[:100]
            yield phantom_png
        body = {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}
        assert c.post("/v1/predict", content=chunks(), headers=body).status_code == 413
        assert c.get("/healthz").status_code == 200
    finally:
        c.__exit__(None, None, None)


def test_too_many_pixels_is_400(engine) -> None:
    c = make_client(engine, max_pixels=100 * 100)
    try:
        r = c.post("/v1/predict", files=upload(png_bytes(np.zeros((120, 120), np.uint8))), headers=AUTH)
        assert r.status_code == 400 and "megapixels" in r.json()["error"]
    finally:
        c.__exit__(None, None, None)


def test_overload_is_503_with_retry_after_and_the_server_keeps_answering(engine, phantom_png) -> None:
    c = make_client(engine, max_in_flight=1, retry_after_s=2)
    try:
        gate = c.app.state.service.gate
        assert gate.try_enter()  # one request in flight: the next is refused at once
        r = c.post("/v1/predict", files=upload(phantom_png), headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "2" and "busy" in r.json()["error"]
        assert r.headers["connection"] == "close"  # the body was not read: the connection ends
        gate.leave()
        assert c.post("/v1/predict", files=upload(phantom_png), headers=AUTH).status_code == 200
        assert 'pcbm_overload_rejections_total{endpoint="/v1/predict"} 1.0' in c.get("/metrics", headers=AUTH).text
    finally:
        c.__exit__(None, None, None)


def test_requests_queue_within_the_limit(engine, phantom_png) -> None:
    """max_in_flight=3, concurrency=1: three concurrent requests wait their turn and all succeed."""
    c = make_client(engine, max_in_flight=3, concurrency=1)
    try:
        codes: list[int] = []
        hold = c.app.state.service.gate.run
        hold.acquire()  # the model is busy: the requests queue behind it
        threads = [threading.Thread(target=lambda: codes.append(
            c.post("/v1/predict", files=upload(phantom_png), headers=AUTH).status_code)) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(500):
            if c.app.state.service.gate.in_flight == 3:
                break
            threading.Event().wait(0.01)
        assert c.app.state.service.gate.in_flight == 3
        hold.release()
        for t in threads:
            t.join(60)
        assert codes == [200, 200, 200]
    finally:
        c.__exit__(None, None, None)


def test_report_html_and_json(client, phantom_png) -> None:
    r = client.post("/v1/report", files=upload(phantom_png), data={"pixel_spacing_mm": "0.2"}, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower() and "scan.png" not in r.text
    j = client.post("/v1/report?format=json", files=upload(phantom_png), headers=AUTH)
    assert j.status_code == 200
    d = j.json()
    assert d["decision"]["plane"] in PLANE_NAMES and d["model"]["name"] == "tiny" and d["prediction"]["image"] == "upload"
    assert client.post("/v1/report?format=pdf", files=upload(phantom_png), headers=AUTH).status_code == 400


def test_intervene_sets_and_erases(client, phantom_png) -> None:
    data = {"set": ["head_visible=1", "cerebellum_visible=1"], "erase": ["kidney"]}
    r = client.post("/v1/intervene", files=upload(phantom_png), data=data, headers=AUTH)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["after"]["properties"]["cerebellum_visible"] == pytest.approx(1.0)
    assert d["after"]["properties"]["head_visible"] == pytest.approx(1.0)
    off = client.post("/v1/intervene", files=upload(phantom_png), data={"set": ["head_visible=0"]}, headers=AUTH).json()
    assert off["after"]["properties"]["cerebellum_visible"] is None  # its family is no longer in view
    assert any("kidney" in c for c in d["corrections"]) and d["model"]["name"] == "tiny"
    bad = client.post("/v1/intervene", files=upload(phantom_png), data={"set": ["cerebelum_visible=1"]}, headers=AUTH)
    assert bad.status_code == 400 and "cerebellum_visible" in bad.json()["error"]  # did you mean
    none = client.post("/v1/intervene", files=upload(phantom_png), headers=AUTH)
    assert none.status_code == 400 and "nothing to change" in none.json()["error"]
    mm = client.post("/v1/intervene", files=upload(phantom_png), data={"set": ["hc_mm=170"]}, headers=AUTH)
    assert mm.status_code == 400 and "spacing" in mm.json()["error"]


def test_model_card(client) -> None:
    d = client.get("/v1/model", headers=AUTH).json()
    assert d["identity"]["name"] == "tiny" and d["ontology"]["planes"] == list(PLANE_NAMES)
    assert d["reference"]["n"] == 8 and d["card"]["name"] == "tiny"
    e = d["energy"]
    assert e["method"] == "rapl" or (e["method"] == "cpu-time estimate" and "estimated" in e["description"])
    assert e["inferences"] >= 1 and e["joules_per_1000_inferences"] > 0


def test_metrics_count_requests_predictions_and_drift(engine) -> None:
    from pcbm.data import open_dataset
    from pcbm.serve.drift import MIN_N

    c = make_client(engine, window_size=100)
    try:
        images = [png_bytes(s.image) for s in open_dataset(f"phantom:n={MIN_N + 2},seed=9,size=96")]
        planes = []
        for b in images:
            planes.append(c.post("/v1/predict", files=upload(b), data={"pixel_spacing_mm": "0.3"}, headers=AUTH).json()["plane"])
        c.post("/v1/predict", files=upload(b"junk", "text/plain"), headers=AUTH)
        c.get("/no/such/path/" + "x" * 50)
        text = c.get("/metrics", headers=AUTH).text
        assert f'pcbm_http_requests_total{{code="200",endpoint="/v1/predict",method="POST"}} {len(images)}.0' in text
        assert 'pcbm_http_errors_total{code="415",endpoint="/v1/predict"} 1.0' in text
        assert 'pcbm_http_requests_total{code="404",endpoint="other",method="GET"} 1.0' in text and "xxxxx" not in text
        for p in set(planes):
            assert f'plane="{p}"' in text
        assert "pcbm_http_request_duration_seconds_bucket" in text and "pcbm_inference_duration_seconds_count" in text
        assert f"pcbm_drift_window_predictions {len(images)}.0" in text and "pcbm_drift_plane_mix_psi " in text
        assert 'pcbm_drift_psi{concept="head_visible"}' in text and 'pcbm_drift_ks_pvalue{concept="head_visible"}' in text
        assert 'pcbm_energy_joules_per_1000_inferences{method="' in text and 'pcbm_model_info{name="tiny"' in text
        drift = c.get("/v1/drift", headers=AUTH).json()
        assert drift["n"] == len(images) and drift["plane_mix"]["psi"] is not None
        assert drift["concepts"]["head_visible"]["n"] == len(images) and drift["concepts"]["hc_mm"]["n"] <= len(images)
        window = c.get("/v1/monitor/window", headers=AUTH).json()
        assert window["planes"] == planes and window["reference"]["n"] == 8
        assert json.dumps(window).count("upload") == 0  # no image names, only values
    finally:
        c.__exit__(None, None, None)


def test_a_queued_request_whose_client_left_is_not_computed(engine, phantom_png) -> None:
    """On a real socket: the model is busy, a request queues, its client disconnects; when its turn
    comes it is dropped (counted as abandoned), not computed."""
    import socket
    import time

    import httpx
    import uvicorn

    from pcbm.live.app import free_port
    from pcbm.serve.app import create_app
    from pcbm.serve.service import ServeSettings

    app = create_app(engine, ServeSettings(tokens=(TOKEN,), max_in_flight=4))
    service = app.state.service
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not (server.started and service.ready.is_set()) and time.time() - t0 < 60:
        time.sleep(0.05)
    payload = (b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
               b"Content-Type: image/png\r\n\r\n" + phantom_png + b"\r\n--B--\r\n")
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    try:
        runs = service.metrics.inferences._value.get()
        service.gate.run.acquire()  # the model is busy
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(head + payload)
            for _ in range(500):
                if service.gate.in_flight == 1:
                    break
                time.sleep(0.01)
            assert service.gate.in_flight == 1  # queued
        time.sleep(0.3)  # the client is gone
        service.gate.run.release()
        for _ in range(500):
            if service.gate.in_flight == 0:
                break
            time.sleep(0.01)
        assert service.gate.in_flight == 0
        assert service.metrics.inferences._value.get() == runs  # nothing computed for it
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as c:
            text = c.get("/metrics").text
            assert 'pcbm_abandoned_requests_total{endpoint="/v1/predict"} 1.0' in text
            assert c.post("/v1/predict", files=upload(phantom_png)).status_code == 200
        assert service.metrics.inferences._value.get() == runs + 1
    finally:
        server.should_exit = True
        thread.join(10)


class _Spy:
    """The engine, with the keyword arguments of every predict call kept."""

    def __init__(self, engine):
        self._engine, self.calls = engine, []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def predict(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self._engine.predict(*args, **kwargs)


@pytest.mark.parametrize("choice, passed", [("always", True), ("standard", "standard"), ("never", False)])
def test_refine_head_setting_reaches_the_engine(engine, phantom_png, choice, passed) -> None:
    spy = _Spy(engine)
    c = make_client(spy, refine_head=choice, warmup=False)
    try:
        r = c.post("/v1/predict", files=upload(phantom_png), headers=AUTH)
        assert r.status_code == 200, r.text
    finally:
        c.__exit__(None, None, None)
    assert spy.calls and spy.calls[-1]["refine_head"] == passed


def test_unknown_refine_head_is_refused() -> None:
    from pcbm.errors import InputError
    from pcbm.serve.service import ServeSettings

    with pytest.raises(InputError, match="refine-head must be one of always, standard, never"):
        ServeSettings(refine_head="sometimes")


def test_predict_adds_the_navigation_hint_only_when_asked(client, phantom_png) -> None:
    from pcbm.navigation import MOVES

    plain = client.post("/v1/predict", files=upload(phantom_png), headers=AUTH).json()
    assert "navigation" not in plain
    r = client.post("/v1/predict?navigate=true&target=femur", files=upload(phantom_png), headers=AUTH)
    assert r.status_code == 200, r.text
    nav = r.json()["navigation"]
    assert nav["target_plane"] == "femur" and nav["move"] in MOVES and "femur" in nav["reason"]
    assert r.json()["plane_probs"] == plain["plane_probs"]  # the hint adds a field, changes nothing else
    nearest = client.post("/v1/predict?navigate=true", files=upload(phantom_png), headers=AUTH).json()["navigation"]
    assert nearest["move"] in MOVES and nearest["target_plane"]
    for query, needle in (("navigate=true&target=elbow", "elbow"), ("target=femur", "needs navigate")):
        r = client.post(f"/v1/predict?{query}", files=upload(phantom_png), headers=AUTH)
        assert r.status_code == 400 and needle in r.json()["error"], r.text
    assert "navigation" in client.get("/openapi.json").json()["components"]["schemas"]["PredictionRecord"]["properties"]
