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
    assert len(first) == 16  # 8 train stages + 4 decision refits, the real-scans stages (3) and their calibration
    assert all("--out" in ln for ln in first[:15]) and first[15].startswith(f"pcbm calibrate {out / 'real_keep2'} ")
    assert f"--init {out / 'real'} " in first[13] and f"--init {out / 'real_keep1'} " in first[14]
    assert all("hc18:HC18" in ln for ln in first)
    assert "fetal_planes_db:./fpdb_subset?val_fraction=0.3@1" in first[12] and "african:./african?split=train" in first[15]
    (out / "stage8" / ".step_done").unlink()
    (out / "final" / ".step_done").unlink()
    (out / "real_keep2" / "reliability.json").write_text("{}")  # what a finished calibration leaves
    again = _run(out)
    assert [ln.split()[1] for ln in again if ln.startswith("pcbm ")] == ["train", "refit"]
    assert sum(ln.startswith("skip ") for ln in again) == 13


def test_an_interrupted_stage_is_resumed(tmp_path) -> None:
    out = tmp_path / "default"
    _run(out)
    (out / "stage2" / ".step_done").unlink()
    (out / "stage2").rmdir()
    (out / "stage2.partial").mkdir()  # what an interrupted `pcbm train --out stage2` leaves
    (out / "real_keep2" / "reliability.json").write_text("{}")
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


def _real_plane_sets(root: Path) -> None:
    """Tiny copies of the shared real sets' layouts beside the HC18 folder: Alzubaidi's brains (colour
    masks), the FETAL_PLANES_DB subset (its CSV and Images/) and the African set (its CSV, a folder per centre)."""
    import cv2

    rng = np.random.default_rng(1)
    (root / "alzubaidi_brain" / "images").mkdir(parents=True)
    (root / "alzubaidi_brain" / "masks").mkdir()
    for i in range(4):
        cv2.imwrite(str(root / "alzubaidi_brain" / "images" / f"Patient{i:05d}_Plane3_1_of_1.png"),
                    rng.integers(0, 255, (60, 80), dtype=np.uint8))
        mask = np.zeros((60, 80, 3), np.uint8)
        cv2.ellipse(mask, (40, 30), (25, 18), 0, 0, 360, (0, 0, 128), -1)  # BGR of the red brain colour
        cv2.imwrite(str(root / "alzubaidi_brain" / "masks" / f"Patient{i:05d}_Plane3_1_of_1.png"), mask)
    fp = root / "fpdb_subset"
    (fp / "Images").mkdir(parents=True)
    rows = ["Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"]
    classes = [("Other", "Not A Brain", 1), ("Fetal abdomen", "Not A Brain", 2), ("Fetal brain", "Trans-thalamic", 3),
               ("Maternal cervix", "Not A Brain", 4), ("Fetal femur", "Not A Brain", 5), ("Fetal thorax", "Not A Brain", 6)]
    for patient in range(1, 7):
        for plane, brain, k in classes:
            name = f"Patient{patient:05d}_Plane{k}_1_of_1"
            cv2.imwrite(str(fp / "Images" / f"{name}.png"), rng.integers(0, 255, (50, 70), dtype=np.uint8))
            rows.append(f"{name};{patient};{plane};{brain};Op. 1;Aloka;1")
    (fp / "FETAL_PLANES_DB_data.csv").write_text("\n".join(rows) + "\n")
    af = root / "african"
    rows = ["Patient_num,Plane,Train,Center,Image_name"]
    for centre, code in (("Algeria", "DZA"), ("Ghana", "GHA")):
        (af / centre).mkdir(parents=True)
        for patient in range(1, 5):
            for k, plane in enumerate(("Fetal abdomen", "Fetal brain", "Fetal femur")):
                name = f"patient{patient:03d}_{code}_plane{k}"
                cv2.imwrite(str(af / centre / f"{name}.png"), rng.integers(0, 255, (50, 70), dtype=np.uint8))
                rows.append(f"{patient},{plane},1,{centre},{name}")
    (af / "African_planes_database.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_recipe_runs_end_to_end_when_shrunk(tmp_path) -> None:
    """Every step of the recipe really runs (tiny model, 2 steps each), chained by --init and refit,
    so a typo in a later stage does not wait for a lent GPU to show."""
    hc18 = _hc18_like_folder(tmp_path / "hc18")
    _real_plane_sets(tmp_path)
    out = tmp_path / "default"
    shrunk = Path(__file__).with_name("_pcbm_shrunk.py")
    env = {**os.environ, "PCBM": f"{sys.executable} {shrunk}", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(["bash", str(SCRIPT), str(hc18), str(out)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("shrunk: ") == 16
    for stage in [f"stage{i}" for i in range(1, 9)]:
        conf = json.loads((out / stage / "config.json").read_text())
        assert conf["train"]["split_seed"] == 0 and conf["steps"] == 2, stage
    final = out / "final"
    assert json.loads((final / "decision_refit.json").read_text())["refitted_from"].endswith("stage8")
    assert (final / "model.pt").is_file() and (final / ".step_done").is_file()
    real = out / "real"
    conf = json.loads((real / "config.json").read_text())
    assert any(d.startswith("african:") for d in conf["train"]["data"]) and conf["decision_refit"]["n"] > 0
    keep = out / "real_keep2"
    assert json.loads((keep / "config.json").read_text())["train"]["init"].endswith("real_keep1")
    assert json.loads((keep / "reliability.json").read_text())["temperature"] > 0
    assert not list(out.glob("*.partial")), "a finished recipe leaves no staging folders"
