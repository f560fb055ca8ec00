"""``pcbm serve`` and ``pcbm monitor`` from the command line; a fresh interpreter serving a package
without torch; two real worker processes whose metrics and drift window are merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import AUTH, TOKEN, make_client, png_bytes, upload

from pcbm.cli import main

REPO = Path(__file__).resolve().parents[2]


def _exit_code(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_serve_refuses_unsafe_exposure(package, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PCBM_API_TOKENS", raising=False)
    assert _exit_code(["serve", "--model", str(package), "--host", "0.0.0.0", "--allow-unauthenticated"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert _exit_code(["serve", "--model", str(package)]) == 2
    assert "no API tokens" in capsys.readouterr().err
    assert _exit_code(["serve", "--model", "/nonexistent/pkg", "--allow-unauthenticated"]) == 2
    assert "no model in /nonexistent/pkg: the folder does not exist" in capsys.readouterr().err


def test_monitor_renders_a_saved_window(engine, tmp_path, capsys) -> None:
    from pcbm.data import open_dataset

    c = make_client(engine, window_size=100)
    try:
        for s in open_dataset("phantom:n=34,seed=12,size=96"):
            assert c.post("/v1/predict", files=upload(png_bytes(s.image)), data={"pixel_spacing_mm": "0.25"},
                          headers=AUTH).status_code == 200
        doc = c.get("/v1/monitor/window", headers=AUTH).json()
    finally:
        c.__exit__(None, None, None)
    (tmp_path / "w.json").write_text(json.dumps(doc))
    assert _exit_code(["monitor", str(tmp_path / "w.json"), "--out", str(tmp_path / "rep")]) == 0
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"drift.html", "drift.md", "drift.json", "psi.png", "plane_mix.png", "concepts.png"} <= names
    d = json.loads((tmp_path / "rep" / "drift.json").read_text())
    assert d["n"] == 34 and d["plane_mix"]["psi"] is not None and "head_visible" in d["concepts"]
    assert "data:image/png;base64," in (tmp_path / "rep" / "drift.html").read_text()
    assert _exit_code(["monitor", str(tmp_path / "w.json"), "--out", str(tmp_path / "rep")]) == 2  # no clobbering
    (tmp_path / "bad.json").write_text("{}")
    assert _exit_code(["monitor", str(tmp_path / "bad.json"), "--out", str(tmp_path / "rep2")]) == 2
    assert "not a pcbm serve window" in capsys.readouterr().err


def test_serving_a_package_imports_no_torch(package) -> None:
    code = f"""
import sys, time
from fastapi.testclient import TestClient
from pcbm.runtime import Engine
from pcbm.serve.app import create_app
from pcbm.serve.service import ServeSettings
import numpy as np, cv2
c = TestClient(create_app(Engine({str(package)!r}, threads=1), ServeSettings(tokens=({TOKEN!r},))))
with c:
    png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8))[1].tobytes()
    h = {{"Authorization": "Bearer {TOKEN}"}}
    assert c.post("/v1/predict", files={{"image": ("a.png", png, "image/png")}}, headers=h).status_code == 200
    assert c.post("/v1/report", files={{"image": ("a.png", png, "image/png")}}, headers=h).status_code == 200
    assert c.post("/v1/intervene", files={{"image": ("a.png", png, "image/png")}}, data={{"set": "csp_visible=1"}},
                  headers=h).status_code == 200
    assert c.get("/v1/model", headers=h).status_code == 200 and c.get("/metrics", headers=h).status_code == 200
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_two_workers_merge_metrics_and_the_window(package, tmp_path) -> None:
    """`pcbm serve --workers 2` (the console script): both workers answer, torch-free; every /metrics
    (whichever worker answers) counts all predictions; the window file holds them all."""
    from pcbm.data import open_dataset
    from pcbm.live.app import free_port

    port = free_port()
    env = {**os.environ, "PCBM_API_TOKENS": TOKEN}
    window = tmp_path / "window.json"
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "pcbm"), "serve", "--model", str(package), "--port", str(port),
                             "--workers", "2", "--window-out", str(window), "--dump-every", "1", "--no-access-log"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        t0 = time.time()
        while time.time() - t0 < 180:
            try:
                with httpx.Client(base_url=url) as c:  # a new connection each time: the workers share the socket
                    if c.get("/readyz").status_code == 200:
                        pids.add(c.get("/healthz").json()["pid"])
                        if len(pids) == 2:
                            break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert len(pids) == 2, f"saw workers {pids}"
        for pid in pids:
            assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text()
        images = [png_bytes(s.image) for s in open_dataset("phantom:n=12,seed=21,size=96")]
        answered: set[int] = set()
        for b in images:
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as c:
                r = c.post("/v1/predict", files=upload(b), data={"pixel_spacing_mm": "0.2"})
                assert r.status_code == 200
                answered.add(c.get("/healthz").json()["pid"])
        totals = set()
        for _ in range(6):
            with httpx.Client(base_url=url, headers=AUTH) as c:
                text = c.get("/metrics").text
            line = [ln for ln in text.splitlines() if ln.startswith("pcbm_inferences_total")]
            totals.add(line[0])
            assert f"pcbm_drift_window_predictions {len(images)}.0" in text
        assert totals == {f"pcbm_inferences_total {len(images)}.0"}
        t0 = time.time()
        while time.time() - t0 < 30 and not (window.exists() and json.loads(window.read_text())["n"] == len(images)):
            time.sleep(0.5)
        assert json.loads(window.read_text())["n"] == len(images)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out


@pytest.mark.slow
def test_a_run_folder_is_served_from_a_package_exported_once_into_the_cache(package, tmp_path, monkeypatch) -> None:
    from pcbm.predictor import CACHE_ENV, cache_dir, package_for
    from pcbm.runtime import Engine

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    said: list[str] = []
    pkg, tmp = package_for(str(package.parent / "run"), said.append)
    assert tmp is None and pkg.parent == cache_dir() and (pkg / "reference.json").is_file()
    assert Engine(pkg).identity["name"] == "tiny" and any("exporting" in m for m in said)
    said.clear()
    assert package_for(str(package.parent / "run"), said.append) == (pkg, None)  # the second start: no export
    assert not any("exporting" in m for m in said) and any("from the cache" in m for m in said)
    assert [p.name for p in cache_dir().iterdir()] == [pkg.name]  # no half-written export left beside it
    assert package_for(str(package), said.append) == (package, None)  # a package is served as it is


@pytest.mark.slow
def test_sigterm_saves_the_window_and_removes_the_temporary_folders(package, tmp_path) -> None:
    """One worker, stopped with SIGTERM (as a service manager does): exit 0, the window saved once
    more, no pcbm-serve-* folder left in TMPDIR."""
    from pcbm.live.app import free_port

    port, scratch = free_port(), tmp_path / "tmp"
    scratch.mkdir()
    window = tmp_path / "w.json"
    env = {**os.environ, "PCBM_API_TOKENS": TOKEN, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "pcbm"), "serve", "--model", str(package), "--port", str(port),
                             "--window-out", str(window), "--dump-every", "3600", "--no-access-log"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", headers=AUTH,
                       files=upload(png_bytes(np.zeros((64, 64), np.uint8))))
        assert r.status_code == 200
        assert list(scratch.glob("pcbm-serve-*"))  # the state folder while serving
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert json.loads(window.read_text())["n"] == 1  # saved at exit
    assert not list(scratch.glob("pcbm-serve-*")), out[-2000:]
