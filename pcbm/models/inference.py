"""Inference on numpy images: preprocessing to tensors, running a model, JSON-ready predictions.

Example:
    >>> import numpy as np
    >>> from pcbm.models import build_model, predict_images
    >>> model = build_model("tiny").eval()
    >>> [p] = predict_images(model, [np.zeros((60, 80), np.uint8)], pixel_spacing_mm=0.2)
    >>> sorted(p)[:5]
    ['image', 'measurements', 'missing_criteria', 'model', 'plane']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pcbm.concepts import VISUAL_CONCEPT_NAMES
from pcbm.data.preprocess import Letterbox, letterbox, unletterbox
from pcbm.errors import InputError
from pcbm.models.output import Intervention, PCBMOutput
from pcbm.prediction import Prediction, make_prediction

if TYPE_CHECKING:
    from pcbm.models.families import FamilyModel


def to_input(images: Sequence[np.ndarray], size: int) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox uint8 images of any sizes into one (B, 1, size, size) float tensor (channels_last)."""
    arrays, boxes = zip(*(letterbox(im, size) for im in images), strict=True)
    x = torch.from_numpy(np.stack(arrays)[:, None])
    return x.contiguous(memory_format=torch.channels_last), list(boxes)


@torch.inference_mode()
def run_model(
    model: FamilyModel,
    images: Sequence[np.ndarray],
    pixel_spacing_mm: Sequence[float | None] | float | None = None,
    intervention: Intervention | None = None,
) -> tuple[PCBMOutput, list[Letterbox]]:
    """Preprocess ``images`` as the model's family does (``model.prepare``: pcbm's letterbox unless the
    family has its own input, as SonoNet-16) and run ``model`` (one forward contract) once on the batch."""
    x, boxes = model.prepare(images)
    x = x.to(next(model.parameters()).device)
    spacing = _spacings(pixel_spacing_mm, len(images))
    sp = torch.tensor([math.nan if s is None else float(s) for s in spacing], device=x.device)
    ls = torch.tensor([float(b.long_side) for b in boxes], device=x.device)
    return model(x, intervention, pixel_spacing_mm=sp, long_side=ls), boxes


def predict(
    model: FamilyModel,
    images: Sequence[np.ndarray],
    pixel_spacing_mm: Sequence[float | None] | float | None = None,
    names: Sequence[str] | None = None,
    intervention: Intervention | None = None,
    batch_size: int = 8,
    keep_masks: bool = False,
) -> list[Prediction]:
    """One :class:`~pcbm.prediction.Prediction` per image (the record the runtime returns too): plane,
    calibrated plane probabilities, status (and why, when the frame is unlike the training data),
    properties (null where not applicable), measurements (from the ellipse / segment fitted to the
    predicted mask at the original resolution, the head redrawn by the refiner; mm with a pixel
    spacing, px without; ``value`` null and ``reason`` set where the fit is unreliable), missing
    criteria; ``keep_masks`` keeps the (V, H, W) probabilities at the original size."""
    spacing = _spacings(pixel_spacing_mm, len(images))
    names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
    results: list[Prediction] = []
    has_concepts, classes = model.family.has_concepts, tuple(model.family.plane_map or ())
    identity = model.identity
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        out, boxes = run_model(model, images[chunk], spacing[chunk], intervention)
        for j, box in enumerate(boxes):
            results.append(prediction_of(model, out, j, box, images[start + j], names[start + j], spacing[start + j],
                                         keep_masks, identity, has_concepts, classes))
    return results


