"""Calibrated probabilities and "unlike the training data", the numpy part (no torch): what a model's
``reliability.json`` holds and how a frame is scored against it — shared by the torch path
(:mod:`pcbm.training.calibration`, which fits it) and the torch-free runtime (:mod:`pcbm.runtime`).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> g = GaussianScore.fit(rng.normal(size=(400, 3)))
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

FILE = "reliability.json"  # beside model.pt in a run directory (and in an exported package)
REASON = "unlike the training data"
FORMAT = 1
#: what a frame is described by: the concept vector, mask statistics, the decision's certainty, the encoder
FEATURE_GROUPS = ("concepts", "mask_area", "mask_certainty", "decision", "encoder")


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


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits (numpy; the runtime and the calibration fit share it)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def frame_features(out: Any, groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
    """(B, F) features of a batch's :class:`~pcbm.models.output.PCBMOutput` (its tensors read as arrays;
    see :func:`features_of`)."""
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
        return self.score_features(frame_features(out, self.groups))

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """(B,) scores of (B, F) features from :func:`features_of` (0 without a fitted Gaussian)."""
        x = np.asarray(features, np.float64)
        return np.zeros(len(x)) if self.gaussian is None else self.gaussian.score(x)

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
        from pcbm._io import atomic_open

        with atomic_open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.to_dict(), indent=1) + "\n")
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
