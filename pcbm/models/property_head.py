"""Property head: property concepts from the visual concepts (soft masks) — never from free features.

The head sees only
  * differentiable statistics of each mask channel (presence, area, centroid, second moments →
    axis lengths, elongation and orientation, contact with the scan-sector edge, mean echogenicity
    inside the mask),
  * the head's left/right balance about the falx line,
  * fixed intensity statistics of the image inside the field of view (for ``gain_adequate``),
  * a small CNN on the masks average-pooled to a small grid,
so every property is a function of the visual concepts (and of the image *within* them): the
bottleneck stays strict. The field of view is estimated from the image by a fixed (not learned)
threshold-and-close, as the black outside a curvilinear sector.

Binary properties come out as logits. Continuous ones (hc/bpd/ofd/ac/fl) come out as *normalised*
lengths (fraction of the original image's long side): an analytic ellipse / rod length from the
mask's second moments, with a learned per-concept scale and offset. Convert to mm with
``norm × long_side_px × pixel_spacing_mm``.

Example:
    >>> import torch
    >>> from pcbm.models.property_head import PropertyHead
    >>> head = PropertyHead(cnn_channels=(8,), cnn_input=16, hidden=16).eval()
    >>> head(torch.rand(2, 15, 32, 32), torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 29])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pcbm.concepts import CONTINUOUS_PROPERTIES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES, get_property_concept

N_VISUAL = len(VISUAL_CONCEPT_NAMES)
N_PROPS = len(PROPERTY_CONCEPT_NAMES)
BINARY_INDEX = [i for i, n in enumerate(PROPERTY_CONCEPT_NAMES) if n not in CONTINUOUS_PROPERTIES]
CONTINUOUS_INDEX = [PROPERTY_CONCEPT_NAMES.index(n) for n in CONTINUOUS_PROPERTIES]
_V = {n: i for i, n in enumerate(VISUAL_CONCEPT_NAMES)}
# (channel, which analytic length) of each continuous property, as its ontology entry says
_ANALYTIC = [(_V[str(c.structure)], str(c.length)) for c in map(get_property_concept, CONTINUOUS_PROPERTIES)]
PER_CHANNEL = 13
FOV_THRESHOLD = 0.03  # image value (0..1) above which a pixel is inside the scan sector
EDGE_BAND = 2  # pixels (model frame) counted as "touching the sector edge"


def binary_dilate(x: torch.Tensor, k: int, padding: int | None = None) -> torch.Tensor:
    """Dilation of a {0, 1} map by a k×k square: ``F.max_pool2d(x, k, stride=1, padding=padding)``
    for such maps (out-of-frame pixels count as 0). Done as a k×1 then a 1×k box sum tested > 0 —
    exact for non-negative inputs, and on a CPU several times faster than the max-pool, which was
    most of the property head's time."""
    p = k // 2 if padding is None else padding
    box = F.avg_pool2d(F.avg_pool2d(x, (k, 1), stride=1, padding=(p, 0)), (1, k), stride=1, padding=(0, p))
    return (box > 0).to(x.dtype)


def estimate_field_of_view(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) image in [0, 1] -> (B, 1, S, S) {0, 1}: inside the scan sector (fixed, not learned)."""
    k = max(3, (image.shape[-1] // 32) | 1)  # odd closing kernel ~ 3 % of the frame
    on = (image > FOV_THRESHOLD).to(image.dtype)
    dilated = binary_dilate(on, k)
    return 1.0 - binary_dilate(1.0 - dilated, k)  # closing fills dark fluid


def sector_edge(fov: torch.Tensor, band: int = EDGE_BAND) -> torch.Tensor:
    """Band of ``band`` pixels just inside the field-of-view edge (the frame border counts as edge)."""
    inv = F.pad(1.0 - fov, (band, band, band, band), value=1.0)
    eroded = 1.0 - binary_dilate(inv, 2 * band + 1, padding=0)
    return (fov - eroded).clamp(0, 1)


def mask_moments(masks: torch.Tensor, eps: float = 1.0) -> dict[str, torch.Tensor]:
    """Second-moment statistics per channel of (B, V, S, S) soft masks, in frame units (0..1).

    Returns a dict of (B, V) tensors: sum (pixels), cx, cy, l1, l2 (principal variances),
    cos2, sin2 (orientation of the major axis as cos/sin of twice its angle).
    """
    b, v, h, w = masks.shape
    ys = (torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) / h
    xs = (torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) / w
    s = masks.sum((2, 3))
    mx = masks.sum(2)  # (B, V, W)
    my = masks.sum(3)  # (B, V, H)
    denom = s + eps
    cx = (mx * xs).sum(-1) / denom
    cy = (my * ys).sum(-1) / denom
    sxx = ((mx * xs**2).sum(-1) / denom - cx**2).clamp_min(0)
    syy = ((my * ys**2).sum(-1) / denom - cy**2).clamp_min(0)
    sxy = ((masks @ xs) * ys).sum(-1) / denom - cx * cy  # a MatMul, not an Einsum: 5 ms less in onnxruntime
    half_diff = (sxx - syy) / 2
    # clamp, not "+ 1e-12": the exported graph lost the tiny addend (ONNX gave 0/0 for an erased mask)
    disc = torch.sqrt(torch.clamp_min(half_diff**2 + sxy**2, 1e-12))
    tr2 = (sxx + syy) / 2
    return {"sum": s, "cx": cx, "cy": cy, "l1": tr2 + disc, "l2": (tr2 - disc).clamp_min(0),
            "cos2": half_diff / disc, "sin2": sxy / disc}


def ellipse_perimeter(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Ramanujan II perimeter of semi-axes a, b (differentiable)."""
    h = ((a - b) / (a + b + 1e-9)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + torch.sqrt(4 - 3 * h)))


