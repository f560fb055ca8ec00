"""What a navigation policy reads from one frame: property concepts and mask statistics (numpy only).

The features are named, so a policy's decisions can be read back as words
(:mod:`pcbm.navigation.wording`). Positions are in image coordinates: ``x`` from -1 (left edge) to
1 (right edge), ``y`` from 0 (top) to 1 (bottom); inner structures are placed relative to the
centre of the structure that holds them (head, abdomen), in units of its radius.

Example:
    >>> import numpy as np
    >>> m = np.zeros((15, 64, 64), np.float32); m[0, 20:40, 10:30] = 1  # a head left of centre
    >>> f = frame_features({"head_visible": 1.0}, m)
    >>> float(f[FRAME_FEATURES.index("head_visible")]), round(float(f[FRAME_FEATURES.index("head_cx")]), 2)
    (1.0, -0.39)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from pcbm.concepts.ontology import VISUAL_CONCEPT_NAMES

#: binary property concepts read as they are (probabilities; None counts as 0)
PROPERTY_FEATURES: tuple[str, ...] = (
    "head_visible", "head_complete", "head_magnified", "head_symmetric", "csp_visible", "thalamus_visible",
    "cerebellum_visible", "lateral_ventricle_visible", "abdomen_visible", "abdomen_round", "abdomen_magnified",
    "stomach_visible", "umbilical_vein_visible", "kidney_visible", "spine_visible", "femur_visible",
    "femur_ends_visible", "femur_horizontal", "femur_magnified", "heart_visible", "heart_magnified",
)
#: outer structures: area (share of the image), centre, extent, axis ratio
OUTER: tuple[str, ...] = ("head", "abdomen", "femur", "heart")
_OUTER_STATS = ("area", "cx", "cy", "left", "right", "bottom", "ratio")
#: inner structures and their holder: offset of the centre from the holder's, in its radius
INNER: dict[str, str] = {"csp": "head", "thalamus": "head", "cerebellum": "head", "lateral_ventricle": "head",
                         "stomach": "abdomen", "umbilical_vein": "abdomen", "kidney": "abdomen", "spine": "abdomen"}
_INNER_STATS = ("dx", "dy")
#: the midline: its shift across the head (in head radii) and its turn from the head's long axis (deg);
#: the femur: its signed angle to the horizontal (deg, positive = right end lower)
EXTRA: tuple[str, ...] = ("falx_shift", "falx_turn", "femur_angle")

FRAME_FEATURES: tuple[str, ...] = (
    *PROPERTY_FEATURES,
    *(f"{s}_{k}" for s in OUTER for k in _OUTER_STATS),
    *(f"{s}_{k}" for s in INNER for k in _INNER_STATS),
    *EXTRA,
)
#: the moves a "last move" feature can name (stay and no history: all zero)
LAST_MOVES: tuple[str, ...] = ("along+", "along-", "across+", "across-", "tilt+", "tilt-", "rotate+", "rotate-")
#: the frame's features, their change since the frame before the last move (``d_*``), the last move (``last_*``)
FEATURE_NAMES: tuple[str, ...] = (*FRAME_FEATURES, *(f"d_{n}" for n in FRAME_FEATURES),
                                  *(f"last_{m}" for m in LAST_MOVES))
_IDX = {n: i for i, n in enumerate(VISUAL_CONCEPT_NAMES)}
#: masks larger than this (px, longer side) are read at a stride, to keep a hint to a few milliseconds
MASK_SIDE = 256


def _moments(m: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """(cx, cy, major-axis angle deg in (-90, 90], axis ratio, pixel count) of a bool mask, or None if empty."""
    ys, xs = np.nonzero(m)
    if len(xs) < 2:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    cov = np.cov(np.stack([xs - cx, ys - cy]))
    lam, vec = np.linalg.eigh(cov + np.eye(2) * 1e-6)
    ang = math.degrees(math.atan2(vec[1, 1], vec[0, 1]))
    ang = (ang + 90.0) % 180.0 - 90.0
    return cx, cy, ang, float(math.sqrt(lam[0] / lam[1])), float(len(xs))


def _turn(a: float, b: float) -> float:
    return (a - b + 90.0) % 180.0 - 90.0


def present_flag(feature: str) -> str | None:
    """The ``*_visible`` feature that says whether ``feature``'s structure is in view (None for a
    property or a last move): a statistic of an absent structure is 0 and means nothing."""
    base = feature[2:] if feature.startswith("d_") else feature
    if base in PROPERTY_FEATURES or base.startswith("last_"):
        return None
    if base.startswith("falx_"):
        return "head_visible"
    structure = base.rpartition("_")[0]
    return f"{structure}_visible" if f"{structure}_visible" in PROPERTY_FEATURES else None


def features(current: np.ndarray, previous: np.ndarray | None = None, last_move: str | None = None) -> np.ndarray:
    """(F,) :data:`FEATURE_NAMES` from this frame's :func:`frame_features` and, when known, those of
    the frame before the last move and that move (without them the change is 0 and no move is set)."""
    d = np.zeros_like(current) if previous is None else current - previous
    last = np.array([float(m == last_move) for m in LAST_MOVES], np.float32)
    return np.concatenate([current, d, last])


def frame_features(properties: Mapping[str, float | None], masks: np.ndarray | None) -> np.ndarray:
    """(F0,) features in :data:`FRAME_FEATURES` order from property values and (V, H, W) mask
    probabilities (``VISUAL_CONCEPT_NAMES`` order; None: the mask statistics are 0)."""
    f = np.zeros(len(FRAME_FEATURES), np.float32)
    for i, n in enumerate(PROPERTY_FEATURES):
        v = properties.get(n)
        f[i] = 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    if masks is None:
        return f
    step = max(1, -(-max(np.shape(masks)[1:]) // MASK_SIDE))  # large frames: every step-th pixel is enough
    masks = np.asarray(masks)[:, ::step, ::step] > 0.5  # (V, H / step, W / step)
    h, w = masks.shape[1:]
    out: dict[str, float] = {}
    mom: dict[str, tuple[float, float, float, float, float] | None] = {}
    for s in OUTER:
        m = masks[_IDX[s]]
        mo = mom[s] = _moments(m)
        if mo is None:
            continue
        cols, rows = np.nonzero(m.any(0))[0], np.nonzero(m.any(1))[0]
        out.update({f"{s}_area": mo[4] / (h * w), f"{s}_cx": 2 * mo[0] / w - 1, f"{s}_cy": mo[1] / h,
                    f"{s}_left": 2 * cols[0] / w - 1, f"{s}_right": 2 * cols[-1] / w - 1,
                    f"{s}_bottom": rows[-1] / h, f"{s}_ratio": mo[3]})
    for s, holder in INNER.items():
        mo, ho = _moments(masks[_IDX[s]]), mom.get(holder)
        if mo is None or ho is None:
            continue
        r = math.sqrt(ho[4] / math.pi)
        out[f"{s}_dx"], out[f"{s}_dy"] = (mo[0] - ho[0]) / r, (mo[1] - ho[1]) / r
    fx, ho = _moments(masks[_IDX["falx"]]), mom.get("head")
    if fx is not None and ho is not None:
        t = math.radians(fx[2])
        normal = np.array([-math.sin(t), math.cos(t)])  # points down the image
        out["falx_shift"] = float(np.array([fx[0] - ho[0], fx[1] - ho[1]]) @ normal) / math.sqrt(ho[4] / math.pi)
        out["falx_turn"] = _turn(fx[2], ho[2])
    if mom.get("femur") is not None:
        out["femur_angle"] = mom["femur"][2]  # type: ignore[index]
    for k, v in out.items():
        f[FRAME_FEATURES.index(k)] = v
    return f
