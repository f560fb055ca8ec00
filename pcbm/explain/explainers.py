"""Explainers, one verb each (``attribute``), as Captum's: decision ← property concepts,
property concept ← visual concepts, and any output ← pixels through the whole chain.

Each works on a :class:`~pcbm.models.PCBM` (duck-typed: ``segmenter``, ``property_head``,
``decision``) or on a bare ``nn.Module`` with the same role, which is how the tests check
them against toy models with hand-set weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.errors import InputError
from pcbm.explain._captum import captum_attr
from pcbm.explain.results import ConceptAttribution, PixelAttribution
from pcbm.explain.targets import TargetKind, resolve_target

Target = str | int | Sequence[str | int] | None


def is_pcbm(model: Any) -> bool:
    """True for a full PCBM (segmenter, property head and decision layer)."""
    return all(hasattr(model, a) for a in ("segmenter", "property_head", "decision"))


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    for attr in ("logits", "property_logits", "plane_logits"):
        if isinstance(getattr(out, attr, None), torch.Tensor):
            return getattr(out, attr)
    raise TypeError(f"cannot take a tensor from a {type(out).__name__} output")


def _targets(target: Target, batch: int, kind: TargetKind, default: torch.Tensor | None) -> list[int]:
    """Per-item target indices; ``None`` takes ``default`` (the predicted class)."""
    if target is None:
        if default is None:
            raise InputError(f"give a {kind} target")
        return [int(i) for i in default.tolist()]
    items = [target] * batch if isinstance(target, (str, int)) else list(target)
    if len(items) != batch:
        raise InputError(f"got {len(items)} targets for a batch of {batch}")
    out = []
    for t in items:
        k, i = resolve_target(t, kind)
        if k != kind:  # pragma: no cover - resolve_target with kind only returns that kind
            raise InputError(f"target {t!r} is a {k}, expected a {kind}")
        out.append(i)
    return out


def _linear_of(decision: nn.Module) -> nn.Linear | None:
    if isinstance(decision, nn.Linear):
        return decision
    lin = getattr(decision, "linear", None)
    return lin if isinstance(lin, nn.Linear) else None


class DecisionExplainer:
    """Decision ← property concepts: how much each property concept pushed a plane's logit.

    A linear decision layer gives exact contributions, weight × value (the value as the linear
    layer sees it), which sum with the bias to the logit. Any other decision layer gets Captum's
    Integrated Gradients from a zero baseline (the contributions then sum to logit(x) − logit(0)).

    Example:
        >>> lin = nn.Linear(len(PROPERTY_CONCEPT_NAMES), len(PLANE_NAMES))
        >>> a = DecisionExplainer(lin).attribute(torch.rand(2, len(PROPERTY_CONCEPT_NAMES)), "femur")
        >>> a.values.shape
        (2, 29)
    """

    def __init__(self, model: nn.Module, method: str = "auto", n_steps: int = 64):
        self.decision = model.decision if is_pcbm(model) else model
        linear = _linear_of(self.decision)
        if method == "auto":
            method = "exact" if linear is not None else "integrated_gradients"
        if method not in ("exact", "integrated_gradients"):
            raise InputError(f"unknown method {method!r}; choose auto, exact or integrated_gradients")
        if method == "exact" and linear is None:
            raise InputError("exact contributions need a linear decision layer (decision.linear)")
        self.method, self.linear, self.n_steps = method, linear, n_steps

    def attribute(self, properties: Any, target: Target = None) -> ConceptAttribution:
        """Contributions of each property concept to ``target`` (plane name(s); default: predicted).

        Args:
            properties: (B, P) the decision layer's input (``PCBMOutput.concept_inputs``), or a
                :class:`~pcbm.models.output.PCBMOutput` (its ``concept_inputs`` are used).
            target: a plane name or index, one per item, or None for the predicted plane.
        """
        if not isinstance(properties, torch.Tensor):
            inputs = getattr(properties, "concept_inputs", None)
            if inputs is None:
                raise TypeError("give the decision layer's input (B, P) or a PCBMOutput with concept_inputs")
            properties = inputs
        x = properties.detach().float()
        if x.ndim == 1:
            x = x[None]
        with torch.no_grad():
            logits = _first_tensor(self.decision(x))
        idx = _targets(target, len(x), "plane", logits.argmax(1))
        names = [PLANE_NAMES[i] for i in idx]
        if self.method == "exact":
            seen: list[torch.Tensor] = []
            handle = self.linear.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
            try:
                with torch.no_grad():
                    self.decision(x)
            finally:
                handle.remove()
            z = seen[-1]  # (B, P) what the linear layer multiplies
            w = self.linear.weight.detach()[idx]  # (B, P)
            bias = self.linear.bias.detach()[idx] if self.linear.bias is not None else torch.zeros(len(idx))
            values = (w * z).numpy()
            return ConceptAttribution(values, PROPERTY_CONCEPT_NAMES, names, "exact", z.numpy(), bias.numpy())
        ig = captum_attr().IntegratedGradients(lambda t: _first_tensor(self.decision(t)))
        attr = ig.attribute(x, baselines=torch.zeros_like(x), target=idx, n_steps=self.n_steps)
        return ConceptAttribution(attr.detach().numpy(), PROPERTY_CONCEPT_NAMES, names, "integrated_gradients", x.numpy())


class PropertyExplainer:
    """Property concept ← visual concepts: which structures (mask channels) drove a property.

    ``method="feature_ablation"`` erases one mask channel at a time (Captum FeatureAblation with a
    channel feature mask) and reads the change of the property logit; ``"integrated_gradients"``
    integrates from empty masks and sums the pixel attributions of each channel.

    Example:
        >>> head = nn.Sequential(nn.Flatten(), nn.LazyLinear(len(PROPERTY_CONCEPT_NAMES)))
        >>> masks = torch.rand(1, len(VISUAL_CONCEPT_NAMES), 8, 8)
        >>> PropertyExplainer(head).attribute(masks, "csp_visible").values.shape
        (1, 15)
    """

    def __init__(self, model: nn.Module, method: str = "feature_ablation", n_steps: int = 32,
                 internal_batch_size: int | None = 8):
        if method not in ("feature_ablation", "integrated_gradients"):
            raise InputError(f"unknown method {method!r}; choose feature_ablation or integrated_gradients")
        self.head = model.property_head if is_pcbm(model) else model
        self.method, self.n_steps, self.internal_batch_size = method, n_steps, internal_batch_size
        try:
            self._takes_image = len(inspect.signature(self.head.forward).parameters) >= 2
        except (TypeError, ValueError):  # pragma: no cover
            self._takes_image = False

    def _forward(self, masks: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if self._takes_image:
            return _first_tensor(self.head(masks, image))
        return _first_tensor(self.head(masks))

    def attribute(self, masks: torch.Tensor, target: Target = None, image: torch.Tensor | None = None) -> ConceptAttribution:
        """Channel attributions (B, V) of the property ``target`` (a property name, one per item).

        Args:
            masks: (B, V, H, W) mask probabilities, as the property head reads them.
            target: property concept name(s) or index(es); required.
            image: (B, 1, H, W) the image, for property heads that also read it (held fixed).
        """
        masks = masks.detach().float()
        idx = _targets(target, len(masks), "property", None)
        names = [PROPERTY_CONCEPT_NAMES[i] for i in idx]
        if self._takes_image and image is None:
            raise InputError("this property head also reads the image: pass image= (B, 1, H, W)")
        extra = (image.detach(),) if self._takes_image else None
        fwd = self._forward
        ca = captum_attr()
        if self.method == "feature_ablation":
            b, v = masks.shape[:2]
            fmask = torch.arange(v).view(1, v, 1, 1).expand_as(masks[:1]).contiguous()
            attr = ca.FeatureAblation(fwd).attribute(masks, baselines=0.0, target=idx, feature_mask=fmask,
                                                     additional_forward_args=extra)
            values = attr[:, :, 0, 0]  # each channel is one feature: constant over (H, W)
        else:
            attr = ca.IntegratedGradients(fwd).attribute(
                masks, baselines=torch.zeros_like(masks), target=idx, n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size, additional_forward_args=extra)
            values = attr.sum(dim=(2, 3))
        present = masks.flatten(2).amax(2)
        return ConceptAttribution(values.detach().numpy(), VISUAL_CONCEPT_NAMES, names, self.method, present.numpy())


class _Chain(nn.Module):
    """A PCBM seen as image → one head's scores: plane logits, property logits or mean mask logit."""

    def __init__(self, model: nn.Module, kind: TargetKind):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        if self.kind == "plane":
            return out.plane_logits  # (B, K)
        if self.kind == "property":
            return out.property_logits  # (B, P)
        return out.mask_logits.mean(dim=(2, 3))  # (B, V)


