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

from pcbm.data.preprocess import Letterbox, letterbox, unletterbox
from pcbm.errors import InputError
from pcbm.models.output import Intervention, PCBMOutput
from pcbm.pipeline import Pipeline
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
    refine_head: bool | str = True,
) -> list[Prediction]:
    """One :class:`~pcbm.prediction.Prediction` per image (the record the runtime returns too): plane,
    calibrated plane probabilities, status (and why, when the frame is unlike the training data),
    properties (null where not applicable), measurements (from the ellipse / segment fitted to the
    predicted mask at the original resolution, the head redrawn by the refiner as ``refine_head``
    says: always, never or on standard frames only; mm with a pixel spacing, px without; ``value``
    null and ``reason`` set where the fit is unreliable), missing criteria; ``keep_masks`` keeps the
    (V, H, W) probabilities at the original size.

    A model with concepts runs the one prediction pipeline (:class:`pcbm.pipeline.Pipeline` over
    :class:`~pcbm.models.stages.TorchStages`), the path a model package runs too; a reference
    classifier (no concepts) its own forward."""
    spacing = _spacings(pixel_spacing_mm, len(images))
    names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
    results: list[Prediction] = []
    if model.family.has_concepts:
        pipeline = pipeline_of(model)
        for start in range(0, len(images), batch_size):
            chunk = slice(start, start + batch_size)
            results += pipeline.predict_batch(images[chunk], spacing[chunk], intervention, names[chunk], keep_masks,
                                              refine_head)
        return results
    classes, identity = tuple(model.family.plane_map or ()), model.identity
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        out, boxes = run_model(model, images[chunk], spacing[chunk], intervention)
        for j in range(len(boxes)):
            results.append(_classifier_prediction(out, j, names[start + j], spacing[start + j], identity, classes))
    return results


def pipeline_of(model: FamilyModel) -> Pipeline:
    """The one prediction pipeline over ``model``'s torch stages (a model with concepts)."""
    from pcbm.models.stages import TorchStages

    return Pipeline(TorchStages(model))


def _classifier_prediction(out: PCBMOutput, j: int, name: str, pixel_spacing_mm: float | None,
                           identity: dict[str, Any], classes: Sequence[str]) -> Prediction:
    """The record of a model without concepts: its plane probabilities and status, its own classes."""
    pred = make_prediction(
        name, out.plane_probs[j].float().cpu().numpy(), out.properties[j].float().cpu().numpy(),
        out.applicable[j].cpu().numpy(), out.status[j], bool(out.standard[j]), out.missing[j], None,
        pixel_spacing_mm, None, None, False, identity, has_concepts=False)
    if out.class_probs is not None and classes:  # a reference classifier's own classes
        own = dict(zip(classes, out.class_probs[j].tolist(), strict=True))
        pred.extra = {"model_class": max(own, key=own.__getitem__),
                      "model_class_probs": {c: round(float(v), 4) for c, v in own.items()}}
    return pred


def predict_images(model: FamilyModel, images: Sequence[np.ndarray], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`predict` as JSON-ready dicts (``Prediction.to_dict()``): image, plane, plane_probs, status,
    standard, properties, measurements, missing_criteria, status_reason, reliability; for a
    reference classifier (a family with a ``plane_map``, e.g. SonoNet-16) also ``model_class`` and
    ``model_class_probs``, its own classes."""
    return [p.to_dict() for p in predict(model, images, *args, **kwargs)]


def original_masks(out: PCBMOutput, index: int, box: Letterbox) -> np.ndarray:
    """(V, H, W) mask probabilities of item ``index`` at the original image size."""
    return unletterbox(out.masks[index].float().cpu().numpy(), box)


def _spacings(value: Sequence[float | None] | float | None, n: int) -> list[float | None]:
    """One validated spacing (or None) per image; NaN or outside [0.01, 10] mm is an InputError."""
    from pcbm.validate import pixel_spacing

    if value is None or isinstance(value, int | float):
        return [None if value is None else pixel_spacing(value, "pixel_spacing_mm")] * n
    vals = list(value)
    if len(vals) != n:
        raise InputError(f"got {len(vals)} pixel spacings for {n} images")
    return [None if v is None else pixel_spacing(v, f"pixel_spacing_mm[{i}]") for i, v in enumerate(vals)]
