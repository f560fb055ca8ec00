"""The one prediction record (numpy only): what the torch path (:func:`pcbm.models.predict`) and the
torch-free runtime (:class:`pcbm.runtime.Engine`) both return, and what ``pcbm predict`` prints.

:func:`make_prediction` turns a frame's arrays (plane probabilities, property values, applicability,
the ontology check, masks at the original size) into a :class:`Prediction`; ``to_dict()`` is the
JSON record (``masks`` only on request, as they are large).

Example:
    >>> import numpy as np
    >>> from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
    >>> probs = np.full(len(PLANE_NAMES), 0.01); probs[PLANE_NAMES.index("other")] = 0.93
    >>> p = make_prediction("frame_0", probs, np.zeros(len(PROPERTY_CONCEPT_NAMES)),
    ...                     np.zeros(len(PROPERTY_CONCEPT_NAMES), bool), "not_a_known_plane", False, [], None, None)
    >>> p.plane, p.to_dict()["properties"]["hc_mm"]
    ('other', None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES


@dataclass
class Prediction:
    """One frame's decision and its evidence.

    Attributes:
        image: the frame's name.
        plane, plane_probs: the predicted plane and every plane's (calibrated) probability.
        status: "standard", "close_to_standard" or "not_a_known_plane"; ``standard`` its flag.
        missing_criteria: the predicted plane's failed ISUOG criteria (property names).
        properties: property concept -> value (probability; mm for lengths), None where not applicable.
        applicable: property concept -> whether its structure's family is in view.
        measurements: HC / BPD / OFD / AC / FL by name, each with its fit quality
            (:meth:`pcbm.concepts.measure.Measurement.to_dict`).
        status_reason: why the status is not_a_known_plane when the probabilities alone do not say
            ("unlike the training data"), else None.
        reliability: the out-of-distribution score, its threshold and the temperature, or None.
        masks: (V, H, W) mask probabilities at the original size (float32), when asked for.
        model: the model's identity (name, version, sha256) when known.
        extra: anything a model family adds (a reference classifier's own classes).
        measured: the measurements themselves (:class:`~pcbm.concepts.measure.Measurement`, full
            precision) and ``measurement_notes`` why one was not taken; what a concept report shows.
        navigation: the next probe move toward a standard plane (``move``, ``target_plane``,
            ``reason``; :func:`pcbm.navigation.hint`), only when asked for; None otherwise.
    """

    image: str
    plane: str
    plane_probs: dict[str, float]
    status: str
    standard: bool
    missing_criteria: list[str]
    properties: dict[str, float | None] = field(default_factory=dict)
    applicable: dict[str, bool] = field(default_factory=dict)
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_reason: str | None = None
    reliability: dict[str, Any] | None = None
    masks: np.ndarray | None = None
    model: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    measured: list[Any] = field(default_factory=list, repr=False)
    measurement_notes: list[str] = field(default_factory=list, repr=False)
    navigation: dict[str, Any] | None = None

    def to_dict(self, masks: bool = False) -> dict[str, Any]:
        """The JSON record (``pcbm predict``'s line); ``masks`` adds each structure found as a share of
        the frame (the arrays themselves stay in :attr:`masks`)."""
        d: dict[str, Any] = {
            "image": self.image, "plane": self.plane, "plane_probs": dict(self.plane_probs), "status": self.status,
            "standard": self.standard, "properties": dict(self.properties), "measurements": dict(self.measurements),
            "missing_criteria": list(self.missing_criteria), "status_reason": self.status_reason,
            "reliability": self.reliability,
        }
        if self.model is not None:
            d["model"] = dict(self.model)
        d.update(self.extra)
        if self.navigation is not None:
            d["navigation"] = dict(self.navigation)
        if masks and self.masks is not None:
            d["structures"] = {n: round(float((self.masks[i] > 0.5).mean()), 5)
                               for i, n in enumerate(VISUAL_CONCEPT_NAMES) if (self.masks[i] > 0.5).any()}
        return d


def make_prediction(
    name: str,
    plane_probs: np.ndarray,
    properties: np.ndarray,
    applicable: np.ndarray,
    status: str,
    standard: bool,
    missing: Sequence[str],
    masks: np.ndarray | dict[str, np.ndarray] | None,
    pixel_spacing_mm: float | None,
    status_reason: str | None = None,
    reliability: dict[str, Any] | None = None,
    keep_masks: bool = False,
    model: dict[str, Any] | None = None,
    has_concepts: bool = True,
) -> Prediction:
    """A :class:`Prediction` from one frame's arrays.

    Args:
        plane_probs: (K,) probabilities in ``PLANE_NAMES`` order.
        properties: (P,) values: probabilities for binary concepts, mm for lengths (NaN unknown).
        applicable: (P,) bool.
        masks: (V, H, W) probabilities at the original size, what the measurements are taken on
            (the head refined, where a refiner ran), or a dict of some structures' (H, W) maps (those
            :func:`~pcbm.concepts.measure.biometry_structures` names suffice); None without concepts.
        pixel_spacing_mm: mm per original pixel, or None (lengths in px).
    """
    from pcbm.concepts.measure import biometry

    probs = np.asarray(plane_probs, np.float64)
    plane = PLANE_NAMES[int(probs.argmax())]
    props: dict[str, float | None] = {}
    appl: dict[str, bool] = {}
    meas: dict[str, dict[str, Any]] = {}
    rows: list[Any] = []
    why: list[str] = []
    if has_concepts:
        for i, n in enumerate(PROPERTY_CONCEPT_NAMES):
            v = float(properties[i])
            appl[n] = bool(applicable[i])
            props[n] = None if (not appl[n] or math.isnan(v)) else round(v, 4)
        if masks is not None:
            by_name = dict(masks) if isinstance(masks, dict) else {s: masks[i] for i, s in enumerate(VISUAL_CONCEPT_NAMES)}
            rows, why = biometry(by_name, plane, pixel_spacing_mm)
            meas = {m.name: m.to_dict() for m in rows}
    return Prediction(
        image=name, plane=plane, plane_probs={p: round(float(v), 4) for p, v in zip(PLANE_NAMES, probs, strict=True)},
        status=status, standard=bool(standard), missing_criteria=list(missing), properties=props, applicable=appl,
        measurements=meas, status_reason=status_reason, reliability=reliability,
        masks=np.asarray(masks, np.float32) if keep_masks and masks is not None and not isinstance(masks, dict) else None,
        model=model, measured=list(rows), measurement_notes=list(why),
    )
