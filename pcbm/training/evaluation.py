"""Evaluation on a dataset: plane, standardness, property and segmentation metrics, HC error in mm.

Masks are compared at the *original* image size (predictions are mapped back through the
letterbox) and HC is measured there, as in the HC18 challenge. A metric the data cannot support
(no plane labels, no HC, a model family without concepts) is None or absent — never a made-up zero.

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
    n = len(dataset) if limit is None else min(limit, len(dataset))
    scores: list[_PlaneScores | _ConceptScores | _MaskScores] = [_PlaneScores()]
    if model.family.has_concepts:
        scores += [_ConceptScores(), _MaskScores(model)]
    failed: list[dict[str, Any]] = []  # samples that could not be read: reported, the rest goes on
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        samples = _load(dataset, range(start, min(n, start + batch_size)), failed)
        if samples:
            out, boxes = run_model(model, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
            for j, s in enumerate(samples):
                for acc in scores:
                    acc.update(out, j, s, boxes[j])
        if progress is not None:
            progress(min(n, start + batch_size), n)
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {"n": n - len(failed), "n_failed": len(failed), "failed": failed}
    for acc in scores:
        result.update(acc.result())
    result["seconds_per_image"] = elapsed / max(n - len(failed), 1)
    return result


class _PlaneScores:
    """Plane macro-F1, balanced accuracy and confusion (samples with a plane label); standardness."""

    def __init__(self) -> None:
        k = len(PLANE_NAMES)
        self.f1, self.bacc = MulticlassF1Score(k, average="macro"), MulticlassRecall(k, average="macro")
        self.conf = MulticlassConfusionMatrix(k)
        self.seen = 0
        self.std_hits: list[bool] = []

    def update(self, out: Any, j: int, s: Any, box: Any) -> None:
        if s.plane in PLANE_NAMES:
            pred, t = out.plane_index[j : j + 1].cpu(), torch.tensor([PLANE_NAMES.index(s.plane)])
            for metric in (self.f1, self.bacc, self.conf):
                metric.update(pred, t)
            self.seen += 1
        if s.standard is not None:
            self.std_hits.append(bool(out.standard[j]) == bool(s.standard))

    def result(self) -> dict[str, Any]:
        seen = self.seen > 0
        return {
            "plane_macro_f1": float(self.f1.compute()) if seen else None,
            "plane_balanced_accuracy": float(self.bacc.compute()) if seen else None,
            "plane_confusion": {"labels": list(PLANE_NAMES), "matrix": self.conf.compute().tolist()} if seen else None,
            "standard_accuracy": float(np.mean(self.std_hits)) if self.std_hits else None,
        }


class _ConceptScores:
    """Binary property accuracy/AUROC and continuous property (measurement) absolute error."""

    def __init__(self) -> None:
        self.pred: dict[str, list[float]] = defaultdict(list)
        self.true: dict[str, list[float]] = defaultdict(list)
        self.err: dict[str, list[float]] = defaultdict(list)

    def update(self, out: Any, j: int, s: Any, box: Any) -> None:
        props = complete_properties(s)
        for i, name in enumerate(PROPERTY_CONCEPT_NAMES):
            v = props.get(name)
            if v is None:
                continue
            p = float(out.properties[j, i])
            if name in BINARY_PROPERTIES:
                self.pred[name].append(p)
                self.true[name].append(float(v >= 0.5))
            elif not math.isnan(p):
                self.err[name].append(abs(p - float(v)))

    def result(self) -> dict[str, Any]:
        all_p = [x for name in self.pred for x in self.pred[name]]
        all_t = [x for name in self.true for x in self.true[name]]
        return {
            "property_accuracy": (float(np.mean((np.array(all_p) >= 0.5) == (np.array(all_t) >= 0.5)))
                                  if all_p else None),
            "properties": {name: _binary_stats(self.pred[name], self.true[name]) for name in BINARY_PROPERTIES
                           if self.pred[name]},
            "measurement_mae_mm": {name: float(np.mean(self.err[name])) for name in CONTINUOUS_PROPERTIES
                                   if self.err[name]},
        }


#: HC bands (mm) of the biometry figures: first-trimester heads, between, late heads (often cut by the sector)
HC_BANDS = (("<100", 0.0, 100.0), ("100-200", 100.0, 200.0), (">200", 200.0, math.inf))


class _MaskScores:
    """Dice per labelled structure and HC error (mm), both at the original image size; the head is
    the model's head refiner's where one is attached (what predict and the report measure on)."""

    def __init__(self, model: Any = None) -> None:
        self.model = model
        self.dice: dict[str, list[float]] = defaultdict(list)
        self.hc: list[tuple[float, float, bool]] = []  # (error, true HC, reliable)

    def update(self, out: Any, j: int, s: Any, box: Any) -> None:
        labelled = [c for c in s.masks if c in VISUAL_CONCEPT_NAMES]
        if not labelled:
            return
        idx = [VISUAL_CONCEPT_NAMES.index(c) for c in labelled]
        probs = dict(zip(labelled, unletterbox(out.masks[j, idx].float().cpu().numpy(), box), strict=True))
        if "head" in probs:
            probs["head"] = self._refine(s.image, probs["head"])
        for c, pm in probs.items():
            gt = np.asarray(s.masks[c]) > 0
            if gt.any():
                pr = pm > 0.5
                self.dice[c].append(2.0 * float((pr & gt).sum()) / float(pr.sum() + gt.sum()))
        hc_true = s.properties.get("hc_mm")
        if "head" in probs and hc_true is not None and s.pixel_spacing_mm:
            hc, reliable = hc_of_mask(probs["head"], s.pixel_spacing_mm)
            self.hc.append((abs(hc - float(hc_true)), float(hc_true), reliable))

    def _refine(self, image: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The head redrawn by the model's head refiner (as predict does), or ``head`` without one."""
        if getattr(self.model, "head_refiner", None) is None:
            return head
        from pcbm.models.inference import pipeline_of

        return pipeline_of(self.model).refine_head(np.asarray(image), head)

    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "dice": {c: float(np.mean(self.dice[c])) for c in VISUAL_CONCEPT_NAMES if self.dice[c]},
            "hc_mae_mm": float(np.mean([e for e, _, _ in self.hc])) if self.hc else None,
        }
        if self.hc:
            result.update(hc_summary(*map(np.array, zip(*self.hc, strict=True))))
        return result


