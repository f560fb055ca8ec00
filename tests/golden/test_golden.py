"""The golden set: the default model's answers on fixed phantom scenes and HC18 images
(``golden.json``) — plane and status equal, probabilities within 0.02, HC within max(1 mm, 1 %).
A failure here is a change of output: if it is intended, regenerate with ``make_golden.py`` and
say so in the commit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_cases import GOLDEN, HC18, cases, differences, summary  # noqa: E402

WANT = json.loads(GOLDEN.read_text())


def _check(predict_all) -> None:
    rows = cases()
    have_hc18 = any(n.startswith("hc18:") for n, _, _ in rows)
    preds = predict_all(rows)
    failures = {}
    for (name, _, _), p in zip(rows, preds, strict=True):
        diff = differences(WANT["cases"][name], summary(p))
        if diff:
            failures[name] = diff
    assert not failures, f"the default model's output changed: {failures} (intended? tests/golden/make_golden.py)"
    assert len(rows) == len(WANT["cases"]) or not have_hc18


def test_golden_set_covers_every_plane_and_hc18() -> None:
    names = list(WANT["cases"])
    assert sum(n.startswith("phantom:") for n in names) == 8 and sum(n.startswith("hc18:") for n in names) == 4
    assert {c["plane"] for c in WANT["cases"].values()} >= {"trans_thalamic", "abdomen", "femur", "other"}
    assert all(c["hc_mm"] for n, c in WANT["cases"].items() if n.startswith("hc18:"))


def test_default_model_gives_the_golden_answers() -> None:
    from pcbm.models import load_model, predict

    model, _ = load_model("default")
    if not (HC18 / "pixel_size_and_hc.csv").is_file():
        pytest.skip(f"HC18 not found at {HC18}")  # the phantom half alone would hide half the set
    _check(lambda rows: predict(model, [im for _, im, _ in rows], [sp for _, _, sp in rows]))


def test_differences_sees_a_change() -> None:
    want = next(iter(WANT["cases"].values()))
    moved = json.loads(json.dumps(want))
    assert differences(want, moved) == []
    k = next(iter(moved["plane_probs"]))
    moved["plane_probs"][k] += 0.05
    moved["status"] = "standard" if want["status"] != "standard" else "close_to_standard"
    assert len(differences(want, moved)) == 2


@pytest.mark.slow
def test_exported_default_gives_the_golden_answers(tmp_path) -> None:
    """Export parity on the golden set: the default model as a package (onnxruntime, ~2 min to export)."""
    if not (HC18 / "pixel_size_and_hc.csv").is_file():
        pytest.skip(f"HC18 not found at {HC18}")
    from pcbm.export.package import export_package
    from pcbm.runtime import Engine

    engine = Engine(export_package("default", tmp_path / "pkg", reference_limit=8))
    _check(lambda rows: [engine.predict(im, sp) for _, im, sp in rows])
