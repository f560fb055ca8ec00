"""A live session: the supervisor of the capture and engine processes, and the hub that feeds pages.

Three processes: capture (source → latest-frame slot + recorder), the engine (slot → Prediction),
and this one (the web server, the hub, the watchdog). The watchdog restarts an engine that died or
whose heartbeat is older than ``hang_s``; the page says "inference restarting" meanwhile and keeps
showing the raw frames, which it reads from the slot, not from the engine.

The hub smooths the status over a few results, auto-captures the best standard frame of each plane
(highest probability of the plane among standard frames), keeps manual captures, the frozen-screen
reports and the timeline, and writes the session folder: ``gallery/`` (PNG + JSON per capture),
``reports/`` (HTML), ``timeline.csv``, ``summary.html`` (best frame per plane with its report and the
timeline of planes seen), each file written whole (temporary file, then renamed).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import errno
import io
import json
import logging
import multiprocessing as mp
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open, jsonable
from pcbm.errors import InputError
from pcbm.live.slot import FrameSlot
from pcbm.live.smooth import STATUS_COLOURS, StatusSmoother, view
from pcbm.live.sources import parse_source

log = logging.getLogger(__name__)

@dataclass
class Capture:
    kind: str  # "best" (auto, per plane) or "manual"
    plane: str
    status: str
    confidence: float
    seq: int
    at: float
    image: np.ndarray
    prediction: dict[str, Any]
    outlines: dict[str, Any]
    stem: str = ""
    pixel_spacing_mm: float | None = None


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    processed: int = 0
    skipped: int = 0
    engine_restarts: int = 0
    reports: int = 0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))  # capture → sent on the WebSocket
    infer_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    overhead_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    done_times: deque = field(default_factory=lambda: deque(maxlen=300))

    def summary(self) -> dict[str, Any]:
        def pct(d: deque, q: float) -> float | None:
            return round(float(np.percentile(np.asarray(d), q)), 2) if d else None

        now = time.time()
        recent = [t for t in self.done_times if now - t <= 5.0]
        return {"frames_processed": self.processed, "frames_skipped": self.skipped,
                "processed_fps": round(len(recent) / 5.0, 2) if recent else 0.0,
                "engine_restarts": self.engine_restarts, "reports": self.reports,
                "latency_ms_p50": pct(self.latency_ms, 50), "latency_ms_p95": pct(self.latency_ms, 95),
                "infer_ms_p50": pct(self.infer_ms, 50), "overhead_ms_p50": pct(self.overhead_ms, 50),
                "overhead_ms_p95": pct(self.overhead_ms, 95)}


class _Client:
    def __init__(self, ws: Any):
        self.ws = ws
        self.frame: bytes | None = None
        self.msgs: deque[dict[str, Any]] = deque(maxlen=32)
        self.wake = asyncio.Event()


class Hub:
    """Everything the pages see, and the session's record of it (thread-safe entry: :meth:`post`)."""

    def __init__(self, folder: Path, smooth: int = 5, slot: FrameSlot | None = None):
        self.folder = folder
        self.slot = slot
        self.smoother = StatusSmoother(smooth)
        self.stats = Stats()
        self.clients: set[_Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.engine: dict[str, Any] = {"state": "starting"}
        self.last_view: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None
        self.best: dict[str, Capture] = {}
        self.captures: list[Capture] = []
        self.reports: list[dict[str, Any]] = []
        self.timeline: list[tuple[float, int, str, str, float, str | None, str | None]] = []
        self.lock = threading.Lock()
        self._n_manual = 0
        self.write_errors = 0  # session files that could not be written (a full disk)
        self.write_error: str | None = None  # what the summary says about them

    # ---- from the supervisor's threads ----------------------------------------------------------
    def post(self, msg: dict[str, Any]) -> None:
        """A message from the engine or the supervisor (any thread)."""
        loop = self.loop
        if msg.get("type") == "result":
            msg = self._on_result(msg)
        elif msg.get("type") == "report":
            msg = self._on_report(msg)
        elif msg.get("type") == "engine":
            self.engine = {k: v for k, v in msg.items() if k != "type"}
        elif msg.get("type") == "skipped":
            self.stats.skipped += int(msg.get("skipped", 1))
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._broadcast, msg)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _on_result(self, msg: dict[str, Any]) -> dict[str, Any]:
        pred = msg["prediction"]
        shown = self.smoother.update(pred["plane"], pred["status"])
        v = view(pred, shown)
        image = msg.pop("image", None)
        with self.lock:
            self.stats.processed += 1
            self.stats.skipped += int(msg.get("skipped", 0))
            self.stats.infer_ms.append(msg["infer_ms"])
            self.stats.done_times.append(msg["done_at"])
            truth = msg.get("truth") or {}
            self.timeline.append((msg["captured_at"], msg["seq"], pred["plane"], pred["status"],
                                  float(pred["plane_probs"][pred["plane"]]), truth.get("plane"), truth.get("status")))
            self.last_result = msg
            self.last_view = v
            if image is not None and pred["status"] == "standard":
                conf = float(pred["plane_probs"][pred["plane"]])
                old = self.best.get(pred["plane"])
                if old is None or conf > old.confidence:
                    cap = Capture("best", pred["plane"], pred["status"], conf, msg["seq"], msg["captured_at"], image,
                                  pred, msg.get("outlines") or {}, stem=f"best_{pred['plane']}",
                                  pixel_spacing_mm=msg.get("pixel_spacing_mm"))
                    self.best[pred["plane"]] = cap
                    self._save_capture(cap)
        out = {"type": "result", "seq": msg["seq"], "captured_at": msg["captured_at"], "infer_ms": msg["infer_ms"],
               "frozen": msg.get("frozen", False), "view": v, "outlines": msg.get("outlines") or {},
               "size": msg.get("size"), "truth": msg.get("truth"), "navigation": msg.get("navigation")}
        return out

    def _on_report(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = f"frozen_{msg['seq']:07d}.html"
        self._write(self.folder / "reports" / name, msg["html"])
        with self.lock:
            self.stats.reports += 1
            self.reports.append({"seq": msg["seq"], "file": f"reports/{name}", "report_ms": msg.get("report_ms")})
        return {"type": "report", "seq": msg["seq"], "url": f"/session/reports/{name}", "report_ms": msg.get("report_ms")}

    def capture_now(self) -> dict[str, Any]:
        """The capture button: the frame on screen now and the newest result."""
        if self.slot is None:
            raise InputError("no source")
        frame = self.slot.read(after=0)
        if frame is None:
            raise InputError("no frame captured yet")
        with self.lock:
            res = self.last_result
            self._n_manual += 1
            pred = res["prediction"] if res else {}
            cap = Capture("manual", pred.get("plane", "unknown"), pred.get("status", "unknown"),
                          float((pred.get("plane_probs") or {}).get(pred.get("plane"), 0.0)), frame.seq, frame.captured_at,
                          frame.image, pred, (res or {}).get("outlines") or {}, stem=f"capture_{self._n_manual:03d}",
                          pixel_spacing_mm=frame.pixel_spacing_mm)
            self.captures.append(cap)
        self._save_capture(cap)
        msg = {"type": "captured", "file": f"/session/gallery/{cap.stem}.png", "plane": cap.plane, "seq": cap.seq}
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._broadcast, msg)
        return msg

    # ---- files ----------------------------------------------------------------------------------
    def _write(self, path: Path, data: str | bytes) -> bool:
        """Write a session file whole; a write error (a full disk) is one logged line, kept for the
        summary, and never stops the thread that feeds the pages. False when the file was not written."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            return True
        except OSError as e:
            why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            with self.lock:
                self.write_errors += 1
                first = self.write_errors == 1
                self.write_error = f"{self.write_errors} session file(s) not written ({why}), the last " \
                                   f"{path.relative_to(self.folder) if path.is_relative_to(self.folder) else path.name}"
            if first:
                log.error("cannot write %s: %s; the session goes on without saving it", path, why)
            return False

    def _save_capture(self, cap: Capture) -> None:
        import cv2

        ok, png = cv2.imencode(".png", draw_outlines(cap.image, cap.outlines))
        if ok:
            self._write(self.folder / "gallery" / f"{cap.stem}.png", png.tobytes())
        ok, raw = cv2.imencode(".png", cap.image)
        if ok:
            self._write(self.folder / "gallery" / f"{cap.stem}_raw.png", raw.tobytes())
        self._write(self.folder / "gallery" / f"{cap.stem}.json", json.dumps(
            {"kind": cap.kind, "seq": cap.seq, "captured_at": cap.at, "plane": cap.plane, "status": cap.status,
             "confidence": round(cap.confidence, 4), "prediction": cap.prediction}, indent=2, default=str))

    def gallery(self) -> list[dict[str, Any]]:
        with self.lock:
            caps = list(self.best.values()) + list(self.captures)
        return [{"kind": c.kind, "plane": c.plane, "status": c.status, "confidence": round(c.confidence, 3),
                 "seq": c.seq, "image": f"/session/gallery/{c.stem}.png"} for c in caps]

    def write_timeline(self) -> Path:
        path = self.folder / "timeline.csv"
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["captured_at", "seq", "plane", "status", "confidence", "truth_plane", "truth_status"])
        with self.lock:
            rows = list(self.timeline)
        for r in rows:
            w.writerow([f"{r[0]:.6f}", r[1], r[2], r[3], f"{r[4]:.4f}", r[5] or "", r[6] or ""])
        self._write(path, buf.getvalue())
        return path

    # ---- the pages ------------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return {"type": "hello", "engine": self.engine, "view": self.last_view, "gallery": self.gallery(),
                "colours": structure_colours(), "status_colours": STATUS_COLOURS}

    def add(self, ws: Any) -> _Client:
        c = _Client(ws)
        c.msgs.append(self.hello())
        c.wake.set()
        self.clients.add(c)
        return c

    def _broadcast(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "result":  # capture → handed to the WebSocket senders; minus the model's time
            lat = (time.time() - msg["captured_at"]) * 1000
            self.stats.latency_ms.append(lat)
            self.stats.overhead_ms.append(lat - msg["infer_ms"])
        for c in list(self.clients):
            c.msgs.append(msg)
            c.wake.set()

    def push_frame(self, data: bytes) -> None:
        for c in list(self.clients):
            c.frame = data  # only the newest frame waits for a slow tablet
            c.wake.set()

    async def serve_client(self, c: _Client) -> None:
        while True:
            await c.wake.wait()
            c.wake.clear()
            while c.msgs:
                await c.ws.send_text(json.dumps(jsonable(c.msgs.popleft()), default=str, allow_nan=False))
            if c.frame is not None:
                data, c.frame = c.frame, None
                await c.ws.send_bytes(data)

    async def frame_pump(self, fps_cap: float = 60.0) -> None:
        """Send each new frame of the slot (JPEG, after a 16-byte header: seq, capture time) to every page."""
        import cv2

        last = 0
        while True:
            await asyncio.sleep(1.0 / fps_cap)
            if self.slot is None or not self.clients:
                continue
            frame = self.slot.read(after=last)
            if frame is None:
                continue
            last = frame.seq
            ok, jpg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                self.push_frame(np.array([frame.seq, frame.captured_at], np.float64).tobytes() + jpg.tobytes())


def structure_colours() -> dict[str, str]:
    from pcbm.concepts import VISUAL_CONCEPT_NAMES, get_visual_concept

    out = {}
    for n in VISUAL_CONCEPT_NAMES:
        c = get_visual_concept(n).color
        out[n] = "#{:02x}{:02x}{:02x}".format(*(int(x) for x in c[:3]))
    return out


def draw_outlines(image: np.ndarray, outlines: dict[str, Any]) -> np.ndarray:
    """The frame (BGR) with structure outlines, as the page draws them."""
    import cv2

    from pcbm.concepts import get_visual_concept

    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for name, polys in (outlines or {}).items():
        r, g, b = (int(x) for x in get_visual_concept(name).color[:3])
        for p in polys:
            cv2.polylines(rgb, [np.asarray(p, np.int32).reshape(-1, 1, 2)], True, (b, g, r), 1, cv2.LINE_AA)
    return rgb


def timeline_png(rows: list[tuple], t0: float) -> bytes:
    """Planes seen over time (dots coloured by status) with the ground truth where the sweep gives it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcbm.concepts import PLANE_NAMES

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    if rows:
        t = np.array([r[0] - t0 for r in rows])
        y = np.array([PLANE_NAMES.index(r[2]) for r in rows])
        ax.scatter(t, y, c=[STATUS_COLOURS.get(r[3], "#888") for r in rows], s=8, label="predicted")
        truth = [(ti, PLANE_NAMES.index(r[5])) for ti, r in zip(t, rows, strict=True) if r[5] in PLANE_NAMES]
        if truth:
            ax.step([a for a, _ in truth], [b for _, b in truth], where="post", color="#0969da", lw=1, alpha=0.6,
                    label="ground truth (phantom sweep)")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_yticks(range(len(PLANE_NAMES)), PLANE_NAMES, fontsize=8)
    ax.set_xlabel("seconds since the session started")
    ax.set_title("Planes seen (green standard · amber close to standard · grey not a known plane)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def summary_html(hub: Hub, info: dict[str, Any], reports: dict[str, str]) -> str:
    """The session summary page (self-contained: images inline)."""
    import html as _h

    import cv2

    from pcbm.concepts import get_plane

    stats = {**hub.stats.summary(), **info.get("source_stats", {})}
    with hub.lock:
        best = sorted(hub.best.values(), key=lambda c: c.plane)
        manual = list(hub.captures)
        rows = list(hub.timeline)
    t0 = hub.stats.started

    def img_uri(c: Capture) -> str:
        ok, png = cv2.imencode(".png", draw_outlines(c.image, c.outlines))
        return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode() if ok else ""

    cards = []
    for c in best + manual:
        meas = ", ".join(f"{k.upper()} {m['value']:.1f} {m.get('unit', '')}" for k, m in
                         (c.prediction.get("measurements") or {}).items() if m.get("value") is not None)
        rep = reports.get(c.stem)
        cards.append(
            f"<div class='card'><img src='{img_uri(c)}' alt='{_h.escape(c.plane)}'>"
            f"<h3>{_h.escape(get_plane(c.plane).title if c.plane != 'unknown' else 'unknown')}</h3>"
            f"<p><b style='color:{STATUS_COLOURS.get(c.status, '#555')}'>{_h.escape(c.status.replace('_', ' '))}</b>"
            f" · p = {c.confidence:.2f} · frame {c.seq} · {c.at - t0:.1f} s · {'best of the plane (auto)' if c.kind == 'best' else 'captured'}</p>"
            + (f"<p>{_h.escape(meas)}</p>" if meas else "")
            + (f"<p><a href='{_h.escape(rep)}'>full concept report</a></p>" if rep else "") + "</div>")
    plot = base64.b64encode(timeline_png(rows, t0)).decode()
    facts = "".join(f"<tr><th>{_h.escape(str(k))}</th><td>{_h.escape(str(v))}</td></tr>" for k, v in
                    {**{k: info[k] for k in ("source", "model", "backend", "started", "ended") if k in info}, **stats}.items())
    caution = _h.escape(" ".join(x for x in (info.get("recording_stopped"), info.get("write_error"),
                                                info.get("caution")) if x))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        "<title>pcbm live session</title><style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}"
        ".grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:8px;padding:.6em;width:300px}"
        ".card img{width:100%}.caution{background:#fff8c5;border:1px solid #d4a72c;padding:.5em;border-radius:6px}"
        "table{border-collapse:collapse}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #eee}</style></head><body>"
        "<h1>pcbm live session</h1>"
        + (f"<p class='caution'>{caution}</p>" if caution else "")
        + "<h2>Best frame per plane</h2>"
        + (f"<div class='grid'>{''.join(cards)}</div>" if cards else "<p>No standard frame was seen.</p>")
        + f"<h2>Timeline</h2><img alt='timeline' style='max-width:100%' src='data:image/png;base64,{plot}'>"
        + f"<h2>Session</h2><table>{facts}</table></body></html>")