def hc_summary(errors: np.ndarray, true_hc: np.ndarray, reliable: np.ndarray) -> dict[str, Any]:
    """HC error figures: n, median, p95, max; the share flagged unreliable, the MAE and max of the
    rest (what a user is shown as a number); MAE per HC band (:data:`HC_BANDS`).

    Example:
        >>> d = hc_summary(np.array([1.0, 2.0, 30.0]), np.array([90.0, 150.0, 250.0]), np.array([True, True, False]))
        >>> d["hc_flagged_share"], d["hc_mae_reliable_mm"], d["hc_by_band"][">200"]
        (0.333, 1.5, {'n': 1, 'mae_mm': 30.0})
    """
    e, t, ok = (np.asarray(errors, float), np.asarray(true_hc, float), np.asarray(reliable, bool))
    bands = {name: {"n": int(m.sum()), "mae_mm": round(float(e[m].mean()), 3)}
             for name, lo, hi in HC_BANDS if (m := (t >= lo) & (t < hi)).any()}
    return {"hc_n": len(e), "hc_median_mm": float(np.median(e)), "hc_p95_mm": float(np.percentile(e, 95)),
            "hc_max_mm": float(e.max()), "hc_flagged_share": round(float(1 - ok.mean()), 3),
            "hc_mae_reliable_mm": float(e[ok].mean()) if ok.any() else None,
            "hc_max_reliable_mm": float(e[ok].max()) if ok.any() else None, "hc_by_band": bands}


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


def hc_of_mask(prob: np.ndarray, spacing: float) -> tuple[float, bool]:
    """HC (mm) of the robust ellipse fitted to the predicted head mask and whether the fit is
    reliable (:func:`pcbm.concepts.measure.measure`); (0, False) when nothing is segmented."""
    from pcbm.concepts.measure import measure

    m = prob > 0.5
    if not m.any():
        return 0.0, False
    try:
        found = measure({"head": m}, pixel_spacing_mm=spacing).get("hc")
    except ValueError:  # a degenerate mask
        return 0.0, False
    return (found.value, found.reliable) if found is not None else (0.0, False)


def _binary_stats(pred: list[float], true: list[float]) -> dict[str, float | int | None]:
    p, t = torch.tensor(pred), torch.tensor(true)
    acc = float(((p >= 0.5).float() == t).float().mean())
    auroc = float(BinaryAUROC()(p, t.long())) if 0 < float(t.sum()) < len(t) else None
    return {"accuracy": acc, "auroc": auroc, "n": len(pred)}
