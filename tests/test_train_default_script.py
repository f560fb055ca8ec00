"""scripts/train_default.sh: every step expands, and a re-run skips the finished ones."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_default.sh"


def _run(out: Path) -> list[str]:
    env = {**os.environ, "PCBM": "echo pcbm"}
    r = subprocess.run(["bash", str(SCRIPT), "HC18", str(out)], env=env, capture_output=True, text=True, check=True)
    return r.stdout.splitlines()


def test_steps_expand_and_resume(tmp_path) -> None:
    out = tmp_path / "default"
    first = [ln for ln in _run(out) if ln.startswith("pcbm ")]
    assert len(first) == 12  # 8 train stages + 4 decision refits
    assert all("--out" in ln for ln in first)
    assert all("hc18:HC18" in ln for ln in first)
    (out / "stage8" / ".step_done").unlink()
    (out / ".step_done").unlink()
    again = _run(out)
    assert [ln.split()[1] for ln in again if ln.startswith("pcbm ")] == ["train", "refit"]
    assert sum(ln.startswith("skip ") for ln in again) == 10
