"""Explainers on toy models with hand-set weights: the attributions have known values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES, get_concept, get_plane
from pcbm.explain import (
    ConceptAttribution,
    DecisionExplainer,
    PixelAttribution,
    PixelExplainer,
    PropertyExplainer,
    resolve_target,
)

P, K, V = len(PROPERTY_CONCEPT_NAMES), len(PLANE_NAMES), len(VISUAL_CONCEPT_NAMES)


class LinearDecision(nn.Module):
    """The linear decision layer's shape: a per-feature scaling, then ``linear``."""

    def __init__(self, scale: torch.Tensor | None = None):
        super().__init__()
        self.linear = nn.Linear(P, K)
        self.register_buffer("scale", torch.ones(P) if scale is None else scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.scale)


def _hand_set_linear(scale=None) -> LinearDecision:
    d = LinearDecision(scale)
    with torch.no_grad():
        d.linear.weight.zero_()
        d.linear.bias.fill_(0.25)
        tt = get_plane("trans_thalamic").index
        d.linear.weight[tt, get_concept("csp_visible").index] = 2.0
        d.linear.weight[tt, get_concept("cerebellum_visible").index] = -3.0
    return d


def test_import_does_not_load_captum():
    code = "import sys, pcbm.explain; print('captum' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_resolve_target():
    assert resolve_target("trans_thalamic") == ("plane", 0)
    assert resolve_target("femur") == ("plane", get_plane("femur").index)
    assert resolve_target("visual:femur") == ("visual", get_concept("femur").index)
    with pytest.raises(KeyError, match="did you mean 'cerebellum_visible'"):
        resolve_target("cerebelum_visible")


def test_linear_decision_exact_contributions():
    d = _hand_set_linear(scale=torch.full((P,), 0.5))
    x = torch.zeros(2, P)
    x[:, get_concept("csp_visible").index] = torch.tensor([1.0, 0.4])
    x[:, get_concept("cerebellum_visible").index] = torch.tensor([0.0, 1.0])
    a = DecisionExplainer(d).attribute(x, target="trans_thalamic")
    assert isinstance(a, ConceptAttribution) and a.method == "exact"
    assert a.as_dict(0)["csp_visible"] == pytest.approx(2.0 * 0.5 * 1.0)
    assert a.as_dict(1)["cerebellum_visible"] == pytest.approx(-3.0 * 0.5 * 1.0)
    assert a.top(1, item=1)[0][0] == "cerebellum_visible"
    # contributions + bias reproduce the logit exactly
    logit = d(x)[:, 0]
    assert np.allclose(a.values.sum(1) + a.bias, logit.detach().numpy(), atol=1e-6)
    assert a.to_dict()["targets"] == ["trans_thalamic", "trans_thalamic"]


def test_ig_on_linear_matches_exact_and_default_target_is_predicted():
    d = _hand_set_linear()
    x = torch.zeros(1, P)
    x[0, get_concept("csp_visible").index] = 1.0
    exact = DecisionExplainer(d).attribute(x)
    ig = DecisionExplainer(d, method="integrated_gradients").attribute(x)
    assert exact.targets == ["trans_thalamic"] == ig.targets
    np.testing.assert_allclose(ig.values, exact.values, atol=1e-5)


def test_ig_on_mlp_completeness():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(P, 16), nn.Tanh(), nn.Linear(16, K))
    x = torch.rand(3, P)
    with pytest.raises(ValueError, match="linear"):
        DecisionExplainer(mlp, method="exact")
    a = DecisionExplainer(mlp).attribute(x, target=["femur", "abdomen", 0])
    assert a.method == "integrated_gradients"
    idx = [get_plane("femur").index, get_plane("abdomen").index, 0]
    gap = (mlp(x) - mlp(torch.zeros_like(x)))[range(3), idx].detach().numpy()
    np.testing.assert_allclose(a.values.sum(1), gap, atol=1e-3)


class ToyPropertyHead(nn.Module):
    """csp_visible logit = 0.01·Σ csp + 0.02·Σ head; everything else 0."""

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(masks.shape[0], P)
        s = masks.sum(dim=(2, 3))  # (B, V)
        csp = 0.01 * s[:, get_concept("csp").index] + 0.02 * s[:, get_concept("head").index]
        return out.index_put((torch.arange(len(out)), torch.full((len(out),), get_concept("csp_visible").index)), csp)


@pytest.mark.parametrize("method", ["feature_ablation", "integrated_gradients"])
def test_property_channel_attributions(method):
    masks = torch.zeros(1, V, 8, 8)
    masks[0, get_concept("csp").index, :2, :2] = 1.0  # 4 px
    masks[0, get_concept("head").index] = 0.5  # 32 px-equivalent
    masks[0, get_concept("kidney").index] = 1.0  # ignored by the head
    a = PropertyExplainer(ToyPropertyHead(), method=method).attribute(masks, "csp_visible")
    d = a.as_dict()
    assert d["csp"] == pytest.approx(0.04, abs=1e-5)
    assert d["head"] == pytest.approx(0.64, abs=1e-5)
    assert d["kidney"] == pytest.approx(0.0, abs=1e-7)
    assert a.top(1) == [("head", pytest.approx(0.64, abs=1e-5))]


def test_property_head_reading_the_image_too():
    class Head(nn.Module):
        def forward(self, masks, image):
            return masks.sum(dim=(2, 3))[:, :P].repeat(1, 2)[:, :P] * image.mean()

    masks = torch.ones(1, V, 4, 4)
    a = PropertyExplainer(Head()).attribute(masks, PROPERTY_CONCEPT_NAMES[1], image=torch.full((1, 1, 4, 4), 0.5))
    assert a.as_dict()[VISUAL_CONCEPT_NAMES[1]] == pytest.approx(8.0)


def test_pixel_ig_and_saliency_on_linear_model():
    w = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) / 10
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        net[1].weight[0] = w.flatten()
        net[1].weight[1] = -w.flatten()
    x = torch.rand(2, 1, 4, 4)
    ig = PixelExplainer(net, "integrated_gradients", internal_batch_size=4).attribute(x, target=0)
    assert isinstance(ig, PixelAttribution)
    np.testing.assert_allclose(ig.values, (w * x)[:, 0].numpy(), atol=1e-5)
    assert np.abs(ig.delta).max() < 1e-4
    sal = PixelExplainer(net, "saliency").attribute(x, target=1)
    np.testing.assert_allclose(sal.values[0], w[0, 0].numpy(), atol=1e-6)
    assert sal.heatmap().max() == pytest.approx(1.0)


def test_gradcam_on_toy_conv_net_finds_the_bright_spot():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    net = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        conv.weight.fill_(1.0)
        net[3].weight.fill_(2.0)
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 10:13, 3:6] = 1.0
    cam = PixelExplainer(net, "gradcam").attribute(x, target=0)
    assert cam.values.shape == (1, 16, 16)
    # Grad-CAM = relu(mean grad × activation) = 2/256 × x exactly for this net
    np.testing.assert_allclose(cam.values[0], 2 / 256 * x[0, 0].numpy(), atol=1e-6)


def test_plots_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    a = DecisionExplainer(_hand_set_linear()).attribute(torch.rand(1, P), "trans_thalamic")
    ax = a.plot(k=5)
    ax.figure.savefig(tmp_path / "bar.png")
    p = PixelAttribution(np.random.rand(1, 8, 8), np.random.rand(1, 8, 8), ["x"], "saliency")
    p.plot().figure.savefig(tmp_path / "heat.png")
    assert (tmp_path / "bar.png").stat().st_size > 1000 and (tmp_path / "heat.png").stat().st_size > 1000
