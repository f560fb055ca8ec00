"""The one prediction pipeline (numpy only): what a prediction means, written once.

A frame goes letterbox → ``segment`` → (visual intervention) → ``properties`` → property values
(sigmoid of the binary logits) → (property intervention) → applicability (a property counts only
when its family's anchor, e.g. ``head_visible``, is ≥ 0.5) → ``decide`` → softmax(logits /
temperature) → the ontology check (:func:`pcbm.concepts.assess.assess`) → "unlike the training data"
(:mod:`pcbm.reliability`) → masks back at the original size, the head redrawn by ``refine``
(:func:`pcbm.data.crops.refine_loop`) → measurements → a :class:`~pcbm.prediction.Prediction`.

The network steps are a :class:`Stages` object underneath: ``OnnxStages`` (a model package in
onnxruntime, :mod:`pcbm.runtime.engine`) or ``TorchStages`` (a PCBM in torch,
:mod:`pcbm.models.stages`). Everything else is here, so the torch path (:func:`pcbm.models.predict`)
and the package path (:class:`pcbm.runtime.Engine`) agree by construction. Importing this module never
imports torch.

Example:
    >>> import numpy as np
    >>> iv = Intervention(visual={"kidney": 0.0}, properties={"cerebellum_visible": 1.0})
    >>> Intervention.coerce({"properties": {"csp_visible": 0}}).properties
    {'csp_visible': 0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPTS, VISUAL_CONCEPT_NAMES, anchor_of, get_property_concept
from pcbm.concepts.assess import assess
from pcbm.concepts.measure import biometry_structures
from pcbm.data.crops import crop, refine_loop, uncrop
from pcbm.data.preprocess import Letterbox, letterbox, unletterbox
from pcbm.errors import InputError
from pcbm.prediction import Prediction, make_prediction
from pcbm.reliability import REASON, Reliability, features_of, softmax

_PROPERTY_NAMES = [c.name for c in PROPERTY_CONCEPTS]
_CONT = np.array([i for i, c in enumerate(PROPERTY_CONCEPTS) if not c.binary])
_BIN = np.array([i for i, c in enumerate(PROPERTY_CONCEPTS) if c.binary])
_ANCHORS = [anchor_of(c.name) for c in PROPERTY_CONCEPTS]
_ANCHOR_MASK = np.array([a is not None for a in _ANCHORS])
_ANCHOR_IDX = np.array([_PROPERTY_NAMES.index(a) if a is not None else 0 for a in _ANCHORS])
REFINE_CHOICES = (True, False, "standard")


@dataclass
class Intervention:
    """Corrections a person makes to the concepts before the later stages run (both paths take it).

    Attributes:
        visual: visual concept name -> replacement mask. A float sets the whole channel to that
            probability (0.0 erases the structure); an (H, W) or (B, H, W) array (or tensor) of
            probabilities at the model's input size replaces it (to erase or paint a region).
        properties: property concept name -> value (probability for binary concepts, mm for
            continuous ones). Applied after the property head, before the decision layer.

    Example:
        >>> Intervention(visual={"kidney": 0.0}, properties={"cerebellum_visible": 1.0})
        Intervention(visual={'kidney': 0.0}, properties={'cerebellum_visible': 1.0})
    """

    visual: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.visual or self.properties)

    @classmethod
    def coerce(cls, value: Any) -> Intervention | None:
        """None, an Intervention, an Intervention-like object or a ``{"visual", "properties"}`` dict."""
        if value is None or isinstance(value, Intervention):
            return value
        if isinstance(value, Mapping):
            return cls(dict(value.get("visual") or {}), dict(value.get("properties") or {}))
        return cls(dict(getattr(value, "visual", {}) or {}), dict(getattr(value, "properties", {}) or {}))


@dataclass(frozen=True)
class RefinerSpec:
    """The head refiner's crop: side in refiner pixels, margin around the head, mirrored-crop TTA."""

    size: int
    margin: float
    flip_tta: bool = True


