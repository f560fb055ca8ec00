"""CLI: pcbm train / eval / predict on a tiny phantom."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pcbm.models import build_model, save_model


def _pcbm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcbm", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    save_model(build_model("tiny").eval(), run)
    return run


@pytest.mark.slow
def test_cli_train(tmp_path) -> None:
    r = _pcbm("train", "--data", "phantom:n=16,size=64", "--model", "tiny", "--max-steps", "2", "--batch-size", "4",
              "--workers", "0", "--quiet", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "config.json").is_file()


def test_cli_eval_json(tiny_run, tmp_path) -> None:
    out = tmp_path / "m.json"
    r = _pcbm("eval", str(tiny_run), "--data", "phantom:n=4,size=64", "--json", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    for key in ("plane_macro_f1", "plane_balanced_accuracy", "standard_accuracy", "property_accuracy", "dice"):
        assert key in m
    assert m["hc_mae_mm"] is not None  # the phantom has HC for its head planes
    assert isinstance(m["dice"], dict)


def test_cli_predict_bad_image_among_good(tiny_run, tmp_path) -> None:
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.random.default_rng(0).integers(0, 255, (60, 90), dtype=np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    r = _pcbm("predict", str(tiny_run), str(good), str(bad), str(good), "--pixel-spacing", "0.2")
    assert r.returncode == 1
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 2 and all(x["image"] == str(good) for x in lines)
    assert {"plane", "plane_probs", "status", "standard", "properties", "measurements", "missing_criteria"} <= set(lines[0])
    assert "bad.png" in r.stderr


def test_cli_eval_missing_run(tmp_path) -> None:
    r = _pcbm("eval", str(tmp_path / "nope"), "--data", "phantom:n=2,size=64")
    assert r.returncode == 2 and "no model in" in r.stderr
