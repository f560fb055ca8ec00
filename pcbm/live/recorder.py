"""The recorder: every captured frame to a video file, with a per-frame timestamp table.

``mp4`` (MPEG-4 part 2, what OpenCV's bundled FFmpeg writes without extra codecs) or ``lossless``
(FFV1 in Matroska: the frames come back bit for bit). Burned-in text outside the scan sector is
masked by default, as the DICOM ETL does (:func:`pcbm.data.harmonise.estimate_sector` on the
brightest of the first frames: the sector, where speckle moves, is kept; names and dates drawn
around it go black); ``raw=True`` keeps the frames as captured.

Files appear whole or not at all: a segment is written as ``NAME.partial.mp4`` and renamed when closed
(a capture process that is killed leaves a ``.partial`` file, readable up to its last frame, and the
timestamps next to it). Writing runs on its own thread behind an unbounded queue, so a slow disk
never makes capture drop a frame; :attr:`written` counts what reached the file.

``timestamps.csv`` (per segment ``NAME.timestamps.csv``): ``frame`` (index in the file), ``seq`` (the
capture sequence number), ``captured_at`` (Unix seconds), ``t`` (seconds since the first frame).
"""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

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
        self.masked = "none" if raw else "pending"
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add(self, image: np.ndarray, seq: int, captured_at: float) -> None:
        """Queue one grey uint8 frame (never blocks)."""
        self._q.put((image, seq, captured_at))

    def close(self, timeout: float = 30.0) -> Path | None:
        """Write what is queued, close the file and rename it into place; the final path (None if
        nothing was recorded)."""
        self._q.put(None)
        self._thread.join(timeout)
        return self.path if self.path.exists() else None

    # ---- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        import cv2

        writer = None
        sector: np.ndarray | None = None
        first: list[tuple[np.ndarray, int, float]] = []
        t0 = None
        with open(self.timestamps, "w", newline="", encoding="utf-8") as fh:
            rows = csv.writer(fh)
            rows.writerow(["frame", "seq", "captured_at", "t"])

            def write(image: np.ndarray, seq: int, at: float) -> None:
                nonlocal writer, t0
                if writer is None:
                    h, w = image.shape
                    writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*FORMATS[self.fmt][0]),
                                             self.fps, (w, h), False)
                    if not writer.isOpened():
                        raise OSError(f"cannot write {self.fmt} video to {self._partial}")
                    t0 = at
                if sector is not None and sector.shape == image.shape:
                    image = np.where(sector, image, 0).astype(np.uint8)
                writer.write(image)
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
        if writer is not None:
            writer.release()
            os.replace(self._partial, self.path)
        (self.folder / f"{self.path.stem}.json").write_text(json.dumps(
            {"file": self.path.name, "format": self.fmt, "fps": self.fps, "frames": self.written,
             "burned_in_masked": self.masked, "closed_at": time.time()}, indent=2), encoding="utf-8")

    def _sector(self, frames: list[tuple[np.ndarray, int, float]]) -> np.ndarray | None:
        from pcbm.data.harmonise import estimate_sector

        shapes = {f[0].shape for f in frames}
        if len(shapes) != 1:
            self.masked = "none (frame size changed)"
            return None
        found = estimate_sector(np.max(np.stack([f[0] for f in frames]), axis=0))
        self.masked = "sector" if found is not None else "none (no scan sector found)"
        return found
