"""Model forward shapes, interventions, standardness rules, save/load, inference helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES, get_plane
from pcbm.data.preprocess import letterbox, letterbox_mask, unletterbox
from pcbm.models import (
    PCBM,
    Intervention,
    build_model,
    get_model_config,
    list_model_configs,
    load_model,
    predict_images,
    save_model,
)

V, P, K = len(VISUAL_CONCEPT_NAMES), len(PROPERTY_CONCEPT_NAMES), len(PLANE_NAMES)


@pytest.mark.parametrize("name", list_model_configs())
def test_forward_shapes(name: str) -> None:
    cfg = get_model_config(name)
    if cfg.input_size > 64:  # keep the big ones fast: same architecture at a small input
        cfg = get_model_config(name, input_size=64)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, cfg.input_size, cfg.input_size))
    assert out.plane_logits.shape == (2, K) and out.plane_probs.shape == (2, K)
    assert out.properties.shape == (2, P) and out.applicable.shape == (2, P)
    assert out.standard.shape == (2,) and len(out.status) == 2 and len(out.missing) == 2
    torch.testing.assert_close(out.plane_probs.sum(1), torch.ones(2))
    if model.family.has_concepts:
        assert out.masks.shape == (2, V, cfg.input_size, cfg.input_size)
        assert out.concept_inputs is not None and out.concept_inputs.shape == (2, P)


def test_unknown_config_suggests() -> None:
    with pytest.raises(KeyError, match="did you mean 'small'"):
        get_model_config("smal")
    with pytest.raises(ValueError, match="multiple of"):
        get_model_config("small", input_size=100)


def _tt_model() -> PCBM:
    """A tiny PCBM whose linear decision favours trans_thalamic strongly (hand-set weights)."""
    model = build_model("tiny").eval()
    with torch.no_grad():
        model.decision.linear.weight.zero_()
        model.decision.linear.bias.zero_()
        model.decision.linear.bias[PLANE_NAMES.index("trans_thalamic")] = 10.0
    return model


def _standard_tt() -> dict[str, float]:
    return {c.property: float(c.expected) for c in get_plane("trans_thalamic").criteria} | {"head_visible": 1.0}


def test_cerebellum_intervention_breaks_trans_thalamic() -> None:
    model = _tt_model()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        ok = model(x, Intervention(properties=_standard_tt()))
        bad = model(x, Intervention(properties={**_standard_tt(), "cerebellum_visible": 1.0}))
    assert ok.planes == ["trans_thalamic"] and bool(ok.standard[0]) and ok.status == ["standard"]
    assert ok.missing == [[]]
    assert not bool(bad.standard[0]) and bad.status == ["close_to_standard"]
    assert bad.missing == [["cerebellum_visible"]]


def test_property_intervention_changes_decision_exactly() -> None:
    model = build_model("tiny").eval()
    x = torch.rand(1, 1, 64, 64)
    i = PROPERTY_CONCEPT_NAMES.index("stomach_visible")
    with torch.no_grad():
        a = model(x, Intervention(properties={"stomach_visible": 0.0}))
        b = model(x, Intervention(properties={"stomach_visible": 1.0}))
    w = model.decision.linear.weight[:, i]
    torch.testing.assert_close(b.plane_logits - a.plane_logits, w.unsqueeze(0), atol=1e-5, rtol=1e-5)
    # contributions are exact: weight x concept input + bias = logit
    logits = a.concept_inputs @ model.decision.linear.weight.T + model.decision.linear.bias
    torch.testing.assert_close(logits, a.plane_logits)


def test_visual_intervention_recomputes_properties() -> None:
    model = build_model("tiny").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        base = model(x)
        erased = model(x, Intervention(visual={"kidney": 0.0}))
        painted = model(x, Intervention(visual={"kidney": torch.ones(64, 64)}))
    k = VISUAL_CONCEPT_NAMES.index("kidney")
    assert float(erased.masks[:, k].max()) == 0.0 and float(painted.masks[:, k].min()) == 1.0
    torch.testing.assert_close(erased.mask_logits, base.mask_logits)  # raw segmenter output untouched
    assert not torch.allclose(erased.property_logits, painted.property_logits)


def test_applicability_and_mm() -> None:
    model = build_model("tiny").eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        off = model(x, Intervention(properties={"femur_visible": 0.0}))
        on = model(x, Intervention(properties={"femur_visible": 1.0, "fl_mm": 50.0}), pixel_spacing_mm=0.2,
                   long_side=400)
        nospacing = model(x, Intervention(properties={"head_visible": 1.0}))
    fl = PROPERTY_CONCEPT_NAMES.index("fl_mm")
    ends = PROPERTY_CONCEPT_NAMES.index("femur_ends_visible")
    assert not bool(off.applicable[0, fl]) and not bool(off.applicable[0, ends]) and torch.isnan(off.properties[0, fl])
    assert bool(on.applicable[0, fl]) and abs(float(on.properties[0, fl]) - 50.0) < 1e-3
    assert torch.isnan(nospacing.properties[0, PROPERTY_CONCEPT_NAMES.index("hc_mm")])
    with pytest.raises(ValueError, match="pixel_spacing_mm"):
        model(x, Intervention(properties={"fl_mm": 50.0}))
    with pytest.raises(KeyError, match="did you mean"):
        model(x, Intervention(properties={"cerebelum_visible": 1.0}))


def test_save_load_roundtrip(tmp_path) -> None:
    model = build_model("tiny").eval()
    save_model(model, tmp_path)
    loaded, info = load_model(tmp_path)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).plane_logits, loaded(x).plane_logits)
    assert info["run_dir"] == str(tmp_path)
    with pytest.raises(ValueError, match="no model in"):
        load_model(tmp_path / "nope")


def test_letterbox_roundtrip() -> None:
    img = np.zeros((54, 80), np.uint8)
    img[10:40, 20:60] = 200
    x, box = letterbox(img, 64)
    assert x.shape == (64, 64) and x.max() <= 1.0 and box.scale == 0.8
    m = letterbox_mask(img > 0, box)
    back = unletterbox(m, box) > 0.5
    assert back.shape == img.shape and ((back == (img > 0)).mean() > 0.97)


def test_predict_images_json_ready() -> None:
    model = build_model("tiny").eval()
    imgs = [np.zeros((60, 80), np.uint8), np.full((100, 50), 90, np.uint8)]
    res = predict_images(model, imgs, pixel_spacing_mm=[0.2, None], names=["a", "b"])
    assert [r["image"] for r in res] == ["a", "b"]
    for r in res:
        assert set(r) == {"image", "plane", "plane_probs", "status", "standard", "properties", "measurements",
                          "missing_criteria", "status_reason", "reliability", "model"}
        assert r["model"]["name"] == "tiny" and r["model"]["sha256"] is None  # built in memory: no weights file
        assert r["status_reason"] is None and r["reliability"] is None  # no reliability file: nothing flagged
        assert r["plane"] in PLANE_NAMES and r["status"] in ("standard", "close_to_standard", "not_a_known_plane")
        assert set(r["properties"]) == set(PROPERTY_CONCEPT_NAMES)


@pytest.mark.slow
def test_default_model_loads() -> None:
    model, info = load_model("default")
    assert model.input_size == 256 and model.family.has_concepts


def test_instance_input_norm_makes_the_segmenter_gain_invariant() -> None:
    from pcbm.models.config import ModelConfig

    x = torch.rand(2, 1, 64, 64)
    model = build_model("tiny").eval()
    assert model.config.input_norm == "instance"
    with torch.no_grad():
        bright, dark = model(x).mask_logits, model(0.2 * x).mask_logits
    assert torch.allclose(bright, dark, atol=1e-4)
    plain = build_model(get_model_config("tiny", input_norm="none")).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x).mask_logits, plain(0.2 * x).mask_logits, atol=1e-4)
    # a run directory written before the option existed loads as it was trained: no normalisation
    old = get_model_config("tiny").to_dict()
    del old["input_norm"]
    assert ModelConfig.from_dict(old).input_norm == "none"
    with pytest.raises(ValueError, match="input_norm"):
        get_model_config("tiny", input_norm="percentile")


@pytest.mark.parametrize("k,padding", [(3, None), (9, None), (5, 0)])
def test_binary_dilate_is_the_max_pool_on_binary_maps(k: int, padding: int | None) -> None:
    import torch.nn.functional as F

    from pcbm.models.property_head import binary_dilate

    g = torch.Generator().manual_seed(k)
    x = (torch.rand(2, 1, 40, 33, generator=g) > 0.8).float()
    p = k // 2 if padding is None else padding
    assert torch.equal(binary_dilate(x, k, padding), F.max_pool2d(x, k, stride=1, padding=p))


def test_property_head_reads_channels_last_masks_like_contiguous_ones() -> None:
    from pcbm.models.property_head import PropertyHead

    head = PropertyHead(cnn_channels=(8,), cnn_input=16, hidden=16).eval()
    masks, image = torch.rand(2, 15, 32, 32), torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a = head(masks, image)
        b = head(masks.contiguous(memory_format=torch.channels_last), image)
    assert torch.allclose(a, b, atol=1e-5)
