"""The rolling window of recent predictions, shared by every worker of one server.

Each worker process appends fixed-size records (time, plane, status, property values as the
reference holds them) to its own file ``window-<pid>.f64`` in the server's state folder; a reader
(``/metrics``, ``/v1/monitor/window``, the periodic dump) merges all workers' files and keeps the
newest ``size`` records. A worker's file is compacted to its newest ``size`` records (written
beside it, renamed into place) once it holds :data:`COMPACT_FACTOR` times that. Nothing of an
image is kept: concept values and the decision only.

Example:
    >>> import tempfile, numpy as np
    >>> w = WindowStore(tempfile.mkdtemp(), size=3, n_values=2)
    >>> for t in range(5): w.add(float(t), plane=t % 2, status=0, values=np.array([t / 10, np.nan]))
    >>> w.rows()[:, 0].tolist()
    [2.0, 3.0, 4.0]
"""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
from pcbm.serve.drift import STATUSES

COMPACT_FACTOR = 4
WINDOW_FORMAT = 1


class WindowStore:
    """Per-worker append-only record files in ``folder``, read together as one window."""

    def __init__(self, folder: str | os.PathLike[str], size: int = 1000, n_values: int = len(PROPERTY_CONCEPT_NAMES)):
        if size < 1:
            raise ValueError(f"window size must be at least 1, got {size}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.size = int(size)
        self.width = 3 + int(n_values)
        self._lock = threading.Lock()
        self._written = 0

    @property
    def path(self) -> Path:
        return self.folder / f"window-{os.getpid()}.f64"  # the pid at call time: a forked worker has its own

    def add(self, t: float, plane: int, status: int, values: np.ndarray) -> None:
        """Append one prediction's record."""
        rec = np.concatenate([[t, plane, status], np.asarray(values, np.float64)]).astype("<f8")
        if rec.size != self.width:
            raise ValueError(f"a window record has {self.width - 3} values, got {rec.size - 3}")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, rec.tobytes())
            finally:
                os.close(fd)
            self._written += 1
            if self._written >= (COMPACT_FACTOR - 1) * self.size:
                self._compact()

    def _compact(self) -> None:
        own = self._read(self.path)[-self.size:]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(own.astype("<f8").tobytes())
        os.replace(tmp, self.path)
        self._written = 0

    def _read(self, path: Path) -> np.ndarray:
        try:
            raw = path.read_bytes()
        except OSError:
            return np.empty((0, self.width))
        n = len(raw) // (8 * self.width)  # a record being appended right now is left out
        return np.frombuffer(raw[: n * 8 * self.width], "<f8").reshape(n, self.width)

    def rows(self) -> np.ndarray:
        """The newest ``size`` records of all workers, oldest first: (N, 3 + P)."""
        parts = [self._read(p) for p in sorted(self.folder.glob("window-*.f64"))]
        allrows = np.concatenate(parts) if parts else np.empty((0, self.width))
        if not len(allrows):
            return allrows
        allrows = allrows[np.argsort(allrows[:, 0], kind="stable")]
        return allrows[-self.size:]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(times, plane indices, status indices, values (N, P)) of the window."""
        r = self.rows()
        return r[:, 0], r[:, 1].astype(np.int64), r[:, 2].astype(np.int64), r[:, 3:]

    def to_json(self, reference: dict[str, Any] | None, model: dict[str, Any] | None) -> dict[str, Any]:
        """The window as a JSON document ``pcbm monitor`` reads (values rounded to 5 decimals, null = NaN)."""
        times, planes, statuses, values = self.arrays()
        vals = {name: [None if not np.isfinite(v) else round(float(v), 5) for v in values[:, i]]
                for i, name in enumerate(PROPERTY_CONCEPT_NAMES)}
        return {
            "format": WINDOW_FORMAT, "kind": "pcbm serve window",
            "saved": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "model": model, "size": self.size, "n": int(len(times)),
            "times": [round(float(t), 3) for t in times],
            "planes": [PLANE_NAMES[i] for i in planes], "statuses": [STATUSES[i] for i in statuses],
            "values": vals, "reference": reference,
        }


def window_arrays(doc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(plane indices, values (N, P)) of a saved window document (:meth:`WindowStore.to_json`)."""
    from pcbm.errors import InputError

    try:
        planes = np.array([PLANE_NAMES.index(p) for p in doc["planes"]], np.int64)
        cols = [[np.nan if v is None else float(v) for v in doc["values"][name]] for name in PROPERTY_CONCEPT_NAMES]
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"not a pcbm serve window (missing or bad field: {e})") from None
    values = np.array(cols, np.float64).T if cols and len(cols[0]) else np.empty((0, len(PROPERTY_CONCEPT_NAMES)))
    if len(values) != len(planes):
        raise InputError(f"a window with {len(planes)} planes but {len(values)} value rows")
    return planes, values