class LiveSession:
    """Run a live session (see the module docstring).

    Args:
        source: a source spec (:func:`pcbm.live.sources.parse_source`).
        model: a model package, a run folder, or "default".
        folder: the session folder (created; must not exist or be empty).
        record: record every frame into the session folder; ``record_format`` "mp4" or
            "lossless"; ``record_raw`` keeps burned-in text.
        threads: the engine's threads (default: the CPUs this process may use).
        freeze_only: predict only frozen screens (for models too slow for video).
        reports: push the full concept report of each frozen screen.
        hang_s: an engine whose heartbeat is older than this is killed and restarted.
        freeze_s: identical frames for this long make a frozen screen.
        smooth: results the status is smoothed over.
        pixel_spacing_mm: mm per pixel of the source (the phantom sweep gives its own).
        navigate_to: the plane the probe-move hints steer toward (None: the nearest, the most probable one).
    """

    def __init__(self, source: str, model: str, folder: str | Path, record: bool = False, record_format: str = "mp4",
                 record_raw: bool = False, threads: int | None = None, freeze_only: bool = False, reports: bool = True,
                 hang_s: float = 10.0, freeze_s: float = 0.3, smooth: int = 5, pixel_spacing_mm: float | None = None,
                 crash_after: int = 0, navigate_to: str | None = None):
        from pcbm.runtime import usable_cpus

        self.spec = parse_source(source)  # a bad spec fails here, before any process starts
        self.model = str(model)
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise InputError(f"session folder {self.folder} exists and is not empty; choose another")
        self.record = record
        self.record_format, self.record_raw = record_format, record_raw
        self.threads = int(threads) if threads else usable_cpus()
        self.freeze_only, self.reports, self.hang_s = freeze_only, reports, float(hang_s)
        self.freeze_s, self.pixel_spacing_mm, self.crash_after = float(freeze_s), pixel_spacing_mm, int(crash_after)
        self.smooth = smooth
        self.navigate_to = navigate_to
        if navigate_to is not None:  # a plane the policy does not know fails here, not in the engine process
            from pcbm.navigation import known_target

            known_target(navigate_to, "--navigate-to plane")
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._threads: list[threading.Thread] = []
        self._running = False
        self.slot: FrameSlot | None = None
        self.hub: Hub | None = None
        self.capture_proc: Any = None
        self.engine_proc: Any = None
        self._conn: Any = None
        self._heartbeat: Any = None
        self._engine_started = 0.0
        self.summary_path: Path | None = None
        self.slot_stats: dict[str, Any] = {}
        self.capture_exits: list[int | None] = []  # exit codes of capture processes that died and were restarted
        self.started_at = time.time()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, wait_engine: float = 0.0) -> LiveSession:
        """Start the engine and capture. ``wait_engine`` > 0: wait up to that many seconds for the model
        to load before capture starts, and raise InputError (the session folder left as it was) when it
        cannot be loaded."""
        made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slot = FrameSlot.create()
        self.hub = Hub(self.folder, self.smooth, self.slot)
        self._running = True
        self._start_engine()
        reader = threading.Thread(target=self._read_engine, name="engine-reader", daemon=True)
        reader.start()
        self._threads.append(reader)
        if wait_engine > 0:
            self._await_engine(wait_engine, made)
        self._start_capture(0)
        watchdog = threading.Thread(target=self._watchdog, name="watchdog", daemon=True)
        watchdog.start()
        self._threads.append(watchdog)
        return self

    def _await_engine(self, timeout: float, made_folder: bool) -> None:
        """Wait for the engine's "ready"; a model that cannot be loaded ends the session here, one line."""
        deadline = time.time() + timeout
        error = None
        while time.time() < deadline and not hasattr(self, "backend"):
            error = getattr(self, "_fatal", None)
            if error is None and not self.engine_proc.is_alive():
                time.sleep(0.2)  # its "fatal" may still be in the pipe
                error = getattr(self, "_fatal", None) or f"the engine exited ({self.engine_proc.exitcode}) while " \
                                                           "loading the model"
            if error is not None:
                break
            time.sleep(0.05)
        if error is None:
            return  # ready (or slow: the page says "starting" until it is)
        self._running = False
        if self.engine_proc.is_alive():
            self.engine_proc.kill()
        self.engine_proc.join(2)
        self.slot.close(unlink=True)
        self.slot = self.hub.slot = None
        if made_folder:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)  # nothing was written to it yet
        for prefix in ("InputError: ", "UnknownNameError: "):
            error = error.removeprefix(prefix)
        raise InputError(f"--model {self.model}: cannot be used ({error})")

    def _start_capture(self, start_seq: int) -> None:
        fps = float(self.spec.options.get("fps", 30)) if self.spec.kind == "phantom-sweep" else 30.0
        freeze_frames = max(2, round(self.freeze_s * fps))
        rec = {"dir": str(self.folder), "format": self.record_format, "raw": self.record_raw} if self.record else None
        from pcbm.live.worker import capture_main

        self.capture_proc = self._ctx.Process(target=capture_main, name="pcbm-live-capture", daemon=True, args=(
            self.spec.describe() if self.spec.kind == "phantom-sweep" else self.spec.target if self.spec.kind == "file"
            else (f"camera:{self.spec.target}" if self.spec.kind == "camera" else self.spec.target),
            self.slot.name, self._stop, rec, start_seq, freeze_frames, self.pixel_spacing_mm))
        self.capture_proc.start()

    def _start_engine(self) -> None:
        from pcbm.live.worker import engine_main

        recv, send = self._ctx.Pipe(duplex=False)
        self._heartbeat = self._ctx.Value("d", time.time(), lock=False)
        proc = self._ctx.Process(target=engine_main, name="pcbm-live-engine", daemon=True, args=(
            self.model, self.slot.name, send, self._heartbeat, self.threads, self.freeze_only, self.reports,
            self.crash_after, self.navigate_to))
        proc.start()
        send.close()
        self._conn, self.engine_proc, self._engine_started = recv, proc, time.time()

    def _read_engine(self) -> None:
        while self._running:
            conn = self._conn
            try:
                if not conn.poll(0.05):
                    continue
                msg = conn.recv()
            except (EOFError, OSError):
                time.sleep(0.05)  # the engine is gone; the watchdog restarts it with a new pipe
                continue
            except Exception:  # noqa: BLE001 - a message cut by a kill: drop it
                continue
            kind = msg.get("type")
            if kind == "ready":
                self.hub.post({"type": "engine", "state": "running", "backend": msg["backend"], "model": msg["model"],
                               "restarts": self.hub.stats.engine_restarts})
                self.backend, self.identity = msg["backend"], msg["model"]
            elif kind == "fatal":
                self.hub.post({"type": "engine", "state": "failed", "error": msg["error"]})
                self._fatal = msg["error"]
            else:
                self.hub.post(msg)

    def _watchdog(self) -> None:
        while self._running:
            time.sleep(0.1)
            proc = self.engine_proc
            if getattr(self, "_fatal", None):
                continue
            dead = not proc.is_alive()
            hung = not dead and time.time() - self._heartbeat.value > self.hang_s
            if not (dead or hung) or not self._running:
                if not self.capture_proc.is_alive() and self._running and not self._stop.is_set() \
                        and self.slot.stats()["source_state"] not in ("ended",):
                    self.capture_exits.append(self.capture_proc.exitcode)
                    self._start_capture(self.slot.seq)  # capture itself died: start it again, numbering on
                continue
            if hung:
                proc.kill()
            proc.join(2)
            self.hub.stats.engine_restarts += 1
            self.hub.smoother.reset()
            self.hub.post({"type": "engine", "state": "restarting", "restarts": self.hub.stats.engine_restarts,
                           "why": "hung" if hung else f"exited ({proc.exitcode})"})
            self.crash_after = 0  # the test's crash happens once
            quick = time.time() - self._engine_started < 3.0
            self._quick_failures = getattr(self, "_quick_failures", 0) + 1 if quick else 0
            if self._quick_failures >= 3:  # failing at start again and again: back off, up to 10 s
                time.sleep(min(10.0, 0.5 * 2 ** (self._quick_failures - 3)))
            try:
                self._conn.close()
            except OSError:
                pass
            self._start_engine()

    def status(self) -> dict[str, Any]:
        return {"engine": self.hub.engine, **self.hub.stats.summary(), **(self.slot.stats() if self.slot else {}),
                "capture_restarts": len(self.capture_exits),
                "source": self.spec.describe(), "model": self.model}

    def stop(self) -> Path | None:
        """Stop capture (the recording is closed whole), stop the engine, write the summary."""
        if not self._running or self.capture_proc is None:
            return self.summary_path
        self._stop.set()
        self.capture_proc.join(30)
        src_stats = self.slot_stats = self.slot.stats()
        self._running = False
        for t in self._threads:
            t.join(2)
        if self.engine_proc.is_alive():
            self.engine_proc.kill()
        self.engine_proc.join(2)
        try:
            self.summary_path = self.write_summary(src_stats)
        finally:
            self.slot.close(unlink=True)
            self.slot = None
            self.hub.slot = None
        return self.summary_path

    def write_summary(self, source_stats: dict[str, Any] | None = None) -> Path | None:
        """Write the timeline, the reports of the best frames, session.json and summary.html; the
        summary's path (None when it could not be written: :attr:`Hub.write_error` says why)."""
        hub = self.hub
        hub.write_timeline()
        reports: dict[str, str] = {}
        with hub.lock:
            caps = list(hub.best.values()) + list(hub.captures)
        if caps and self.reports:
            try:
                from pcbm.live.worker import Predictor

                pred = Predictor(self.model, self.threads)
                for c in caps:
                    p = pred.predict(c.image, c.pixel_spacing_mm, c.stem)
                    html = pred.report_html(c.image, p, c.pixel_spacing_mm, c.stem)
                    hub._write(self.folder / "reports" / f"{c.stem}.html", html)
                    reports[c.stem] = f"reports/{c.stem}.html"
            except Exception as e:  # noqa: BLE001 - the summary is still written, saying why
                reports = {}
                self.report_error = f"{type(e).__name__}: {e}"
        info = {"source": self.spec.describe(), "model": self.model, "backend": getattr(self, "backend", "?"),
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at)),
                "ended": time.strftime("%Y-%m-%d %H:%M:%S"), "source_stats": source_stats or {},
                "caution": ("Phantom source: these figures are on the procedural phantom, not on real scans."
                            if self.spec.kind == "phantom-sweep" else
                            "Real video: see the model card on real images before trusting a plane call.")}
        stopped = (source_stats or {}).get("recording_stopped")
        if stopped:
            info["recording_stopped"] = stopped[:1].upper() + stopped[1:] + "."
        path = self.folder / "summary.html"
        hub._write(self.folder / "session.json", json.dumps({**info, **hub.stats.summary(), "write_error": hub.write_error,
                                                             "gallery": hub.gallery(), "frozen_reports": hub.reports},
                                                            indent=2, default=str))
        if hub.write_error:
            info["write_error"] = f"Not saved: {hub.write_error}."
        return path if hub._write(path, summary_html(hub, info, reports)) else None
