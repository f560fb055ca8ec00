"""Losses that skip what a sample lacks: every term is averaged over labelled entries only.

A term with no labelled entry in the batch is exactly 0 with no gradient path to the labels, so an
unlabelled sample contributes nothing.

Example:
    >>> import torch
    >>> segmentation_loss(torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4), torch.zeros(2, 3, dtype=torch.bool))
    tensor(0.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pcbm.models.property_head import BINARY_INDEX, CONTINUOUS_INDEX


@dataclass(frozen=True)
class LossWeights:
    segmentation: float = 1.0  # BCE + soft Dice over labelled mask channels
    presence: float = 0.5  # image-level: a structure the plane label implies present must show somewhere
    properties: float = 1.0  # BCE (binary) + L1 (continuous, normalised lengths) over labelled properties
    plane: float = 1.0  # cross-entropy over labelled planes
    standard: float = 1.0  # baseline only: BCE on the standard flag


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE + soft Dice, over (item, channel) pairs that are labelled.

    Args:
        logits, target: (B, V, S, S).
        labelled: (B, V) bool.
    """
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    logits, target = logits.float(), target.float()
    w = labelled.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((2, 3))  # (B, V)
    p = logits.sigmoid()
    inter = (p * target).sum((2, 3))
    denom = p.sum((2, 3)) + target.sum((2, 3))
    dice = 1 - (2 * inter + 1.0) / (denom + 1.0)  # (B, V)
    present = w * (target.sum((2, 3)) > 0).to(w.dtype)  # Dice only where the structure is there: an
    # empty channel is handled by the BCE, so Dice never rewards predicting nothing for small structures
    return (bce * w).sum() / w.sum() + (dice * present).sum() / present.sum().clamp_min(1.0)


def box_loss(logits: torch.Tensor, boxes: torch.Tensor, has_box: torch.Tensor) -> torch.Tensor:
    """Loss of a structure known only by a box drawn around it (Alzubaidi's CSP and ventricle).

    Nothing outside the box (BCE towards 0 there) and, as BoxInst's projection term (Tian et al.,
    CVPR 2021), the prediction's maximum over each row and column matches the box's: Dice between
    the projections, so the structure must reach every row and column the box spans but is free
    in shape inside it.

    Args:
        logits: (B, V, S, S) segmenter logits.
        boxes: (B, V, S, S) box masks (in 0..1; zero where ``has_box`` is False).
        has_box: (B, V) bool.
    """
    if not bool(has_box.any()):
        return logits.sum() * 0.0
    lg, b = logits.float()[has_box], (boxes.float()[has_box] > 0.5).float()  # (N, S, S)
    outside = 1.0 - b
    bce = F.binary_cross_entropy_with_logits(lg, torch.zeros_like(lg), reduction="none")
    out_term = (bce * outside).sum((1, 2)) / outside.sum((1, 2)).clamp_min(1.0)
    p = lg.sigmoid()
    proj = 0.0
    for dim in (1, 2):
        pp, bp = p.amax(dim), b.amax(dim)  # (N, S)
        proj = proj + 1 - (2 * (pp * bp).sum(1) + 1.0) / (pp.sum(1) + bp.sum(1) + 1.0)
    return (out_term + proj).mean()


def property_loss(logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """BCE on labelled binary properties + L1 on labelled continuous (normalised) ones, each averaged."""
    b_idx, c_idx = BINARY_INDEX, CONTINUOUS_INDEX
    total = logits.sum() * 0.0
    lb = labelled[:, b_idx]
    if bool(lb.any()):
        bce = F.binary_cross_entropy_with_logits(logits[:, b_idx], target[:, b_idx], reduction="none")
        total = total + (bce * lb).sum() / lb.sum()
    lc = labelled[:, c_idx]
    if bool(lc.any()):
        l1 = (logits[:, c_idx] - target[:, c_idx]).abs() * 10  # normalised lengths are ~0.1–2
        total = total + torch.where(lc, l1, torch.zeros_like(l1)).sum() / lc.sum()
    return total


PRESENCE_TOP_K = 32  # pixels whose mean logit stands for "the structure is somewhere in the frame"


def presence_loss(logits: torch.Tensor, present: torch.Tensor, k: int = PRESENCE_TOP_K) -> torch.Tensor:
    """Multiple-instance loss of structures known only to be *in* the frame (a real image's plane label
    implies them): BCE towards 1 of the mean of the channel's ``k`` highest logits, so some pixels must
    show the structure, and which ones is left to the segmenter.

    Args:
        logits: (B, V, S, S) segmenter logits.
        present: (B, V) bool, the (item, channel) pairs known present.

    Example:
        >>> lg = torch.full((1, 2, 8, 8), -5.0)
        >>> lg[0, 0, :6, :6] = 5.0
        >>> float(presence_loss(lg, torch.tensor([[True, False]]))) < 0.01
        True
    """
    if not bool(present.any()):
        return logits.sum() * 0.0
    lg = logits.float()[present].flatten(1)  # (N, S*S)
    pooled = lg.topk(min(k, lg.shape[1]), dim=1).values.mean(1)
    return F.binary_cross_entropy_with_logits(pooled, torch.ones_like(pooled))


def set_nll(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """(B,) -log of each item's probability summed over its allowed planes ((B, K) bool): the
    cross-entropy of a one-plane set (what :func:`plane_loss` and the decision refit average).

    Example:
        >>> round(float(set_nll(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[True, True, False]]))[0]), 4)
        0.2807
    """
    return logits.logsumexp(1) - logits.masked_fill(~allowed, float("-inf")).logsumexp(1)


def plane_loss(logits: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over items with a plane label (target -1 = unlabelled).

    With ``allowed`` (B, K) bool, an item's label is a *set* of planes (a brain image without its
    sub-plane allows TT, TV and TC): the loss is -log of the probability summed over the set, which is the
    cross-entropy for a one-plane set; items with an empty set are skipped.

    Example:
        >>> lg = torch.tensor([[2.0, 0.0, 1.0]])  # -log(p0 + p1)
        >>> round(float(plane_loss(lg, torch.tensor([-1]), torch.tensor([[True, True, False]]))), 4)
        0.2807
    """
    if allowed is None:
        if not bool((target >= 0).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, ignore_index=-1)
    keep = allowed.any(1)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return set_nll(logits.float()[keep], allowed[keep]).mean()


def standard_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE over items with a standard label (target -1 = unlabelled)."""
    keep = target >= 0
    if not bool(keep.any()):
        return logit.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logit[keep], target[keep].to(logit.dtype))
