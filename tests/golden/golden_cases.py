"""The golden set: which images, how their predictions are summarised, and the tolerances.

Shared by ``make_golden.py`` (which writes ``golden.json``) and ``test_golden.py`` (which checks the
default model still gives those answers, on the torch path and, slow, through an exported package).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.json"
HC18 = Path(os.environ.get("PCBM_HC18", HERE.parents[2] / "shared" / "data" / "hc18"))
PHANTOM = "phantom:n=8,seed=2026"  # one scene per plane, in PLANE_NAMES order
HC18_FILES = ("013_HC.png", "207_HC.png", "409_HC.png", "720_HC.png")  # spread over the gestational ages

#: what may move without it being "a change of output" (float differences between CPUs, thread
#: counts, onnxruntime vs torch kernels); plane and status must be equal
PROB_TOL = 0.02  # absolute, per plane probability
HC_TOL_MM, HC_TOL_REL = 1.0, 0.01  # HC: within max(1 mm, 1 %)


def cases(include_hc18: bool = True) -> list[tuple[str, np.ndarray, float | None]]:
    """(name, image, pixel spacing in mm) of every golden image (HC18 only where the data is)."""
    from pcbm.data import open_dataset
    from pcbm.data.io import read_input_image

    out = [(f"{PHANTOM}#{i}", s.image, s.pixel_spacing_mm) for i, s in enumerate(open_dataset(PHANTOM))]
    if include_hc18 and (HC18 / "pixel_size_and_hc.csv").is_file():
        for name in HC18_FILES:
            loaded = read_input_image(HC18 / "images" / name)  # spacing from the dataset's CSV
            out.append((f"hc18:{name}", loaded.image, loaded.pixel_spacing_mm))
    return out


def summary(pred: Any) -> dict[str, Any]:
    """What the golden set keeps of a Prediction: plane, status, probabilities (3 decimals), HC (0.1 mm)."""
    hc = (pred.measurements.get("hc") or {}).get("measured")
    return {"plane": pred.plane, "status": pred.status,
            "plane_probs": {k: round(float(v), 3) for k, v in pred.plane_probs.items()},
            "hc_mm": None if hc is None else round(float(hc), 1)}


def differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Where ``got`` is outside the tolerances of ``want`` (empty when it is the same output)."""
    out = []
    for key in ("plane", "status"):
        if want[key] != got[key]:
            out.append(f"{key} {want[key]} -> {got[key]}")
    for k, v in want["plane_probs"].items():
        if abs(got["plane_probs"][k] - v) > PROB_TOL:
            out.append(f"p({k}) {v} -> {got['plane_probs'][k]}")
    a, b = want["hc_mm"], got["hc_mm"]
    if (a is None) != (b is None) or (a is not None and abs(a - b) > max(HC_TOL_MM, HC_TOL_REL * a)):
        out.append(f"hc_mm {a} -> {b}")
    return out
