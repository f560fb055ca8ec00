"""The two child processes of a live session: capture (source → slot + recorder) and the engine
(slot → prediction → the page). Each runs in its own process, started with ``spawn`` by
:class:`pcbm.live.session.LiveSession`, so an engine that crashes, hangs or is killed never stops
capture, recording or the raw display; the supervisor restarts it.

The engine talks to the supervisor over a one-way pipe (a new one per engine, so a process killed
mid-message cannot corrupt its successor's stream) and beats a shared heartbeat before and after
each frame; a heartbeat older than the hang limit makes the supervisor kill and restart it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from pcbm.live.slot import FrameSlot
from pcbm.live.sources import SourceLost, open_source, parse_source

FROZEN_MAX_DIFF = 1  # grey levels: "identical" frames (a capture box adds no noise to a frozen screen)


def _ignore_sigint() -> None:
    """Ctrl-C in the terminal reaches every process of the group: the children leave it to the supervisor."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---- capture -------------------------------------------------------------------------------------
def capture_main(source: str, slot_name: str, stop: Any, record: dict[str, Any] | None, start_seq: int,
                 freeze_frames: int, pixel_spacing_mm: float | None, log: Any = None) -> None:
    """Read ``source`` until it ends or ``stop`` is set: each frame to the slot and the recorder."""
    _ignore_sigint()  # the supervisor decides when capture stops
    from pcbm.live.recorder import Recorder

    slot = FrameSlot.attach(slot_name)
    spec = parse_source(source)
    seq, reopened, backoff = int(start_seq), 0, 0.2
    recorder = None
    prev_small: np.ndarray | None = None
    same_run, frozen_since = 0, 0
    try:
        while not stop.is_set():
            try:
                src = open_source(spec)
            except SourceLost:
                slot.set_state("reopening")
                reopened += 1
                slot.count(source_restarts=reopened)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            slot.set_state("live", src.fps)
            if record is not None and recorder is None:
                recorder = Recorder(record["dir"], src.fps, record.get("format", "mp4"), record.get("raw", False))
            try:
                for image, truth in src.frames():
                    if stop.is_set():
                        break
                    at = time.time()
                    seq += 1
                    small = image[::4, ::4]
                    if prev_small is not None and small.shape == prev_small.shape and int(
                            np.abs(small.astype(np.int16) - prev_small).max()) <= FROZEN_MAX_DIFF:
                        same_run += 1
                    else:
                        same_run, frozen_since = 0, 0
                    if same_run >= freeze_frames and not frozen_since:
                        frozen_since = seq
                    prev_small = small
                    sp = pixel_spacing_mm if pixel_spacing_mm is not None else (truth or {}).get("pixel_spacing_mm")
                    slot.write(image, seq, at, sp, frozen_since, truth)
                    if recorder is not None:
                        recorder.add(image, seq, at)
                    slot.count(captured=seq - start_seq, recorded=recorder.written if recorder else 0,
                               record_errno=recorder.errno if recorder else None)
            except SourceLost:
                slot.set_state("reopening")
                reopened += 1
                slot.count(source_restarts=reopened)
                continue
            finally:
                src.close()
            if not spec.live or stop.is_set():
                break
            slot.set_state("reopening")  # a device or stream that ended: open it again
            reopened += 1
            slot.count(source_restarts=reopened)
    finally:
        if recorder is not None:
            recorder.close()
            slot.count(recorded=recorder.written, record_errno=recorder.errno)
        slot.set_state("ended")
        slot.close()


# ---- the engine ----------------------------------------------------------------------------------
class Predictor:
    """A model behind the one pipeline (:func:`pcbm.predictor.open_predictor`): a package on the runtime,
    or a run / 'default' in torch."""

    def __init__(self, model: str, threads: int):
        from pcbm.predictor import as_pipeline, is_runtime, open_predictor, require_concepts

        self.ref = model
        opened = open_predictor(model, threads=threads)
        require_concepts(opened, "pcbm live")
        self.pipeline = as_pipeline(opened)
        self.engine = opened if is_runtime(opened) else None
        self.model = None if self.engine is not None else opened
        self.info = {} if self.model is None else self.model.info
        self.backend, self.identity = ("onnxruntime" if self.engine is not None else "torch"), self.pipeline.identity

    def predict(self, image: np.ndarray, spacing: float | None, name: str) -> Any:
        """The frame's prediction with masks, in one pass. The head refiner redraws the head only on
        standard frames, where the page shows HC (it costs more than the rest of the path)."""
        return self.pipeline.predict(image, spacing, name=name, keep_masks=True, refine_head="standard")

    def report_html(self, image: np.ndarray, pred: Any, spacing: float | None, name: str) -> str:
        """The full concept report of a frozen frame."""
        if self.engine is not None:
            from pcbm.explain.build import package_card, report_from_prediction

            if pred.status != "standard":  # the live prediction skipped the head refiner: the report measures on it
                pred = self.engine.predict(image, spacing, name=name, keep_masks=True)
            return report_from_prediction(image, pred, package_card(self.engine.metadata), spacing,
                                          "live source" if spacing else None, name).to_html()
        from pcbm.explain.build import explain_image

        return explain_image(self.model, image, self.info, spacing, "live source" if spacing else None,
                             source=name).to_html()


