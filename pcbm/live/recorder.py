"""The recorder: every captured frame to a video file, with a per-frame timestamp table.

``mp4`` (MPEG-4 part 2, what OpenCV's bundled FFmpeg writes without extra codecs) or ``lossless``
(FFV1 in Matroska: the frames come back bit for bit). Burned-in text outside the scan sector is
masked by default, as the DICOM ETL does (:func:`pcbm.data.harmonise.estimate_sector` on the
brightest of the first frames: the sector, where speckle moves, is kept; names and dates drawn
around it go black); ``raw=True`` keeps the frames as captured.

Files appear whole or not at all: a segment is written as ``NAME.partial.mp4`` and renamed when closed
(a capture process that is killed leaves a ``.partial`` file, readable up to its last frame, and the
timestamps next to it). A write error (a full disk) stops the recording, not capture: the video is
closed at its last good frame and renamed into place when it reads back (else it keeps its
``.partial`` name), :attr:`error` says "recording stopped at frame N: disk full", and it is logged
and shown in the session summary. Writing runs on its own thread behind an unbounded queue, so a slow disk
never makes capture drop a frame; :attr:`written` counts what reached the file.

``timestamps.csv`` (per segment ``NAME.timestamps.csv``): ``frame`` (index in the file), ``seq`` (the
capture sequence number), ``captured_at`` (Unix seconds), ``t`` (seconds since the first frame).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open

log = logging.getLogger(__name__)
FORMATS = {"mp4": ("mp4v", ".mp4"), "lossless": ("FFV1", ".mkv")}
_SECTOR_FRAMES = 15


class Recorder:
    """Record frames into ``folder`` (one segment per :class:`Recorder`; see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str], fps: float, fmt: str = "mp4", raw: bool = False,
                 stem: str = "recording"):
        if fmt not in FORMATS:
            raise ValueError(f"unknown recording format {fmt!r}; choose {', '.join(FORMATS)}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps, self.fmt, self.raw = float(fps), fmt, bool(raw)
        k = 0
        while True:
            name = f"{stem}{'' if k == 0 else f'_{k:03d}'}"
            ext = FORMATS[fmt][1]
            if not any((self.folder / f"{name}{s}").exists() for s in (ext, ".partial" + ext, ".timestamps.csv")):
                break
            k += 1  # never overwrite an earlier recording
        self.path = self.folder / f"{name}{ext}"
        self._partial = self.path.with_name(f"{name}.partial{ext}")  # the container follows the extension
        self.timestamps = self.folder / f"{name}.timestamps.csv"
        self._q: queue.Queue[Any] = queue.Queue()
        self.written = 0
        self.error: str | None = None  # "recording stopped at frame N: disk full" after a write error
        self.errno = 0  # that error's errno (-1: unknown)
        self.kept: Path | None = None  # the video file left on disk
        self.masked = "none" if raw else "pending"
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add(self, image: np.ndarray, seq: int, captured_at: float) -> None:
        """Queue one grey uint8 frame (never blocks; dropped once recording has stopped on an error)."""
        if self.error is None:
            self._q.put((image, seq, captured_at))

    def close(self, timeout: float = 30.0) -> Path | None:
        """Write what is queued, close the file and rename it into place; the final path (None if
        nothing was recorded, or if a write error left a file that cannot be read: :attr:`kept` names it)."""
        self._q.put(None)
        self._thread.join(timeout)
        return self.path if self.path.exists() else None

    # ---- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        self._writer: Any = None
        try:
            self._record()
        except OSError as e:  # a full disk (or a lost one): stop recording, keep what was complete
            self.errno = e.errno if isinstance(e.errno, int) and e.errno > 0 else -1
            from pcbm.live.slot import record_stop_reason

            self.error = record_stop_reason(self.written, self.errno)
            log.error("%s (%s)", self.error, e)
            while self._q.get() is not None:  # capture goes on: drain what it queued meanwhile
                pass
        self._finish()

    def _record(self) -> None:
        import cv2

        sector: np.ndarray | None = None
        first: list[tuple[np.ndarray, int, float]] = []
        t0 = None
        with open(self.timestamps, "w", newline="", encoding="utf-8") as fh:
            rows = csv.writer(fh)
            rows.writerow(["frame", "seq", "captured_at", "t"])

            def write(image: np.ndarray, seq: int, at: float) -> None:
                nonlocal t0
                if self._writer is None:
                    h, w = image.shape
                    self._writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*FORMATS[self.fmt][0]),
                                                   self.fps, (w, h), False)
                    if not self._writer.isOpened():
                        raise OSError(f"cannot write {self.fmt} video to {self._partial}")
                    t0 = at
                if sector is not None and sector.shape == image.shape:
                    image = np.where(sector, image, 0).astype(np.uint8)
                self._writer.write(image)
                rows.writerow([self.written, seq, f"{at:.6f}", f"{at - (t0 or at):.6f}"])
                self.written += 1
                if self.written % 30 == 0:
                    fh.flush()

            while True:
                item = self._q.get()
                if item is None:
                    break
                if self.raw:
                    write(*item)
                    continue
                if sector is None and self.masked == "pending":
                    first.append(item)
                    if len(first) < _SECTOR_FRAMES:
                        continue
                    sector = self._sector(first)
                    for it in first:
                        write(*it)
                    first = []
                    continue
                write(*item)
            if first:  # stopped before the sector was estimated
                sector = self._sector(first)
                for it in first:
                    write(*it)

    def _finish(self) -> None:
        """Close the video; rename it into place when it is whole, or (after a write error) when it
        still reads back up to its last good frame; then the sidecar JSON."""
        if self._writer is not None:
            try:
                self._writer.release()
            except Exception as e:  # noqa: BLE001 - a failed close is reported like a failed write
                log.error("closing %s failed: %s", self._partial, e)
            if self.error is None or _readable(self._partial):
                os.replace(self._partial, self.path)
                self.kept = self.path
            else:
                self.kept = self._partial  # named .partial: it may not play
                self.error += f"; {self._partial.name} could not be closed and may not play"
        try:
            with atomic_open(self.folder / f"{self.path.stem}.json", "w", encoding="utf-8") as f:
                json.dump({"file": self.kept.name if self.kept else None, "format": self.fmt, "fps": self.fps,
                           "frames": self.written, "burned_in_masked": self.masked, "closed_at": time.time(),
                           "stopped": self.error}, f, indent=2)
        except OSError as e:
            log.error("cannot write %s.json: %s", self.path.stem, e)

    def _sector(self, frames: list[tuple[np.ndarray, int, float]]) -> np.ndarray | None:
        from pcbm.data.harmonise import estimate_sector

        shapes = {f[0].shape for f in frames}
        if len(shapes) != 1:
            self.masked = "none (frame size changed)"
            return None
        found = estimate_sector(np.max(np.stack([f[0] for f in frames]), axis=0))
        self.masked = "sector" if found is not None else "none (no scan sector found)"
        return found


def _readable(path: Path) -> bool:
    """Whether a video file opens and yields its first frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened() and cap.read()[0])
    finally:
        cap.release()
