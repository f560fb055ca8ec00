"""Calibrated plane probabilities and an honest "I don't know": temperature scaling and an
out-of-distribution score, fitted per model and kept in ``reliability.json`` beside ``model.pt``.

* **Temperature** (Guo et al., ICML 2017): the decision's plane logits are divided by one scalar
  ``T`` fitted on held-out labelled images (negative log-likelihood); the plane (the arg-max) is
  unchanged, its probability is honest. Expected calibration error (ECE, 15 bins, torchmetrics) is
  recorded before and after.
* **Unlike the training data** (Mahalanobis distance, Lee et al., NeurIPS 2018): a frame is
  described by what the model itself computed on it — the concept vector the decision read, each
  visual concept's predicted area and how sure its mask is, the plane probabilities' peak and
  entropy, and the segmenter encoder's pooled features (:data:`FEATURE_GROUPS`). A Gaussian with a
  shrunk covariance is fitted to frames from the model's training distribution; the score is the
  Mahalanobis distance divided by the square root of the dimension, and the threshold is a high
  quantile of held-out in-distribution frames' scores. Above it the status is
  ``not_a_known_plane`` with the reason :data:`REASON`, whatever the plane's probability.

``pcbm calibrate RUN --data SPEC…`` fits both (:func:`fit_reliability`); :func:`pcbm.models.load_model`
attaches the file when it sits beside the model. Without one, probabilities are the raw softmax and
nothing is flagged. The fit, its data, the held-out false-alarm rate and the ECE go into the file.

The arrays-only part (the file's format, :class:`GaussianScore`, :func:`features_of`) lives in
:mod:`pcbm.reliability`, which the torch-free runtime imports; this module adds what needs torch.

Example:
    >>> import numpy as np
    >>> t = fit_temperature(np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]]), np.array([0, 1, 1, 0]))
    >>> t > 1  # 3 of 4 right at ~98 % confidence: too sure, so the logits are softened
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcbm.errors import InputError
from pcbm.reliability import (
    FEATURE_GROUPS,
    FILE,
    FORMAT,
    REASON,
    GaussianScore,
    Reliability,
    features_of,
    frame_features,
    load_reliability,
    softmax,
)

__all__ = ["ECE_BINS", "FEATURE_GROUPS", "FILE", "FORMAT", "HALVES_SEED", "REASON", "GaussianScore", "Reliability",
           "collect", "expected_calibration_error", "features_of", "fit_reliability", "fit_temperature",
           "frame_features", "load_reliability"]

ECE_BINS = 15
HALVES_SEED = 0  # the subject split of each calibration source into its fitting and held-out halves


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE (L1, equal-width bins) of (N, K) probabilities against (N,) labels (torchmetrics)."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    p, y = torch.as_tensor(np.asarray(probs, np.float32)), torch.as_tensor(np.asarray(labels, np.int64))
    if len(y) == 0:
        return math.nan
    return float(multiclass_calibration_error(p, y, num_classes=p.shape[1], n_bins=bins, norm="l1"))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) on (N, K) logits, (N,) labels."""
    import torch

    z, y = torch.as_tensor(np.asarray(logits, np.float64)), torch.as_tensor(np.asarray(labels, np.int64))
    if len(y) < 2:
        raise InputError("fitting a temperature needs at least 2 labelled held-out images")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def collect(model: Any, dataset: Any, limit: int | None = None, batch_size: int = 8,
            groups: Sequence[str] = FEATURE_GROUPS, progress: Any = None) -> dict[str, np.ndarray]:
    """Run ``model`` (raw: its reliability detached for the pass) over a dataset's first ``limit`` items:
    ``logits`` (N, K), ``labels`` (N,) (-1 without a plane label), ``features`` (N, F)."""
    from pcbm.concepts import PLANE_NAMES
    from pcbm.models.inference import run_model

    n = len(dataset) if limit is None else min(limit, len(dataset))
    kept = model.reliability
    model.attach_reliability(None)
    logits, labels, feats = [], [], []
    try:
        for start in range(0, n, batch_size):
            samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
            out, _ = run_model(model, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
            logits.append(out.plane_logits.float().cpu().numpy())
            labels += [PLANE_NAMES.index(s.plane) if s.plane in PLANE_NAMES else -1 for s in samples]
            feats.append(frame_features(out, groups))
            if progress is not None:
                progress(len(samples))
    finally:
        model.attach_reliability(kept)
    k = len(PLANE_NAMES)
    return {"logits": np.concatenate(logits) if logits else np.zeros((0, k)), "labels": np.asarray(labels, np.int64),
            "features": np.concatenate(feats) if feats else np.zeros((0, 0))}


def fit_reliability(model: Any, specs: Sequence[str], per_source: int = 400, quantile: float = 0.99,
                    groups: Sequence[str] = FEATURE_GROUPS, shrinkage: float = 0.01, progress: Any = None
                    ) -> Reliability:
    """Fit the temperature and the out-of-distribution score of ``model`` on data of its training distribution.

    Each spec is split by subject (half and half, split seed 0): the Gaussian is fitted on the first
    halves, the temperature (on the items with a plane label) and the threshold (the ``quantile``
    of the scores) on the second; at most ``per_source`` items of each half. The held-out ECE
    before and after, and the held-out share flagged per source, are recorded in ``fitted``.

    Raises:
        InputError: a model without concepts, no data, or no plane label among the held-out items.
    """
    from pcbm.data import open_dataset

    if not model.family.has_concepts:
        raise InputError(f"pcbm calibrate fits PCBMs; model family {model.family.name!r} has no concepts")
    if not specs:
        raise InputError("pcbm calibrate needs data of the model's training distribution (--data SPEC)")
    if not 0.5 < quantile < 1:
        raise InputError(f"the threshold quantile must be in (0.5, 1), got {quantile}")
    fit, held, per = [], [], {}
    from pcbm.data.base import Subset

    for spec in specs:
        ds = open_dataset(spec)  # the spec's own split (e.g. a run's training split) first, then halves of it
        a = collect(model, Subset(ds, ds.split_indices("train", 0.5, HALVES_SEED)), per_source, groups=groups,
                    progress=progress)
        b = collect(model, Subset(ds, ds.split_indices("val", 0.5, HALVES_SEED)), per_source, groups=groups,
                    progress=progress)
        fit.append(a)
        held.append(b)
        per[spec] = {"fit": len(a["labels"]), "heldout": len(b["labels"])}
    x_fit = np.concatenate([f["features"] for f in fit])
    gauss = GaussianScore.fit(x_fit, shrinkage)
    logits = np.concatenate([h["logits"] for h in held])
    labels = np.concatenate([h["labels"] for h in held])
    has = labels >= 0
    if has.sum() < 2:
        raise InputError("pcbm calibrate: fewer than 2 held-out images with a plane label; give labelled data")
    t = fit_temperature(logits[has], labels[has])
    scores = [gauss.score(h["features"]) for h in held]
    threshold = float(np.quantile(np.concatenate(scores), quantile))
    for spec, s in zip(specs, scores, strict=True):
        per[spec]["heldout_flagged"] = round(float((s > threshold).mean()), 4) if len(s) else None
    fitted = {
        "data": list(specs), "sources": per, "per_source": per_source, "split": "subject halves, split seed 0",
        "heldout_labelled": int(has.sum()),
        "ece_before": round(expected_calibration_error(softmax(logits[has]), labels[has]), 4),
        "ece_after": round(expected_calibration_error(softmax(logits[has] / t), labels[has]), 4),
        "features": int(x_fit.shape[1]),
    }
    return Reliability(t, tuple(groups), gauss, threshold, quantile, fitted)