def outlines(masks: np.ndarray | None, max_points: int = 80) -> dict[str, list[list[list[int]]]]:
    """Each structure's outline (polygons in image pixels, simplified) from (V, H, W) probabilities."""
    import cv2

    from pcbm.concepts import VISUAL_CONCEPT_NAMES

    out: dict[str, list[list[list[int]]]] = {}
    if masks is None:
        return out
    for i, name in enumerate(VISUAL_CONCEPT_NAMES):
        m = (masks[i] > 0.5).astype(np.uint8)
        if m.sum() < 12:
            continue
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polys = []
        for c in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
            if cv2.contourArea(c) < 12:
                continue
            eps = 0.5
            while len(c) > max_points:
                c = cv2.approxPolyDP(c, eps, True)
                eps *= 2
            polys.append(c.reshape(-1, 2).astype(int).tolist())
        if polys:
            out[name] = polys
    return out


def _navigation(pred: Any, target: str | None = None) -> dict[str, Any] | None:
    """The probe-move hint toward ``target`` or the nearest standard plane (pcbm.navigation); None if it cannot be made."""
    if getattr(pred, "navigation", None) is not None:
        return dict(pred.navigation)
    try:
        from pcbm.navigation import hint

        return hint(pred, target).to_dict()
    except Exception:  # noqa: BLE001 - a hint is an extra: never let it stop the results
        return None


def result_message(pred: Any, frame: Any, infer_ms: float, skipped: int, navigate_to: str | None = None) -> dict[str, Any]:
    """What the page gets for one processed frame (its hint steers toward ``navigate_to``, else the nearest plane)."""
    d = pred.to_dict()
    nav = _navigation(pred, navigate_to)
    if nav is not None:
        d["navigation"] = nav
    return {"type": "result", "navigation": nav, "seq": frame.seq, "captured_at": frame.captured_at, "done_at": time.time(),
            "infer_ms": round(infer_ms, 2), "skipped": skipped, "frozen": bool(frame.frozen_since),
            "prediction": d, "outlines": outlines(pred.masks), "truth": frame.truth,
            "size": [int(frame.image.shape[1]), int(frame.image.shape[0])], "pixel_spacing_mm": frame.pixel_spacing_mm,
            # a standard frame may become the plane's best: the hub keeps it (the slot has moved on by then)
            **({"image": frame.image} if pred.status == "standard" else {})}


def engine_main(model: str, slot_name: str, conn: Any, heartbeat: Any, threads: int, freeze_only: bool,
                reports: bool, crash_after: int = 0, navigate_to: str | None = None) -> None:
    """Predict the newest frame, again and again; the full report once per frozen screen; each
    result's probe-move hint steers toward ``navigate_to`` (None: the nearest plane).

    ``crash_after`` (tests) makes the process kill itself after that many frames.
    """
    _ignore_sigint()
    heartbeat.value = time.time()
    try:
        predictor = Predictor(model, threads)
    except Exception as e:  # noqa: BLE001 - a model that cannot load is reported to the page, not a crash loop
        conn.send({"type": "fatal", "error": f"{type(e).__name__}: {e}"})
        return
    slot = FrameSlot.attach(slot_name)
    conn.send({"type": "ready", "backend": predictor.backend, "model": predictor.identity, "pid": os.getpid()})
    last, reported, n, done_frozen = slot.seq, 0, 0, 0  # start from the newest frame, not from the first ever captured
    while True:
        heartbeat.value = time.time()
        frame = slot.read(after=last)
        if frame is None:
            time.sleep(0.002)
            continue
        skipped = max(frame.seq - last - 1, 0) if last else 0
        last = frame.seq
        if freeze_only and not frame.frozen_since:
            conn.send({"type": "skipped", "seq": frame.seq, "skipped": skipped + 1})
            continue
        if frame.frozen_since and frame.frozen_since == done_frozen:
            conn.send({"type": "skipped", "seq": frame.seq, "skipped": skipped + 1})  # the same frozen screen
            continue
        done_frozen = frame.frozen_since
        name = f"frame_{frame.seq:07d}"
        t0 = time.perf_counter()
        pred = predictor.predict(frame.image, frame.pixel_spacing_mm, name)
        infer_ms = (time.perf_counter() - t0) * 1000
        conn.send(result_message(pred, frame, infer_ms, skipped, navigate_to))
        n += 1
        if crash_after and n >= crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if reports and frame.frozen_since and frame.frozen_since != reported:
            reported = frame.frozen_since
            heartbeat.value = time.time()
            t0 = time.perf_counter()
            html = predictor.report_html(frame.image, pred, frame.pixel_spacing_mm, name)
            conn.send({"type": "report", "seq": frame.seq, "frozen_since": frame.frozen_since, "html": html,
                       "report_ms": round((time.perf_counter() - t0) * 1000, 1)})
