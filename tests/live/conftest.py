"""A stand-in for a started live session: the real hub over a slot holding one frame, no processes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pcbm.live.session import Hub
from pcbm.live.slot import FrameSlot


class PageSession:
    """Just enough of :class:`pcbm.live.session.LiveSession` for the web app: ``hub``, ``slot``, ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.slot = FrameSlot.create(max_pixels=64 * 64)
        self.slot.write(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), 1, time.time())
        self.hub = Hub(folder, slot=self.slot)

    def status(self) -> dict:
        return {"engine": self.hub.engine, **self.hub.stats.summary(), **self.slot.stats()}

    def write_summary(self, source_stats: dict | None = None) -> Path:
        path = self.folder / "summary.html"
        self.hub._write(path, "<html>summary</html>")
        return path

    def close(self) -> None:
        self.slot.close(unlink=True)


@pytest.fixture
def page_session(tmp_path):
    s = PageSession(tmp_path / "s")
    try:
        yield s
    finally:
        s.close()
