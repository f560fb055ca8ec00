"""Video sources: a capture device, a video file, a network stream, and the built-in phantom sweep.

A source spec is a string: ``camera:0`` (an OpenCV capture device, e.g. an HDMI-to-USB box),
``rtsp://…`` / ``http(s)://…`` (a stream), a video file path, or ``phantom-sweep`` with options
``phantom-sweep:fps=30,frames=240,seed=0,style=default,size=256,hold=0,loop=1`` (the sweep of
:func:`pcbm.data.phantom.sweep` played in real time, each frame with its ground truth; ``hold``
seconds of frozen screen at the end of each plane's dwell, as a sonographer freezes a standard
view).

:meth:`Source.frames` yields ``(image, truth)``: grey uint8 frames at the source's pace (a file and
the sweep are played at their frame rate). Device and stream frames are read as they arrive, never
buffered here; the capture process publishes each one to the latest-frame slot. A device or stream
that stops delivering raises :class:`SourceLost` and is reopened by the capture process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.errors import InputError


class SourceLost(RuntimeError):
    """The source stopped delivering frames (unplugged, stream down)."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "camera", "stream", "file", "phantom-sweep"
    target: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """A device or stream (reopened when lost) rather than a file or the sweep (which end)."""
        return self.kind in ("camera", "stream")

    def describe(self) -> str:
        if self.kind == "phantom-sweep":
            return "phantom-sweep" + (":" + ",".join(f"{k}={v}" for k, v in self.options.items()) if self.options else "")
        return f"{self.kind}:{self.target}"


_SWEEP_KEYS = {"fps": float, "frames": int, "seed": int, "style": str, "size": int, "hold": float, "loop": int}


def parse_source(spec: str) -> SourceSpec:
    """Parse a source spec (see the module docstring); a clear error for an unknown or bad one."""
    s = str(spec).strip()
    if not s:
        raise InputError("empty source; give camera:N, a video file, rtsp://… or phantom-sweep")
    if s == "phantom-sweep" or s.startswith("phantom-sweep:"):
        opts: dict[str, str] = {}
        rest = s[len("phantom-sweep:"):] if ":" in s else ""
        for part in filter(None, rest.split(",")):
            k, eq, v = part.partition("=")
            if not eq or k not in _SWEEP_KEYS:
                raise InputError(f"bad phantom-sweep option {part!r}; known: {', '.join(f'{k}=' for k in _SWEEP_KEYS)}")
            try:
                _SWEEP_KEYS[k](v)
            except ValueError:
                raise InputError(f"phantom-sweep option {k} must be a {_SWEEP_KEYS[k].__name__}, got {v!r}") from None
            opts[k] = v
        if float(opts.get("fps", 30)) <= 0 or int(opts.get("frames", 240)) < 1:
            raise InputError("phantom-sweep needs fps > 0 and frames ≥ 1")
        return SourceSpec("phantom-sweep", "", opts)
    if s.startswith("camera:"):
        idx = s[len("camera:"):]
        if not idx.isdigit():
            raise InputError(f"camera source must be camera:N (a device index), got {s!r}")
        return SourceSpec("camera", idx)
    if "://" in s:
        scheme = s.split("://", 1)[0].lower()
        if scheme not in ("rtsp", "rtsps", "http", "https", "udp", "tcp", "rtmp"):
            raise InputError(f"unknown stream scheme {scheme!r} in {s!r}")
        return SourceSpec("stream", s)
    p = Path(s)
    if not p.is_file():
        raise InputError(f"source {s!r} is not a file, camera:N, a stream URL or phantom-sweep")
    return SourceSpec("file", str(p))


def to_grey(frame: np.ndarray) -> np.ndarray:
    """A captured frame as grey uint8 (ultrasound is grey; a capture box delivers BGR)."""
    import cv2

    a = np.asarray(frame)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2GRAY if a.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