def prediction_of(
    model: FamilyModel, out: PCBMOutput, j: int, box: Letterbox, image: np.ndarray, name: str,
    pixel_spacing_mm: float | None, keep_masks: bool = False, identity: dict[str, Any] | None = None,
    has_concepts: bool | None = None, classes: Sequence[str] = (),
) -> Prediction:
    """The :class:`~pcbm.prediction.Prediction` of item ``j`` of a :func:`run_model` output (what
    :func:`predict` returns, and what a concept report is built on)."""
    has_concepts = model.family.has_concepts if has_concepts is None else has_concepts
    masks = biometry_masks(model, image, original_masks(out, j, box)) if has_concepts else None
    rel = reliability_fields(model, out, j)
    pred = make_prediction(
        name, out.plane_probs[j].float().cpu().numpy(), out.properties[j].float().cpu().numpy(),
        out.applicable[j].cpu().numpy(), out.status[j], bool(out.standard[j]), out.missing[j], masks,
        pixel_spacing_mm, rel["status_reason"], rel["reliability"], keep_masks,
        model.identity if identity is None else identity, has_concepts=has_concepts)
    if out.class_probs is not None and classes:  # a reference classifier's own classes
        own = dict(zip(classes, out.class_probs[j].tolist(), strict=True))
        pred.extra = {"model_class": max(own, key=own.__getitem__),
                      "model_class_probs": {c: round(float(v), 4) for c, v in own.items()}}
    return pred


def predict_images(
    model: FamilyModel,
    images: Sequence[np.ndarray],
    pixel_spacing_mm: Sequence[float | None] | float | None = None,
    names: Sequence[str] | None = None,
    intervention: Intervention | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """:func:`predict` as JSON-ready dicts (``Prediction.to_dict()``): image, plane, plane_probs, status,
    standard, properties, measurements, missing_criteria, status_reason, reliability; for a
    reference classifier (a family with a ``plane_map``, e.g. SonoNet-16) also ``model_class`` and
    ``model_class_probs``, its own classes."""
    return [p.to_dict() for p in predict(model, images, pixel_spacing_mm, names, intervention, batch_size)]


def original_masks(out: PCBMOutput, index: int, box: Letterbox) -> np.ndarray:
    """(V, H, W) mask probabilities of item ``index`` at the original image size."""
    return unletterbox(out.masks[index].float().cpu().numpy(), box)


def refined_head(model: Any, image: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The head probability (H, W) redrawn by the model's head refiner (:attr:`FamilyModel.head_refiner`)
    around the plane model's ``head`` probability; ``head`` itself when no refiner is attached or
    no head was found."""
    refiner = getattr(model, "head_refiner", None)
    if refiner is None or not (head > 0.5).any():
        return head
    prob = refiner.refine(np.asarray(image), head > 0.5)
    return head if prob is None else prob


def biometry_masks(model: Any, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(V, H, W) original-size probabilities with the head redrawn by :func:`refined_head`; the
    masks unchanged when there is nothing to redraw. Measurements are taken on these."""
    k = VISUAL_CONCEPT_NAMES.index("head")
    head = masks[k]
    redrawn = refined_head(model, image, head)
    if redrawn is head:
        return masks
    out = masks.copy()
    out[k] = redrawn
    return out


def reliability_fields(model: Any, out: PCBMOutput, j: int) -> dict[str, Any]:
    """``status_reason`` (why the status is not_a_known_plane when the probabilities alone do not say:
    "unlike the training data") and ``reliability`` (the out-of-distribution score, its threshold and
    the temperature; null without a fitted reliability file)."""
    rel = getattr(model, "reliability", None)
    reason = out.status_reason[j] if out.status_reason is not None else None
    if rel is None:
        return {"status_reason": reason, "reliability": None}
    score = float(out.ood_score[j]) if out.ood_score is not None else None
    return {"status_reason": reason, "reliability": {
        "ood_score": None if score is None else round(score, 4), "threshold": round(float(rel.threshold), 4),
        "unlike_training_data": bool(score is not None and score > rel.threshold),
        "temperature": round(float(rel.temperature), 4)}}


def _spacings(value: Sequence[float | None] | float | None, n: int) -> list[float | None]:
    """One validated spacing (or None) per image; NaN, 0, negative or > 10 mm is an InputError."""
    from pcbm.validate import pixel_spacing

    if value is None or isinstance(value, int | float):
        return [None if value is None else pixel_spacing(value, "pixel_spacing_mm")] * n
    vals = list(value)
    if len(vals) != n:
        raise InputError(f"got {len(vals)} pixel spacings for {n} images")
    return [None if v is None else pixel_spacing(v, f"pixel_spacing_mm[{i}]") for i, v in enumerate(vals)]
