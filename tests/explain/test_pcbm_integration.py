"""The explainers on a real (tiny) PCBM: exact contributions, channel and pixel attributions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.concepts import PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.explain import DecisionExplainer, PixelExplainer, PropertyExplainer
from pcbm.models import to_input


@pytest.fixture(scope="module")
def small_image_module():
    rng = np.random.default_rng(1)
    return (rng.random((90, 120)) * 200).astype(np.uint8)


def test_decision_contributions_reproduce_the_logits(tiny_model, small_image_module):
    x, _ = to_input([small_image_module, small_image_module[::-1].copy()], tiny_model.input_size)
    with torch.no_grad():
        out = tiny_model(x)
    a = DecisionExplainer(tiny_model).attribute(out)
    assert a.method == "exact" and a.targets == out.planes
    logits = out.plane_logits[torch.arange(2), out.plane_index].numpy()
    np.testing.assert_allclose(a.values.sum(1) + a.bias, logits, rtol=1e-5, atol=1e-5)


def test_property_and_pixel_attributions_on_pcbm(tiny_model, small_image_module):
    x, _ = to_input([small_image_module], tiny_model.input_size)
    x = x.contiguous()
    with torch.no_grad():
        out = tiny_model(x)
    pa = PropertyExplainer(tiny_model).attribute(out.masks, "csp_visible", image=x)
    assert pa.values.shape == (1, len(VISUAL_CONCEPT_NAMES)) and np.isfinite(pa.values).all()
    for method in ("saliency", "gradcam", "integrated_gradients"):
        kw = {"n_steps": 4} if method == "integrated_gradients" else {}
        for target in (None, "csp_visible", "visual:csp"):
            r = PixelExplainer(tiny_model, method, **kw).attribute(x, target=target)
            assert r.values.shape == (1, tiny_model.input_size, tiny_model.input_size)
            assert np.isfinite(r.values).all()
    assert not tiny_model.training
    assert PixelExplainer(tiny_model, "gradcam").layer in list(tiny_model.segmenter.encoder.modules())
    assert len(PROPERTY_CONCEPT_NAMES) == out.property_logits.shape[1]


@pytest.mark.realdata
def test_report_on_a_real_hc18_image(tiny_run, hc18_path, tmp_path):
    img = sorted((hc18_path / "images").glob("*.png"))[0]
    r = CliRunner().invoke(app, ["report", str(tiny_run), str(img), "--out", str(tmp_path), "--heatmap", "saliency"])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / f"{img.stem}.json").read_text())
    assert d["pixel_spacing_mm"] and "HC18" in d["pixel_spacing_source"]
    assert all(m["unit"] in ("mm", "deg") for m in d["measurements"].values())
