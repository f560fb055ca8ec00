"""The latest-frame slot: one frame in shared memory, overwritten by the capture process, read by
whoever wants the newest (the engine, the page). No queue: a reader that is slow skips frames, and
the frames it skipped are counted from the gap in sequence numbers.

A seqlock makes it safe without a lock a killed reader could leave held: the single writer bumps
a counter to odd, writes, bumps it to even; a reader copies and retries when the counter was odd or
moved meanwhile. The header also carries the capture time, the pixel spacing, whether the screen
is frozen, the source's state and counters, and a small JSON (the phantom sweep's ground truth).

Example:
    >>> import numpy as np
    >>> slot = FrameSlot.create(max_pixels=64 * 64)
    >>> slot.write(np.full((8, 8), 7, np.uint8), seq=1, captured_at=0.5)
    >>> f = slot.read(after=0)
    >>> f.seq, f.image.shape, int(f.image[0, 0])
    (1, (8, 8), 7)
    >>> slot.read(after=1) is None
    True
    >>> slot.close(unlink=True)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

_HEADER = 4096  # bytes before the pixels
_JSON_AT, _JSON_MAX = 256, _HEADER - 256
# int64 fields
_COUNTER, _SEQ, _H, _W, _FROZEN_SINCE, _CAPTURED, _STATE, _CLOSED, _RECORDED, _SOURCE_RESTARTS, _RECORD_ERRNO = range(11)
# float64 fields (after the 16 int64 fields)
_T_CAPTURE, _SPACING, _FPS, _T_STATE = range(16, 20)
STATES = ("starting", "live", "reopening", "ended", "failed")


def record_stop_reason(frames: int, err: int) -> str:
    """"recording stopped at frame N: disk full" (or the OS's words for ``err``; -1: an unknown write error)."""
    import errno
    import os

    why = "disk full" if err == errno.ENOSPC else os.strerror(err) if err > 0 else "write error"
    return f"recording stopped at frame {frames}: {why}"


@dataclass
class Frame:
    """One frame as read from the slot."""

    seq: int
    image: np.ndarray
    captured_at: float
    pixel_spacing_mm: float | None
    frozen_since: int  # seq at which the screen froze, 0 when live
    truth: dict[str, Any] | None


class FrameSlot:
    """A shared-memory latest-frame slot (see the module docstring).

    Create it in the supervising process (:meth:`create`), hand :attr:`name` to the others, which
    :meth:`attach`. Only one process writes frames.
    """

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self._shm, self.owner = shm, owner
        self._i = np.ndarray((16,), np.int64, shm.buf, 0)
        self._f = np.ndarray((16,), np.float64, shm.buf, 128)
        self.max_pixels = shm.size - _HEADER

    @classmethod
    def create(cls, max_pixels: int = 1920 * 1080) -> FrameSlot:
        shm = shared_memory.SharedMemory(create=True, size=_HEADER + int(max_pixels))
        np.ndarray((shm.size,), np.uint8, shm.buf)[:_HEADER] = 0
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> FrameSlot:
        # spawned children share the parent's resource tracker: the segment is registered once and
        # unlinked by its creator (close(unlink=True)), or by the tracker if the creator dies
        shm = shared_memory.SharedMemory(name=name)
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    # ---- writer ---------------------------------------------------------------------------------
    def write(self, image: np.ndarray, seq: int, captured_at: float, pixel_spacing_mm: float | None = None,
              frozen_since: int = 0, truth: dict[str, Any] | None = None) -> None:
        h, w = image.shape[:2]
        if h * w > self.max_pixels:
            raise ValueError(f"frame {w}x{h} is larger than the slot ({self.max_pixels} pixels)")
        blob = json.dumps(truth).encode() if truth is not None else b""
        if len(blob) > _JSON_MAX - 8:
            blob = b""
        self._i[_COUNTER] += 1  # odd: writing
        np.ndarray((h, w), np.uint8, self._shm.buf, _HEADER)[:] = image
        self._i[_SEQ], self._i[_H], self._i[_W], self._i[_FROZEN_SINCE] = seq, h, w, frozen_since
        self._f[_T_CAPTURE - 16] = captured_at
        self._f[_SPACING - 16] = math.nan if pixel_spacing_mm is None else float(pixel_spacing_mm)
        raw = np.ndarray((_JSON_MAX,), np.uint8, self._shm.buf, _JSON_AT)
        raw[:8] = np.frombuffer(np.int64(len(blob)).tobytes(), np.uint8)
        if blob:
            raw[8:8 + len(blob)] = np.frombuffer(blob, np.uint8)
        self._i[_COUNTER] += 1  # even: done

    def set_state(self, state: str, fps: float | None = None) -> None:
        self._i[_STATE] = STATES.index(state)
        self._f[_T_STATE - 16] = time.time()
        if fps is not None:
            self._f[_FPS - 16] = float(fps)

    def count(self, captured: int | None = None, recorded: int | None = None, source_restarts: int | None = None,
              record_errno: int | None = None) -> None:
        """Update the counters given; ``record_errno``: the recorder stopped on this OSError errno (-1: none known)."""
        if record_errno is not None:
            self._i[_RECORD_ERRNO] = record_errno
        if captured is not None:
            self._i[_CAPTURED] = captured
        if recorded is not None:
            self._i[_RECORDED] = recorded
        if source_restarts is not None:
            self._i[_SOURCE_RESTARTS] = source_restarts

    # ---- readers --------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        return int(self._i[_SEQ])

    def stats(self) -> dict[str, Any]:
        return {"source_state": STATES[int(self._i[_STATE])], "frames_captured": int(self._i[_CAPTURED]),
                "frames_recorded": int(self._i[_RECORDED]), "source_reopened": int(self._i[_SOURCE_RESTARTS]),
                "source_fps": round(float(self._f[_FPS - 16]), 2), "last_seq": self.seq,
                **({"recording_stopped": record_stop_reason(int(self._i[_RECORDED]), int(self._i[_RECORD_ERRNO]))}
                   if self._i[_RECORD_ERRNO] else {})}

    def read(self, after: int = 0, tries: int = 50) -> Frame | None:
        """The newest frame if its sequence number is above ``after``, else None."""
        for _ in range(tries):
            c0 = int(self._i[_COUNTER])
            if c0 % 2:
                time.sleep(0.0002)
                continue
            seq = int(self._i[_SEQ])
            if seq <= after:
                return None
            h, w = int(self._i[_H]), int(self._i[_W])
            image = np.ndarray((h, w), np.uint8, self._shm.buf, _HEADER).copy()
            t, sp = float(self._f[_T_CAPTURE - 16]), float(self._f[_SPACING - 16])
            frozen = int(self._i[_FROZEN_SINCE])
            raw = np.ndarray((_JSON_MAX,), np.uint8, self._shm.buf, _JSON_AT)
            n = int(np.frombuffer(raw[:8].tobytes(), np.int64)[0])
            blob = raw[8:8 + n].tobytes() if 0 < n <= _JSON_MAX - 8 else b""
            if int(self._i[_COUNTER]) != c0:
                continue
            truth = json.loads(blob) if blob else None
            return Frame(seq, image, t, None if math.isnan(sp) else sp, frozen, truth)
        return None

    def close(self, unlink: bool = False) -> None:
        del self._i, self._f
        self._shm.close()
        if unlink:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
