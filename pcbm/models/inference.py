"""Inference on numpy images: preprocessing to tensors, running a model, JSON-ready predictions.

Example:
    >>> import numpy as np
    >>> from pcbm.models import build_model, predict_images
    >>> model = build_model("tiny").eval()
    >>> [p] = predict_images(model, [np.zeros((60, 80), np.uint8)], pixel_spacing_mm=0.2)
    >>> sorted(p)[:4]
    ['image', 'measurements', 'missing_criteria', 'plane']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES, get_plane
from pcbm.data.preprocess import Letterbox, letterbox, unletterbox
from pcbm.errors import InputError
from pcbm.models.output import Intervention, PCBMOutput

_MEASURED = {"hc_mm": ("head", "hc"), "bpd_mm": ("head", "bpd"), "ofd_mm": ("head", "ofd"),
             "ac_mm": ("abdomen", "ac"), "fl_mm": ("femur", "fl")}


def to_input(images: Sequence[np.ndarray], size: int) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox uint8 images of any sizes into one (B, 1, size, size) float tensor (channels_last)."""
    arrays, boxes = zip(*(letterbox(im, size) for im in images), strict=True)
    x = torch.from_numpy(np.stack(arrays)[:, None])
    return x.contiguous(memory_format=torch.channels_last), list(boxes)


@torch.inference_mode()
def run_model(
    model: nn.Module,
    images: Sequence[np.ndarray],
    pixel_spacing_mm: Sequence[float | None] | float | None = None,
    intervention: Intervention | None = None,
) -> tuple[PCBMOutput, list[Letterbox]]:
    """Preprocess ``images`` and run ``model`` once on the batch."""
    x, boxes = to_input(images, model.input_size)
    x = x.to(next(model.parameters()).device)
    spacing = _spacings(pixel_spacing_mm, len(images))
    sp = torch.tensor([math.nan if s is None else float(s) for s in spacing], device=x.device)
    ls = torch.tensor([float(b.long_side) for b in boxes], device=x.device)
    if getattr(model, "concept_free", False):
        return model(x), boxes
    return model(x, intervention, pixel_spacing_mm=sp, long_side=ls), boxes


def predict_images(
    model: nn.Module,
    images: Sequence[np.ndarray],
    pixel_spacing_mm: Sequence[float | None] | float | None = None,
    names: Sequence[str] | None = None,
    intervention: Intervention | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """One JSON-ready dict per image: image, plane, plane_probs, status, standard, properties
    (null where not applicable), measurements (from the ellipse / segment fitted to the predicted
    mask at the original resolution; mm with a pixel spacing, px without) and missing_criteria."""
    spacing = _spacings(pixel_spacing_mm, len(images))
    names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        out, boxes = run_model(model, images[chunk], spacing[chunk], intervention)
        for j, box in enumerate(boxes):
            results.append(_to_dict(out, j, box, names[start + j], spacing[start + j],
                                    getattr(model, "concept_free", False)))
    return results


def original_masks(out: PCBMOutput, index: int, box: Letterbox) -> np.ndarray:
    """(V, H, W) mask probabilities of item ``index`` at the original image size."""
    return unletterbox(out.masks[index].float().cpu().numpy(), box)


def measurements(masks: np.ndarray, plane: str, pixel_spacing_mm: float | None) -> dict[str, float]:
    """Biometry of the predicted plane's structures from (V, H, W) original-size probabilities."""
    from pcbm.concepts.measure import measure

    wanted = get_plane(plane).measurements
    structures = {_MEASURED[m][0] for m in wanted}
    if not structures:
        return {}
    ms = {s: masks[VISUAL_CONCEPT_NAMES.index(s)] > 0.5 for s in structures}
    found = measure(ms, pixel_spacing_mm=pixel_spacing_mm)
    unit = "mm" if pixel_spacing_mm else "px"
    out = {}
    for m in wanted:
        key = _MEASURED[m][1]
        if key in found:
            out[f"{key}_{unit}"] = round(found[key].value, 2)
    return out


def _to_dict(out: PCBMOutput, j: int, box: Letterbox, name: str, spacing: float | None, concept_free: bool) -> dict:
    plane = PLANE_NAMES[int(out.plane_index[j])]
    probs = {p: round(float(v), 4) for p, v in zip(PLANE_NAMES, out.plane_probs[j].tolist(), strict=True)}
    props: dict[str, float | None] = {}
    meas: dict[str, float] = {}
    if not concept_free:
        for i, n in enumerate(PROPERTY_CONCEPT_NAMES):
            v = float(out.properties[j, i])
            props[n] = None if (not bool(out.applicable[j, i]) or math.isnan(v)) else round(v, 4)
        meas = measurements(original_masks(out, j, box), plane, spacing)
    return {"image": name, "plane": plane, "plane_probs": probs, "status": out.status[j],
            "standard": bool(out.standard[j]), "properties": props, "measurements": meas,
            "missing_criteria": list(out.missing[j])}


def _spacings(value: Sequence[float | None] | float | None, n: int) -> list[float | None]:
    """One validated spacing (or None) per image; NaN, 0, negative or > 10 mm is an InputError."""
    from pcbm.validate import pixel_spacing

    if value is None or isinstance(value, int | float):
        return [None if value is None else pixel_spacing(value, "pixel_spacing_mm")] * n
    vals = list(value)
    if len(vals) != n:
        raise InputError(f"got {len(vals)} pixel spacings for {n} images")
    return [None if v is None else pixel_spacing(v, f"pixel_spacing_mm[{i}]") for i, v in enumerate(vals)]
