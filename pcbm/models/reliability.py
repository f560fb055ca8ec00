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

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fit = rng.normal(size=(400, 3))
    >>> g = GaussianScore.fit(fit)
    >>> bool(g.score(np.zeros((1, 3)))[0] < g.score(np.full((1, 3), 6.0))[0])
    True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.errors import InputError

FILE = "reliability.json"  # beside model.pt in a run directory: load_model attaches it
REASON = "unlike the training data"
FORMAT = 1
#: what a frame is described by: the concept vector, mask statistics, the decision's certainty, the encoder
FEATURE_GROUPS = ("concepts", "mask_area", "mask_certainty", "decision", "encoder")
ECE_BINS = 15


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


@dataclass
class GaussianScore:
    """A Gaussian fitted to (N, F) features: ``score`` = Mahalanobis distance / sqrt(F).

    Features are standardised first (constant ones get unit scale), and the covariance is shrunk
    towards the identity (``shrinkage``), so a few hundred frames suffice for a few hundred features.
    """

    mean: np.ndarray
    scale: np.ndarray
    whiten: np.ndarray  # (F, F): z @ whiten has identity covariance under the fit
    shrinkage: float = 0.01

    @classmethod
    def fit(cls, x: np.ndarray, shrinkage: float = 0.01) -> GaussianScore:
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise InputError(f"fitting the out-of-distribution score needs at least 2 frames, got {len(x)}")
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 1e-6, scale, 1.0)
        z = (x - mean) / scale
        cov = (1 - shrinkage) * np.cov(z, rowvar=False) + shrinkage * np.eye(z.shape[1])
        vals, vecs = np.linalg.eigh(cov)
        whiten = vecs / np.sqrt(np.clip(vals, 1e-6, None))
        return cls(mean, scale, whiten, shrinkage)

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return np.linalg.norm(z @ self.whiten, axis=1) / math.sqrt(len(self.mean))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the arrays as base64 float32 (a 445-feature whitening matrix is 1 MB, not 4)."""
        return {"mean": _pack(self.mean), "scale": _pack(self.scale), "whiten": _pack(self.whiten),
                "shrinkage": self.shrinkage}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GaussianScore:
        mean, scale, whiten = _unpack(d["mean"]), _unpack(d["scale"]), _unpack(d["whiten"])
        f = len(mean)
        if mean.ndim != 1 or scale.shape != (f,) or whiten.shape != (f, f):
            raise ValueError(f"gaussian arrays of shapes {mean.shape}, {scale.shape}, {whiten.shape} do not fit together")
        return cls(mean, scale, whiten, float(d["shrinkage"]))


def _pack(a: np.ndarray) -> dict[str, Any]:
    import base64

    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: Any) -> np.ndarray:
    import base64
    import binascii

    if isinstance(d, list):  # plain JSON numbers
        return np.asarray(d, np.float64)
    try:
        raw = base64.b64decode(d["base64"], validate=True)
        return np.frombuffer(raw, dtype="<f4").reshape(d["shape"]).astype(np.float64)
    except (KeyError, TypeError, binascii.Error) as e:
        raise ValueError(f"a malformed array ({e})") from None


def frame_features(out: Any, groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
    """(B, F) float features of a batch's :class:`~pcbm.models.output.PCBMOutput` (see :func:`features_of`)."""
    def arr(t: Any) -> np.ndarray | None:
        return None if t is None else t.detach().float().cpu().numpy()

    return features_of(arr(out.concept_inputs), arr(out.masks), arr(out.plane_probs), arr(out.features), groups)