def _semi_axes(mom: dict[str, torch.Tensor], i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Semi-axes (major, minor) of channel ``i`` as a filled ellipse, which has variance a²/4 per axis."""
    return 2 * torch.sqrt(mom["l1"][:, i] + 1e-12), 2 * torch.sqrt(mom["l2"][:, i] + 1e-12)


#: (moments, channel) -> (B,) length, by the ontology's ``length`` of a continuous property
LENGTHS: dict[str, Callable[[dict[str, torch.Tensor], int], torch.Tensor]] = {
    "perimeter": lambda mom, i: ellipse_perimeter(*_semi_axes(mom, i)),
    "minor": lambda mom, i: 2 * _semi_axes(mom, i)[1],
    "major": lambda mom, i: 2 * _semi_axes(mom, i)[0],
    "rod": lambda mom, i: torch.sqrt(12 * mom["l1"][:, i] + 1e-12),  # a thin rod of length L: variance L²/12
}


def analytic_lengths(mom: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, n_continuous) normalised lengths from moments, each continuous property's ``length`` of
    its structure: a filled ellipse has variance a²/4 per axis; a thin rod of length L has L²/12."""
    return torch.stack([LENGTHS[kind](mom, i) for i, kind in _ANALYTIC], 1)


class MaskFeatures(nn.Module):
    """Fixed, differentiable statistics of soft masks (and of the image inside them). No parameters."""

    def __init__(self, uses_image: bool = True):
        super().__init__()
        self.uses_image = uses_image

    @property
    def n_features(self) -> int:
        return N_VISUAL * PER_CHANNEL + 4 + (4 if self.uses_image else 0)

    def forward(self, masks: torch.Tensor, image: torch.Tensor,
                fov: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(features (B, F), moments); ``fov``: the field of view if the caller has it already."""
        b, v, h, w = masks.shape
        fov = estimate_field_of_view(image) if fov is None else fov  # (B, 1, S, S)
        edge = sector_edge(fov)
        mom = mask_moments(masks)
        s = mom["sum"] + 1.0
        npx = float(h * w)
        area = mom["sum"] / npx  # (B, V) fraction of the frame
        fov_area = fov.mean((2, 3))  # (B, 1)
        # mask-weighted sums of the sector-edge band, the outside of the sector and the image: one
        # (V × pixels) @ (pixels × 3) product instead of three mask-sized temporaries
        weights = torch.cat([edge, 1 - fov, image if self.uses_image else torch.zeros_like(image)], 1)
        edge_frac, outside, inten = (masks.flatten(2) @ weights.flatten(2).transpose(1, 2)).unbind(2)
        edge_frac, outside, inten = edge_frac / s, outside / s, inten / s
        presence = masks.amax((2, 3))
        major, minor = 4 * torch.sqrt(mom["l1"] + 1e-8), 4 * torch.sqrt(mom["l2"] + 1e-8)
        per_channel = torch.stack(
            [presence, torch.log(area + 1e-4), area / (fov_area + 1e-3), mom["cx"], mom["cy"], major, minor,
             minor / (major + 1e-3), mom["cos2"], mom["sin2"], edge_frac * 10, outside, inten], 2,
        )  # (B, V, PER_CHANNEL)
        feats = [per_channel.flatten(1), self._symmetry(masks, mom)]
        if self.uses_image:
            feats.append(self._gain(image, fov))
        return torch.cat(feats, 1), mom

    @staticmethod
    def _symmetry(masks: torch.Tensor, mom: dict[str, torch.Tensor]) -> torch.Tensor:
        """Head left/right balance about the falx line, centroid offset and falx/head-axis alignment."""
        hi, fi = _V["head"], _V["falx"]
        b, _, h, w = masks.shape
        theta = 0.5 * torch.atan2(mom["sin2"][:, fi], mom["cos2"][:, fi])  # falx direction
        nx, ny = -torch.sin(theta), torch.cos(theta)  # normal to the falx line
        fx, fy = mom["cx"][:, fi], mom["cy"][:, fi]
        ys = ((torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) / h).view(1, h, 1)
        xs = ((torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) / w).view(1, 1, w)
        side = (xs - fx.view(b, 1, 1)) * nx.view(b, 1, 1) + (ys - fy.view(b, 1, 1)) * ny.view(b, 1, 1)
        head = masks[:, hi]
        balance = (head * torch.sigmoid(side * 60)).sum((1, 2)) / (head.sum((1, 2)) + 1.0) - 0.5
        offset = (mom["cx"][:, hi] - fx) * nx + (mom["cy"][:, hi] - fy) * ny
        offset = offset / (2 * torch.sqrt(mom["l2"][:, hi] + 1e-6))
        align = mom["cos2"][:, fi] * mom["cos2"][:, hi] + mom["sin2"][:, fi] * mom["sin2"][:, hi]
        return torch.stack([balance.abs() * 4, offset.abs(), align, balance * 4], 1)

    @staticmethod
    def _gain(image: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
        n = fov.sum((2, 3)) + 1.0
        mean = (image * fov).sum((2, 3)) / n
        std = torch.sqrt(((image - mean.view(-1, 1, 1, 1)) ** 2 * fov).sum((2, 3)) / n + 1e-8)
        sat = ((image > 0.97).float() * fov).sum((2, 3)) / n
        dark = ((image < 0.06).float() * fov).sum((2, 3)) / n
        return torch.cat([mean, std, sat * 10, dark], 1)


class PropertyHead(nn.Module):
    """Soft masks (B, V, S, S) [+ image (B, 1, S, S)] -> property logits (B, P).

    Binary properties: logits. Continuous properties: normalised lengths (fraction of the original
    image's long side), analytic from the mask moments times a learned scale plus offset.

    Args:
        cnn_channels: widths of the small stride-2 CNN on the pooled masks.
        cnn_input: side the masks are average-pooled to before the CNN.
        hidden: width of the MLP that maps statistics + CNN features to the binary logits.
        uses_image: include image statistics inside the field of view / the masks.
    """

    def __init__(self, cnn_channels: tuple[int, ...] = (16, 32, 64), cnn_input: int = 64, hidden: int = 128,
                 uses_image: bool = True):
        super().__init__()
        self.features = MaskFeatures(uses_image)
        self.cnn_input = cnn_input
        layers: list[nn.Module] = []
        c_in = N_VISUAL + 1  # masks + field of view
        for c in cnn_channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        n_in = self.features.n_features + 2 * c_in
        self.norm = nn.BatchNorm1d(n_in)
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
                                 nn.Linear(hidden, len(BINARY_INDEX)))
        self.length_log_scale = nn.Parameter(torch.zeros(len(CONTINUOUS_INDEX)))
        self.length_offset = nn.Parameter(torch.zeros(len(CONTINUOUS_INDEX)))

    def forward(self, masks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(masks.device.type, enabled=False):  # moments need float32 sums
            # a channels-last segmenter hands over channels-last masks; every statistic here reduces
            # over the pixels, which on a CPU runs about 40 % faster on contiguous (B, V, S, S) maps
            return self._forward(masks.float().contiguous(), image.float().contiguous())

    def _forward(self, masks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        fov = estimate_field_of_view(image)
        stats, mom = self.features(masks, image, fov)  # (B, F)
        grid = F.adaptive_avg_pool2d(torch.cat([masks, fov], 1), self.cnn_input)  # (B, V+1, n, n)
        conv = self.cnn(grid)  # (B, C, n/2^k, n/2^k)
        x = torch.cat([stats, conv.mean((2, 3)), conv.amax((2, 3))], 1)
        binary = self.mlp(self.norm(x))  # (B, n_binary)
        lengths = analytic_lengths(mom) * torch.exp(self.length_log_scale) + self.length_offset  # (B, n_cont)
        out = masks.new_zeros(masks.shape[0], N_PROPS)
        out[:, BINARY_INDEX] = binary
        out[:, CONTINUOUS_INDEX] = lengths
        return out