class Source:
    """A source opened from a :class:`SourceSpec` (see :func:`open_source`)."""

    fps: float = 30.0
    spec: SourceSpec

    def frames(self) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PhantomSweepSource(Source):
    """The phantom sweep, rendered once up front, played at ``fps`` (looping unless ``loop=0``)."""

    def __init__(self, spec: SourceSpec, progress: Any = None):
        from pcbm.data.phantom.sweep import iter_sweep

        o = spec.options
        self.spec, self.fps = spec, float(o.get("fps", 30))
        self.loop = int(o.get("loop", 1)) != 0
        hold = float(o.get("hold", 0))
        frames: list[tuple[np.ndarray, dict[str, Any]]] = []
        samples = list(iter_sweep(int(o.get("frames", 240)), int(o.get("seed", 0)), o.get("style", "default"),
                                  int(o.get("size", 256))))
        for i, s in enumerate(samples):
            truth = {"plane": s.plane, "standard": bool(s.standard), "target_plane": s.meta["target_plane"],
                     "phase": s.meta["phase"], "frame": s.meta["frame"], "pixel_spacing_mm": round(s.pixel_spacing_mm, 5),
                     "status": "standard" if s.standard else ("not_a_known_plane" if s.plane == "other"
                                                              else "close_to_standard"), "frozen": False}
            frames.append((s.image, truth))
            last_of_segment = i + 1 == len(samples) or samples[i + 1].meta["segment"] != s.meta["segment"]
            if hold > 0 and last_of_segment:
                frames += [(s.image, {**truth, "frozen": True})] * max(1, round(hold * self.fps))
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def frames(self) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
        period = 1.0 / self.fps
        t0 = time.perf_counter()
        k = 0
        while True:
            for image, truth in self._frames:
                delay = t0 + k * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                k += 1
                yield image, truth
            if not self.loop:
                return


class OpenCVSource(Source):
    """A capture device, stream or file through ``cv2.VideoCapture``. Files are paced at their frame
    rate; devices and streams deliver at their own."""

    def __init__(self, spec: SourceSpec):
        import cv2

        self.spec = spec
        target: Any = int(spec.target) if spec.kind == "camera" else spec.target
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            if spec.live:
                raise SourceLost(f"cannot open {spec.describe()}")
            raise InputError(f"cannot open the video file {spec.target} (not a video OpenCV can read)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if 1 <= fps <= 240 else 30.0

    def frames(self) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
        period, t0, k = 1.0 / self.fps, time.perf_counter(), 0
        failures = 0
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                if self.spec.kind == "file":
                    return
                failures += 1
                if failures >= 5:
                    raise SourceLost(f"{self.spec.describe()} stopped delivering frames")
                time.sleep(0.05)
                continue
            failures = 0
            if self.spec.kind == "file":
                delay = t0 + k * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                k += 1
            yield to_grey(frame), None

    def close(self) -> None:
        self._cap.release()


def check_source(spec: SourceSpec | str) -> SourceSpec:
    """Check, before a session starts, that a file or a capture device gives a frame (a text file, a
    video OpenCV cannot decode or a device that is not there: one line). Streams and the sweep are
    not opened here (a stream may come up later; it is reopened until it does).

    Raises:
        InputError: the file or the device gives no frame.
    """
    import os

    import cv2

    spec = parse_source(spec) if isinstance(spec, str) else spec
    if spec.kind not in ("file", "camera"):
        return spec
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own lines ("moov atom not found") off
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # no backend chatter around our one line
    try:
        try:
            src = OpenCVSource(spec)
        except SourceLost:
            raise InputError(f"{spec.describe()}: cannot open capture device {spec.target} (not connected, "
                             "or in use by another program)") from None
        try:
            ok, frame = src._cap.read()
        finally:
            src.close()
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not ok or frame is None:
        what = f"the video file {spec.target}" if spec.kind == "file" else spec.describe()
        raise InputError(f"{what} gives no frame (not a video OpenCV can decode, or an empty one)")
    return spec


def open_source(spec: SourceSpec | str) -> Source:
    """Open a source (raises :class:`SourceLost` for a device or stream that is not there now)."""
    spec = parse_source(spec) if isinstance(spec, str) else spec
    if spec.kind == "phantom-sweep":
        return PhantomSweepSource(spec)
    return OpenCVSource(spec)
