"""scripts/train_default.sh: every step expands, and a re-run skips the finished ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    (out / "final" / ".step_done").unlink()
    again = _run(out)
    assert [ln.split()[1] for ln in again if ln.startswith("pcbm ")] == ["train", "refit"]
    assert sum(ln.startswith("skip ") for ln in again) == 10


def test_an_interrupted_stage_is_resumed(tmp_path) -> None:
    out = tmp_path / "default"
    _run(out)
    (out / "stage2" / ".step_done").unlink()
    (out / "stage2").rmdir()
    (out / "stage2.partial").mkdir()  # what an interrupted `pcbm train --out stage2` leaves
    again = [ln for ln in _run(out) if ln.startswith("pcbm ")]
    assert again == [f"pcbm train --resume {out / 'stage2'}"]


def _hc18_like_folder(root: Path, n: int = 10) -> Path:
    """A small folder in HC18's shared layout: images, filled head masks, pixel size and HC."""
    from pcbm.concepts.measure import ellipse_perimeter
    from pcbm.data.io import write_png

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["filename,pixel_size_mm,head_circumference_mm"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:54, :80]
    for i in range(n):
        a, b = rng.uniform(18, 26), rng.uniform(12, 17)
        head = ((xx - 40) / a) ** 2 + ((yy - 27) / b) ** 2 <= 1
        img = rng.integers(10, 90, (54, 80)).astype(np.uint8)
        img[head] = 150
        write_png(root / "images" / f"{i:03d}_HC.png", img)
        write_png(root / "masks" / f"{i:03d}_HC_Mask.png", head.astype(np.uint8) * 255)
        hc = ellipse_perimeter(a, b) * 0.3
        rows.append(f"{i:03d}_HC.png,0.3,{hc:.2f}")
    (root / "pixel_size_and_hc.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_recipe_runs_end_to_end_when_shrunk(tmp_path) -> None:
    """Every step of the recipe really runs (tiny model, 2 steps each), chained by --init and refit,
    so a typo in a later stage does not wait for a lent GPU to show."""
    hc18 = _hc18_like_folder(tmp_path / "hc18")
    out = tmp_path / "default"
    shrunk = Path(__file__).with_name("_pcbm_shrunk.py")
    env = {**os.environ, "PCBM": f"{sys.executable} {shrunk}", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(["bash", str(SCRIPT), str(hc18), str(out)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("shrunk: ") == 12
    for stage in [f"stage{i}" for i in range(1, 9)]:
        conf = json.loads((out / stage / "config.json").read_text())
        assert conf["train"]["split_seed"] == 0 and conf["steps"] == 2, stage
    final = out / "final"
    assert json.loads((final / "decision_refit.json").read_text())["refitted_from"].endswith("stage8")
    assert (final / "model.pt").is_file() and (final / ".step_done").is_file()
    assert not list(out.glob("*.partial")), "a finished recipe leaves no staging folders"
