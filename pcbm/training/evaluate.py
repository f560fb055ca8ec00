"""Evaluation on a dataset: plane, standardness, property and segmentation metrics, HC error in mm.

Masks are compared at the *original* image size (predictions are mapped back through the
letterbox) and HC is measured there, as in the HC18 challenge. A metric the data cannot support
(no plane labels, no HC, a concept-free model) is None or absent — never a made-up zero.

Example:
    >>> from pcbm.models import build_model
    >>> from pcbm.data import open_dataset
    >>> m = evaluate(build_model("tiny").eval(), open_dataset("phantom:n=4,size=64"))  # doctest: +SKIP
    >>> sorted(m)[:3]  # doctest: +SKIP
    ['dice', 'hc_mae_mm', 'measurement_mae_mm']
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC, MulticlassConfusionMatrix, MulticlassF1Score, MulticlassRecall

from pcbm.concepts import (
    BINARY_PROPERTIES,
    CONTINUOUS_PROPERTIES,
    PLANE_NAMES,
    PROPERTY_CONCEPT_NAMES,
    VISUAL_CONCEPT_NAMES,
)
from pcbm.data import SampleDataset
from pcbm.data.preprocess import unletterbox
from pcbm.models.inference import run_model
from pcbm.training.data import complete_properties


def evaluate(
    model: nn.Module,
    dataset: SampleDataset,
    batch_size: int = 8,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` (see the module docstring for the keys)."""
    model.eval()
    concept_free = getattr(model, "concept_free", False)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    k = len(PLANE_NAMES)
    f1, bacc = MulticlassF1Score(k, average="macro"), MulticlassRecall(k, average="macro")
    conf = MulticlassConfusionMatrix(k)
    planes_seen = 0
    std_hits: list[bool] = []
    prop_pred: dict[str, list[float]] = defaultdict(list)
    prop_true: dict[str, list[float]] = defaultdict(list)
    meas_err: dict[str, list[float]] = defaultdict(list)
    dice: dict[str, list[float]] = defaultdict(list)
    hc_err: list[float] = []
    failed: list[dict[str, Any]] = []  # samples that could not be read: reported, the rest goes on
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        samples = _load(dataset, range(start, min(n, start + batch_size)), failed)
        if not samples:
            continue
        out, boxes = run_model(model, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
        pred_plane = out.plane_index.cpu()
        for j, s in enumerate(samples):
            if s.plane in PLANE_NAMES:
                t = torch.tensor([PLANE_NAMES.index(s.plane)])
                f1.update(pred_plane[j : j + 1], t)
                bacc.update(pred_plane[j : j + 1], t)
                conf.update(pred_plane[j : j + 1], t)
                planes_seen += 1
            if s.standard is not None:
                std_hits.append(bool(out.standard[j]) == bool(s.standard))
            if concept_free:
                continue
            props = complete_properties(s)
            for i, name in enumerate(PROPERTY_CONCEPT_NAMES):
                v = props.get(name)
                if v is None:
                    continue
                p = float(out.properties[j, i])
                if name in BINARY_PROPERTIES:
                    prop_pred[name].append(p)
                    prop_true[name].append(float(v >= 0.5))
                elif not math.isnan(p):
                    meas_err[name].append(abs(p - float(v)))
            labelled = [c for c in s.masks if c in VISUAL_CONCEPT_NAMES]
            if labelled:
                idx = [VISUAL_CONCEPT_NAMES.index(c) for c in labelled]
                probs = unletterbox(out.masks[j, idx].float().cpu().numpy(), boxes[j])
                for c, pm in zip(labelled, probs, strict=True):
                    gt = np.asarray(s.masks[c]) > 0
                    if gt.any():
                        pr = pm > 0.5
                        dice[c].append(2.0 * float((pr & gt).sum()) / float(pr.sum() + gt.sum()))
                hc_true = s.properties.get("hc_mm")
                if "head" in labelled and hc_true is not None and s.pixel_spacing_mm:
                    hc_err.append(abs(_hc_mm(probs[labelled.index("head")], s.pixel_spacing_mm) - float(hc_true)))
        if progress is not None:
            progress(min(n, start + batch_size), n)
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {
        "n": n - len(failed),
        "n_failed": len(failed),
        "failed": failed,
        "plane_macro_f1": float(f1.compute()) if planes_seen else None,
        "plane_balanced_accuracy": float(bacc.compute()) if planes_seen else None,
        "plane_confusion": {"labels": list(PLANE_NAMES), "matrix": conf.compute().tolist()} if planes_seen else None,
        "standard_accuracy": float(np.mean(std_hits)) if std_hits else None,
        "seconds_per_image": elapsed / max(n - len(failed), 1),
    }
    if concept_free:
        return result
    all_p = [x for name in prop_pred for x in prop_pred[name]]
    all_t = [x for name in prop_true for x in prop_true[name]]
    result["property_accuracy"] = (
        float(np.mean((np.array(all_p) >= 0.5) == (np.array(all_t) >= 0.5))) if all_p else None
    )
    result["properties"] = {name: _binary_stats(prop_pred[name], prop_true[name]) for name in BINARY_PROPERTIES
                            if prop_pred[name]}
    result["measurement_mae_mm"] = {name: float(np.mean(meas_err[name])) for name in CONTINUOUS_PROPERTIES
                                    if meas_err[name]}
    result["dice"] = {c: float(np.mean(dice[c])) for c in VISUAL_CONCEPT_NAMES if dice[c]}
    result["hc_mae_mm"] = float(np.mean(hc_err)) if hc_err else None
    if hc_err:
        result["hc_n"] = len(hc_err)
    return result


def _load(dataset: SampleDataset, indices: range, failed: list[dict[str, Any]]) -> list[Any]:
    """The samples at ``indices``; one that cannot be read (InputError) is noted in ``failed`` and left out."""
    from pcbm.errors import InputError

    samples = []
    for i in indices:
        try:
            samples.append(dataset[i])
        except InputError as e:
            failed.append({"index": i, "error": str(e)})
    return samples


def _hc_mm(prob: np.ndarray, spacing: float) -> float:
    """HC (mm) of the ellipse fitted to the predicted head mask; 0 when nothing is segmented."""
    from pcbm.concepts.measure import fit_ellipse

    m = prob > 0.5
    if not m.any():
        return 0.0
    return fit_ellipse(m).perimeter * spacing


def _binary_stats(pred: list[float], true: list[float]) -> dict[str, float | int | None]:
    p, t = torch.tensor(pred), torch.tensor(true)
    acc = float(((p >= 0.5).float() == t).float().mean())
    auroc = float(BinaryAUROC()(p, t.long())) if 0 < float(t.sum()) < len(t) else None
    return {"accuracy": acc, "auroc": auroc, "n": len(pred)}