def _last_conv(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError("no Conv2d layer found for Grad-CAM; pass layer=")
    return convs[-1]


class PixelExplainer:
    """Decision or any concept ← pixels, through the whole chain.

    Methods: ``"integrated_gradients"`` (from a black image, batched by ``internal_batch_size``),
    ``"saliency"`` (absolute gradient) and ``"gradcam"`` (Captum LayerGradCam on ``layer``,
    by default the last convolution of the segmenter's encoder, upsampled to the image).

    For a PCBM the target is a name: a plane ("trans_thalamic"), a property concept
    ("csp_visible") or a visual concept ("visual:csp", the mean logit of its mask). For a bare
    module returning (B, N) scores, the target is an index.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> PixelExplainer(net, "saliency").attribute(torch.rand(1, 1, 8, 8), target=1).values.shape
        (1, 8, 8)
    """

    METHODS = ("integrated_gradients", "saliency", "gradcam")

    def __init__(self, model: nn.Module, method: str = "integrated_gradients", layer: nn.Module | None = None,
                 n_steps: int = 32, internal_batch_size: int | None = 8):
        if method not in self.METHODS:
            raise InputError(f"unknown method {method!r}; choose {', '.join(self.METHODS)}")
        self.model, self.method, self.n_steps, self.internal_batch_size = model, method, n_steps, internal_batch_size
        self.pcbm = is_pcbm(model)
        if layer is None and method == "gradcam":
            enc = getattr(getattr(model, "segmenter", None), "encoder", None)
            layer = _last_conv(enc if isinstance(enc, nn.Module) else model)
        self.layer = layer

    def attribute(self, image: torch.Tensor, target: Target = None) -> PixelAttribution:
        """A (B, H, W) attribution map of ``target`` (default: the predicted plane).

        Args:
            image: (B, 1, H, W) model input in [0, 1].
            target: a plane/property/visual concept name (PCBM) or an output index, one per item.
        """
        x = image.detach().float()
        if x.ndim == 3:
            x = x[:, None]
        x = x.clone().requires_grad_(True)
        kind: TargetKind = "plane"
        first = target if isinstance(target, (str, int)) or target is None else list(target)[0]
        if self.pcbm and isinstance(first, str):
            kind = resolve_target(first)[0]
        if self.pcbm:
            fwd: nn.Module = _Chain(self.model, kind)
            default = None
            if target is None:
                with torch.no_grad():
                    default = fwd(x).argmax(1)
            idx = _targets(target, len(x), kind, default)
            names = [_ORDER[kind][i] for i in idx]
        else:
            fwd = self.model
            if target is None:
                with torch.no_grad():
                    idx = _first_tensor(fwd(x)).argmax(1).tolist()
            else:
                idx = [int(t) for t in ([target] * len(x) if isinstance(target, (int, str)) else target)]
            names = [str(i) for i in idx]
        fn = (lambda t: _first_tensor(fwd(t))) if not self.pcbm else fwd
        was_training = self.model.training
        self.model.eval()
        try:
            attr, delta = self._attribute(fn, x, idx)
        finally:
            self.model.train(was_training)
        values = attr.detach().sum(dim=1).numpy()
        return PixelAttribution(values, x[:, 0].detach().numpy(), names, self.method, delta)

    def _attribute(self, fn: Any, x: torch.Tensor, idx: list[int]) -> tuple[torch.Tensor, np.ndarray | None]:
        ca = captum_attr()
        delta = None
        if self.method == "integrated_gradients":
            attr, delta = ca.IntegratedGradients(fn).attribute(
                x, baselines=torch.zeros_like(x), target=idx, n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size, return_convergence_delta=True)
            delta = delta.detach().numpy()
        elif self.method == "saliency":
            attr = ca.Saliency(fn).attribute(x, target=idx, abs=True)
        else:
            cam = ca.LayerGradCam(fn, self.layer).attribute(x, target=idx, relu_attributions=True)
            attr = ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return attr, delta


_ORDER = {"plane": PLANE_NAMES, "property": PROPERTY_CONCEPT_NAMES, "visual": VISUAL_CONCEPT_NAMES}