@runtime_checkable
class Stages(Protocol):
    """The network steps of a PCBM, whatever runs them (onnxruntime or torch).

    Attributes:
        size: the model's input side S (frames are letterboxed to S × S).
        identity: name, version, sha256 and source of the model (what a record names).
        temperature: the plane logits' divisor (1 without calibration).
        reliability: the fitted out-of-distribution score, or None.
        min_confidence: top plane probability below which a frame is not a known plane.
        refiner: the head refiner's crop, or None without a refiner.
    """

    size: int
    identity: dict[str, Any]
    temperature: float
    reliability: Reliability | None
    min_confidence: float
    refiner: RefinerSpec | None

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 1, S, S) float32 in [0, 1] -> mask logits (B, V, S, S), pooled encoder features (B, C)."""

    def properties(self, masks: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Mask probabilities (B, V, S, S) and the image -> (B, P) property logits / normalised lengths."""

    def decide(self, values: np.ndarray) -> np.ndarray:
        """(B, P) property values -> (B, K) plane logits, before the temperature."""

    def refine(self, crops: np.ndarray) -> np.ndarray:
        """(N, 1, R, R) float32 head crops -> (N, 1, R, R) head logits (only with a refiner)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function as torch computes it, without exp overflow for large negative logits."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x << 0 gives exactly 0, as it should
        return 1.0 / (1.0 + np.exp(-x))


def check_frame(image: Any, name: str) -> np.ndarray:
    """``image`` as an array, checked to be what the graphs take: a non-empty 2-D uint8 frame."""
    a = np.asarray(image)
    if a.ndim != 2 or a.dtype != np.uint8 or a.size == 0:
        raise InputError(f"image {name!r} must be a non-empty 2-D uint8 array, got shape {a.shape} dtype {a.dtype}")
    return a


@dataclass
class Frames:
    """A batch after the network steps, before the records: what :meth:`Pipeline.run` returns.

    ``masks`` (B, V, S, S) probabilities after any visual intervention; ``values`` (B, P) what the
    decision and the ontology check read (binary probabilities, normalised lengths); ``properties``
    the same with lengths in mm (NaN where not applicable or without a spacing); ``concept_inputs``
    the decision's input (continuous zeroed where not applicable); ``plane_logits`` before the
    temperature, ``plane_probs`` after it; ``reliability`` per frame (None without a fitted score).
    """

    boxes: list[Letterbox]
    spacing: list[float | None]
    masks: np.ndarray
    pooled: np.ndarray
    values: np.ndarray
    properties: np.ndarray
    applicable: np.ndarray
    concept_inputs: np.ndarray
    plane_logits: np.ndarray
    plane_probs: np.ndarray
    standard: np.ndarray
    status: list[str]
    missing: list[list[str]]
    reasons: list[str | None]
    reliability: list[dict[str, Any] | None]


class Pipeline:
    """Frames -> :class:`~pcbm.prediction.Prediction` over any :class:`Stages` (see the module docstring)."""

    def __init__(self, stages: Stages):
        self.stages = stages

    # what the stages say of the model, read through the pipeline (an Engine's ``engine.reliability``, ...)
    size = property(lambda self: int(self.stages.size), doc="The model's input side S.")
    identity = property(lambda self: self.stages.identity, doc="Name, version, sha256 and source of the model.")
    temperature = property(lambda self: float(self.stages.temperature), doc="The plane logits' divisor.")
    reliability = property(lambda self: self.stages.reliability, doc="The out-of-distribution score, or None.")
    min_confidence = property(lambda self: float(self.stages.min_confidence), doc="Below it: not a known plane.")

    # ---- prediction -----------------------------------------------------------------------------
    def predict(self, image: np.ndarray, pixel_spacing_mm: float | None = None, intervention: Any = None,
                name: str = "image", keep_masks: bool = False, refine_head: bool | str = True) -> Prediction:
        """The :class:`~pcbm.prediction.Prediction` of one uint8 (H, W) frame (see :meth:`predict_batch`)."""
        return self.predict_batch([image], [pixel_spacing_mm], intervention, [name], keep_masks, refine_head)[0]

    def predict_batch(self, images: Sequence[np.ndarray], pixel_spacing_mm: Sequence[float | None] | None = None,
                      intervention: Any = None, names: Sequence[str] | None = None,
                      keep_masks: bool = False, refine_head: bool | str = True) -> list[Prediction]:
        """Predictions of several frames in one pass through each stage.

        ``refine_head``: redraw the head with the head refiner before measuring — always (True),
        never (False), or only on frames whose status is standard (``"standard"``: where a head
        measurement is shown live; the refiner costs more than the rest of the path)."""
        if refine_head not in REFINE_CHOICES:
            raise InputError(f"refine_head must be True, False or 'standard', not {refine_head!r}")
        if not images:
            return []
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
        frames = self.run(images, pixel_spacing_mm, intervention, names)
        return [self.record(frames, j, images[j], names[j], keep_masks, refine_head) for j in range(len(images))]

    def run(self, images: Sequence[np.ndarray], pixel_spacing_mm: Sequence[float | None] | None = None,
            intervention: Any = None, names: Sequence[str] | None = None) -> Frames:
        """The network steps and the decision of a batch (:class:`Frames`), no records yet."""
        from pcbm.validate import pixel_spacing

        spacing = list(pixel_spacing_mm) if pixel_spacing_mm is not None else [None] * len(images)
        if len(spacing) != len(images):
            raise InputError(f"{len(images)} images but {len(spacing)} pixel spacings")
        spacing = [None if s is None else pixel_spacing(s, f"pixel_spacing_mm[{i}]") for i, s in enumerate(spacing)]
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
        arrays, boxes = [], []
        for i, im in enumerate(images):
            x, box = letterbox(check_frame(im, names[i]), self.size)
            arrays.append(x)
            boxes.append(box)
        x = np.stack(arrays)[:, None].astype(np.float32)  # (B, 1, S, S)
        mask_logits, pooled = self.stages.segment(x)
        masks = sigmoid(np.asarray(mask_logits, np.float32))
        iv = Intervention.coerce(intervention)
        if iv is not None and iv.visual:
            masks = apply_visual(masks, iv.visual)
        prop_logits = self.stages.properties(masks.astype(np.float32), x)
        values = np.asarray(prop_logits, np.float64).copy()
        values[:, _BIN] = sigmoid(values[:, _BIN])
        long_side = np.array([float(b.long_side) for b in boxes])
        sp = np.array([math.nan if s is None else float(s) for s in spacing])
        scale = sp * long_side  # mm per unit of normalised length
        if iv is not None and iv.properties:
            values = apply_properties(values, iv.properties, scale)
        applicable = (values[:, _ANCHOR_IDX] >= 0.5) | ~_ANCHOR_MASK
        concept_inputs = values.copy()
        cont = concept_inputs[:, _CONT]
        concept_inputs[:, _CONT] = np.where(applicable[:, _CONT], np.nan_to_num(cont), 0.0)
        plane_logits = np.asarray(self.stages.decide(values.astype(np.float32)), np.float64)
        probs = softmax(plane_logits / self.temperature)
        standard, status, missing = assess(probs, values, self.min_confidence)
        props = values.copy()
        props[:, _CONT] = np.where(applicable[:, _CONT], values[:, _CONT] * scale[:, None], np.nan)
        reasons: list[str | None] = [None] * len(images)
        rel_fields: list[dict[str, Any] | None] = [None] * len(images)
        rel = self.reliability
        if rel is not None and rel.gaussian is not None:
            scores = rel.score_features(features_of(concept_inputs, masks, probs, pooled, rel.groups))
            for j, s in enumerate(scores.tolist()):
                flagged = s > rel.threshold
                if flagged:
                    status[j], missing[j], reasons[j] = "not_a_known_plane", [], REASON
                    standard[j] = False
                rel_fields[j] = {"ood_score": round(s, 4), "threshold": round(rel.threshold, 4),
                                 "unlike_training_data": bool(flagged), "temperature": round(self.temperature, 4)}
        return Frames(boxes, spacing, masks, np.asarray(pooled), values, props, applicable, concept_inputs,
                      plane_logits, probs, standard, status, missing, reasons, rel_fields)

    def record(self, frames: Frames, j: int, image: np.ndarray, name: str, keep_masks: bool = False,
               refine_head: bool | str = True) -> Prediction:
        """Frame ``j`` of ``frames`` as a :class:`~pcbm.prediction.Prediction`: its masks back at the
        original size (all of them with ``keep_masks``, else only what its plane's biometry reads),
        the head redrawn by the refiner as ``refine_head`` says, the measurements taken on them."""
        box, standard = frames.boxes[j], bool(frames.standard[j])
        refine = refine_head is True or (refine_head == "standard" and standard)
        image = np.asarray(image)
        if keep_masks:
            full: Any = unletterbox(frames.masks[j], box)  # (V, H, W)
            if refine:
                full = self.refine_masks(image, full)
        else:
            plane = PLANE_NAMES[int(frames.plane_probs[j].argmax())]
            need = [VISUAL_CONCEPT_NAMES.index(n) for n in biometry_structures(plane)]
            full = {VISUAL_CONCEPT_NAMES[c]: unletterbox(frames.masks[j, c:c + 1], box)[0] for c in need}
            if "head" in full and refine:
                full["head"] = self.refine_head(image, full["head"])
        return make_prediction(name, frames.plane_probs[j], frames.properties[j], frames.applicable[j],
                               frames.status[j], standard, frames.missing[j], full, frames.spacing[j],
                               frames.reasons[j], frames.reliability[j], keep_masks, self.identity)

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The (V, S, S) mask probabilities of one uint8 (H, W) frame at the model's input size and its
        letterbox (what a box edit in image pixels is mapped through)."""
        x, box = letterbox(check_frame(image, "image"), self.size)
        logits, _ = self.stages.segment(x[None, None].astype(np.float32))
        return sigmoid(np.asarray(logits[0], np.float32)), box

    # ---- the head refiner ------------------------------------------------------------------------
    def refine_masks(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(V, H, W) original-size masks with the head redrawn by :meth:`refine_head`; unchanged
        when there is nothing to redraw."""
        k = VISUAL_CONCEPT_NAMES.index("head")
        coarse = masks[k]
        head = self.refine_head(image, coarse)
        if head is coarse:
            return masks
        out = masks.copy()
        out[k] = head
        return out

    def refine_head(self, image: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The head probability (H, W) redrawn by the refiner; ``head`` itself without one or a head."""
        spec = self.stages.refiner
        if spec is None or not (head > 0.5).any():
            return head
        stages = self.stages

        def prob_of(box: Any) -> np.ndarray:
            x = crop(image, box, spec.size)[None, None].astype(np.float32)
            if spec.flip_tta:
                logits = np.asarray(stages.refine(np.concatenate([x, x[..., ::-1].copy()])))
                p = (sigmoid(logits[0, 0]) + sigmoid(logits[1, 0])[:, ::-1]) / 2
            else:
                p = sigmoid(np.asarray(stages.refine(x))[0, 0])
            return uncrop(p.astype(np.float32), box, image.shape[:2])

        prob = refine_loop(image, prob_of, head > 0.5, None, spec.margin)
        return head if prob is None else prob


def apply_visual(masks: np.ndarray, visual: Mapping[str, Any]) -> np.ndarray:
    """(B, V, S, S) masks with the named channels replaced (a float everywhere, or a map resized to S × S)."""
    import cv2

    masks = masks.copy()
    for name, value in visual.items():
        if name not in VISUAL_CONCEPT_NAMES:
            from pcbm.concepts import get_visual_concept

            get_visual_concept(name)  # an unknown concept: the error names the closest ones
        c = VISUAL_CONCEPT_NAMES.index(name)
        if np.ndim(value) == 0:
            masks[:, c] = float(value)
        else:
            v = np.asarray(value, np.float32)
            if v.shape[-2:] != masks.shape[-2:]:
                size = masks.shape[-2:][::-1]
                v = np.stack([cv2.resize(a, size, interpolation=cv2.INTER_LINEAR) for a in v.reshape(-1, *v.shape[-2:])])
                v = v.reshape(*np.shape(value)[:-2], *masks.shape[-2:])
            masks[:, c] = v
    return masks


def apply_properties(values: np.ndarray, props: Mapping[str, float], scale: np.ndarray) -> np.ndarray:
    """(B, P) values with the named properties set (binary: a probability; lengths: mm, needs a spacing)."""
    values = values.copy()
    for name, value in props.items():
        concept = get_property_concept(name)
        if concept.binary:
            values[:, concept.index] = float(value)
        else:
            if np.isnan(scale).any():
                raise InputError(f"intervening on {name} (mm) needs pixel_spacing_mm")
            values[:, concept.index] = float(value) / scale
    return values


__all__ = ["Frames", "Intervention", "Pipeline", "RefinerSpec", "Stages", "apply_properties", "apply_visual",
           "check_frame", "sigmoid"]