def features_of(concept_inputs: np.ndarray, masks: np.ndarray, plane_probs: np.ndarray, encoder: np.ndarray | None,
                groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
    """(B, F) features from arrays (numpy only: the torch path and the runtime share it), in ``groups`` order.

    concepts: the decision's input vector (B, P); mask_area: each visual concept's share of the frame
    above 0.5 (masks (B, V, S, S) probabilities at the model's resolution); mask_certainty: its mean
    |2p − 1| where p > 0.1 (a sure mask is near 1, a hazy one near 0); decision: the top plane
    probability and the entropy; encoder: the encoder's pooled bottleneck (B, C).
    """
    parts = []
    m = None if masks is None else np.asarray(masks, np.float32)
    for g in groups:
        if g == "concepts":
            parts.append(np.asarray(concept_inputs, np.float64))
        elif g == "mask_area":
            parts.append((m > 0.5).mean((2, 3)))
        elif g == "mask_certainty":
            soft = m > 0.1
            parts.append((np.abs(m - 0.5) * 2 * soft).sum((2, 3)) / np.maximum(soft.sum((2, 3)), 1))
        elif g == "decision":
            p = np.asarray(plane_probs, np.float64)
            parts.append(np.stack([p.max(1), -(p * np.log(np.maximum(p, 1e-8))).sum(1)], 1))
        elif g == "encoder":
            if encoder is None:
                raise InputError("this model's output has no encoder features for the out-of-distribution score")
            parts.append(np.asarray(encoder, np.float64))
        else:
            raise InputError(f"unknown feature group {g!r}; choose from {', '.join(FEATURE_GROUPS)}")
    return np.concatenate(parts, 1).astype(np.float64)


@dataclass
class Reliability:
    """A model's temperature and out-of-distribution score (see the module docstring)."""

    temperature: float = 1.0
    groups: tuple[str, ...] = FEATURE_GROUPS
    gaussian: GaussianScore | None = None
    threshold: float = math.inf
    quantile: float = 0.99
    fitted: dict[str, Any] = field(default_factory=dict)  # data, sizes, ECE before/after, false alarms

    def score(self, out: Any) -> np.ndarray:
        """(B,) out-of-distribution scores of a batch's output (0 without a fitted Gaussian)."""
        if self.gaussian is None:
            return np.zeros(out.plane_probs.shape[0])
        return self.gaussian.score(frame_features(out, self.groups))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "temperature": self.temperature, "groups": list(self.groups),
                "threshold": self.threshold, "quantile": self.quantile, "fitted": self.fitted,
                "gaussian": None if self.gaussian is None else self.gaussian.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "reliability") -> Reliability:
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}, expected {FORMAT}")
            t = float(d["temperature"])
            if not t > 0:
                raise ValueError(f"temperature {t} is not positive")
            groups = tuple(d["groups"])
            bad = [g for g in groups if g not in FEATURE_GROUPS]
            if bad:
                raise ValueError(f"unknown feature groups {bad}")
            gauss = None if d.get("gaussian") is None else GaussianScore.from_dict(d["gaussian"])
            return cls(t, groups, gauss, float(d["threshold"]), float(d.get("quantile", 0.99)), dict(d.get("fitted", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"cannot read {where}: not a pcbm reliability file ({e})") from None

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the JSON whole (a temporary file renamed onto ``path``); an existing file only with ``overwrite``."""
        p = Path(path)
        if p.exists() and not overwrite:
            raise InputError(f"{p} exists; pass --overwrite to replace it")
        tmp = p.with_name(p.name + ".partial")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return p


def load_reliability(path: str | os.PathLike[str]) -> Reliability:
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {p}: {e}") from None
    if not isinstance(d, dict):
        raise InputError(f"cannot read {p}: not a pcbm reliability file (not a JSON object)")
    return Reliability.from_dict(d, str(p))


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


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


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
    for spec in specs:
        a = collect(model, open_dataset(spec, split="train", val_fraction=0.5), per_source, groups=groups,
                    progress=progress)
        b = collect(model, open_dataset(spec, split="val", val_fraction=0.5), per_source, groups=groups,
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
        "ece_before": round(expected_calibration_error(_softmax(logits[has]), labels[has]), 4),
        "ece_after": round(expected_calibration_error(_softmax(logits[has] / t), labels[has]), 4),
        "features": int(x_fit.shape[1]),
    }
    return Reliability(t, tuple(groups), gauss, threshold, quantile, fitted)
