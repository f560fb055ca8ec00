"""A whole live session on the phantom sweep: processes, the page's WebSocket, a killed engine,
frozen screens, the gallery and the summary; and an interpreter that never imports torch."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from websockets.sync.client import connect

from pcbm.errors import InputError
from pcbm.live.app import serving
from pcbm.live.session import LiveSession

pytestmark = pytest.mark.slow

TOKEN = "live-session-token-for-tests-0123456789"  # the page's lock: every route but /healthz wants it


def _messages(url: str, until, timeout: float = 30.0) -> list[dict]:
    """Read the page's WebSocket until ``until(messages)`` holds (JSON messages; frames counted)."""
    out: list[dict] = []
    t0 = time.time()
    with connect(url.replace("http", "ws") + f"/ws?token={TOKEN}", open_timeout=10) as ws:
        while time.time() - t0 < timeout:
            try:
                m = ws.recv(timeout=1.0)
            except TimeoutError:
                continue
            if isinstance(m, bytes):
                seq, at = np.frombuffer(m[:16], np.float64)
                out.append({"type": "frame", "seq": int(seq), "at": time.time()})
                assert m[16:18] == b"\xff\xd8"  # a JPEG
            else:
                out.append({**json.loads(m), "at": time.time()})
            if until(out):
                return out
    raise AssertionError(f"timed out; last messages {[m['type'] for m in out[-10:]]}")


def test_engine_killed_mid_stream_recording_goes_on(tiny_package, tmp_path):
    s = LiveSession("phantom-sweep:fps=30,frames=60,size=128", str(tiny_package), tmp_path / "s", record=True,
                    threads=1).start()
    try:
        with serving(s, token=TOKEN) as url:
            first = _messages(url, lambda ms: sum(m["type"] == "result" for m in ms) >= 5)
            assert any(m["type"] == "frame" for m in first)
            pid = s.engine_proc.pid
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            after = _messages(url, lambda ms: any(m["type"] == "engine" and m["state"] == "restarting" for m in ms)
                              and any(m["type"] == "result" for m in ms), timeout=20)
            restarting = next(m for m in after if m["type"] == "engine" and m["state"] == "restarting")
            resumed = next(m for m in after if m["type"] == "result")
            assert restarting["at"] < resumed["at"]
            assert resumed["at"] - killed_at < 5.0, "results must resume within 5 s of the kill"
            frames = [m for m in after if m["type"] == "frame"]
            assert frames, "the raw display goes on while the engine restarts"
            assert s.engine_proc.pid != pid and s.hub.stats.engine_restarts == 1
            health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
            assert health["ok"] and health["engine"] == "running"
    finally:
        s.stop()
    st = s.slot_stats
    assert not s.capture_exits, f"capture died: exit codes {s.capture_exits}"
    rows = list(csv.DictReader(open(tmp_path / "s" / "recording.timestamps.csv")))
    assert st["frames_captured"] > 10 and len(rows) == st["frames_captured"] == st["frames_recorded"]
    during = [r for r in rows if killed_at <= float(r["captured_at"]) <= resumed["at"]]
    assert during, "frames captured while the engine was down are in the recording"
    seqs = [int(r["seq"]) for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), "the recording has every captured frame, in order"
    cap = cv2.VideoCapture(str(tmp_path / "s" / "recording.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(rows)
    assert json.loads((tmp_path / "s" / "recording.json").read_text())["burned_in_masked"] == "sector"


def test_frozen_screens_get_reports_and_the_session_a_summary(tiny_package, tmp_path):
    s = LiveSession("phantom-sweep:fps=60,frames=21,size=128,hold=0.5,loop=0", str(tiny_package), tmp_path / "s",
                    threads=1, freeze_s=0.1).start()
    try:
        with serving(s, token=TOKEN) as url:
            msgs = _messages(url, lambda ms: sum(m["type"] == "report" for m in ms) >= 2, timeout=40)
            rep = next(m for m in msgs if m["type"] == "report")
            page = urllib.request.urlopen(url + rep["url"] + f"?token={TOKEN}", timeout=5).read().decode()
            assert "<html" in page.lower() and "need the torch model" in page
            res = [m for m in msgs if m["type"] == "result"]
            assert any(m["frozen"] for m in res) and all("status_words" in m["view"] for m in res)
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            got = json.loads(urllib.request.urlopen(urllib.request.Request(url + "/capture", method="POST",
                                                                           headers=bearer), timeout=10).read())
            assert got["file"].startswith("/session/gallery/capture_001")
            assert urllib.request.urlopen(url + got["file"] + f"?token={TOKEN}", timeout=5).read()[:4] == b"\x89PNG"
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(url + f"/session/../../etc/passwd?token={TOKEN}", timeout=5)
    finally:
        summary = s.stop()
    folder = tmp_path / "s"
    text = summary.read_text()
    assert "Best frame per plane" in text and "data:image/png;base64" in text and "Phantom source" in text
    assert (folder / "gallery" / "capture_001.json").is_file() and (folder / "timeline.csv").is_file()
    info = json.loads((folder / "session.json").read_text())
    assert info["frames_processed"] > 0 and info["frozen_reports"]
    with pytest.raises(InputError, match="not empty"):
        LiveSession("phantom-sweep", str(tiny_package), folder)


def test_freeze_only_predicts_only_frozen_screens(tiny_package, tmp_path):
    s = LiveSession("phantom-sweep:fps=60,frames=14,size=96,hold=0.3,loop=0", str(tiny_package), tmp_path / "s",
                    threads=1, freeze_only=True, reports=False, freeze_s=0.05).start()
    t0 = time.time()
    while s.slot.stats()["source_state"] != "ended" and time.time() - t0 < 40:
        time.sleep(0.1)
    time.sleep(1.0)
    s.stop()
    rows = list(csv.DictReader(open(tmp_path / "s" / "timeline.csv")))
    assert rows and len(rows) <= 7, "one prediction per frozen screen"
    assert s.hub.stats.skipped > 14


def test_live_needs_no_torch():
    code = ("import sys; import pcbm.live.session, pcbm.live.app, pcbm.live.worker, pcbm.live.recorder, "
            "pcbm.live.sources, pcbm.live.smooth; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-500:]
