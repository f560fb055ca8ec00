"""Interventions on one image: set or erase a visual concept (a whole structure or a box), set a
property concept, and see the decision before and after.

Example:
    >>> from pcbm.models import load_model  # doctest: +SKIP
    >>> model, _ = load_model("default")  # doctest: +SKIP
    >>> r = intervene(model, "tt.png", set={"cerebellum_visible": 1}, erase=["kidney"])  # doctest: +SKIP
    >>> print(r)  # doctest: +SKIP
    before: trans_thalamic — standard (97%)
    after:  trans_thalamic — close to standard (95%); missing: cerebellum_visible = no
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PropertyConcept, get_concept, get_plane
from pcbm.errors import InputError
from pcbm.explain.build import ImageLike, describe_intervention, load_image
from pcbm.explain.report import STATUS_LABELS

Box = tuple[float, float, float, float]
RegionEdit = str | tuple[str, Box]


@dataclass
class DecisionSummary:
    """The decision for one image: plane, status, confidence and the failed criteria."""

    plane: str
    status: str
    confidence: float
    missing: list[str] = field(default_factory=list)
    plane_probs: dict[str, float] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)

    @property
    def standard(self) -> bool:
        return self.status == "standard"

    def missing_text(self) -> list[str]:
        crit = {c.property: c for c in get_plane(self.plane).criteria}
        return [crit[m].describe() if m in crit else m for m in self.missing]

    def __str__(self) -> str:
        s = f"{self.plane} — {STATUS_LABELS[self.status]} ({self.confidence:.0%})"
        if self.missing and self.status != "not_a_known_plane":
            s += "; missing: " + ", ".join(self.missing_text())
        return s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the decision and the property values it was made from (not applicable: null)."""
        from pcbm._io import jsonable

        return jsonable({"plane": self.plane, "status": self.status, "confidence": self.confidence,
                         "missing": list(self.missing), "plane_probs": self.plane_probs,
                         "properties": {n: (None if not math.isfinite(v) else round(float(v), 4))
                                        for n, v in self.properties.items()}})


def _summary(pred: Any) -> DecisionSummary:
    """The decision part of a :class:`~pcbm.prediction.Prediction` (properties not applicable: NaN)."""
    return DecisionSummary(
        pred.plane, pred.status, float(max(pred.plane_probs.values())), list(pred.missing_criteria),
        dict(pred.plane_probs),
        {n: (math.nan if v is None else float(v)) for n, v in pred.properties.items()},
    )


def _decide(model: Any, image: np.ndarray, pixel_spacing_mm: float | None, intervention: Any) -> Any:
    """The :class:`~pcbm.prediction.Prediction` of one image on the one pipeline (package or torch)."""
    from pcbm.predictor import as_pipeline

    return as_pipeline(model).predict(image, pixel_spacing_mm, intervention)


@dataclass
class InterventionResult:
    """The decision before and after a set of corrections.

    Attributes:
        before, after: the two decisions.
        corrections: one line per correction applied.
        intervention: the :class:`pcbm.models.Intervention` that was run.
    """

    before: DecisionSummary
    after: DecisionSummary
    corrections: list[str]
    intervention: Any = None

    @property
    def changed(self) -> bool:
        """True when the plane or the status changed."""
        return (self.before.plane, self.before.status) != (self.after.plane, self.after.status)

    def property_changes(self, min_delta: float = 0.05) -> dict[str, tuple[float, float]]:
        """Property concepts whose value moved by at least ``min_delta``: name -> (before, after)."""
        out = {}
        for n, b in self.before.properties.items():
            a = self.after.properties.get(n, b)
            if np.isfinite(a) and np.isfinite(b) and abs(a - b) >= min_delta:
                out[n] = (b, a)
        return out

    def __str__(self) -> str:
        lines = ["corrections: " + ("; ".join(self.corrections) or "none"), f"before: {self.before}",
                 f"after:  {self.after}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and inf: null, so the output is strict JSON)."""
        from pcbm._io import jsonable

        return jsonable({"corrections": self.corrections, "before": self.before.to_dict(),
                         "after": self.after.to_dict(), "changed": self.changed,
                         "property_changes": {k: list(v) for k, v in self.property_changes().items()}})

    def plot(self, ax: Any = None) -> Any:
        """Plane probabilities before and after, side by side."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3))
        x = np.arange(len(PLANE_NAMES))
        ax.bar(x - 0.2, [self.before.plane_probs[p] for p in PLANE_NAMES], 0.4, label=f"before: {self.before.status}")
        ax.bar(x + 0.2, [self.after.plane_probs[p] for p in PLANE_NAMES], 0.4, label=f"after: {self.after.status}")
        ax.set_xticks(x, PLANE_NAMES, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("probability")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("; ".join(self.corrections)[:80], fontsize=9)
        return ax


MAX_LENGTH_MM = 1000.0  # a fetal length set by hand above 1 m is a typo, not a measurement


def _check_value(name: str, value: Any, concept: Any) -> float:
    if isinstance(value, str):
        low = value.strip().lower()
        mapping = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
        if low in mapping:
            value = mapping[low]
        else:
            try:
                value = float(low)
            except ValueError:
                raise InputError(f"bad value {value!r} for {name}: expected a number, yes/no or true/false") from None
    from pcbm.validate import finite

    v = finite(value, f"value for {name}")
    binary = not isinstance(concept, PropertyConcept) or concept.binary
    if binary and not 0.0 <= v <= 1.0:
        raise InputError(f"value for {name} must be a probability in [0, 1], got {v:g}")
    if not binary and not 0 < v <= MAX_LENGTH_MM:
        raise InputError(f"value for {name} must be a positive length in mm (at most {MAX_LENGTH_MM:g}), got {v:g}")
    return v


def _check_box(name: str, box: Sequence[float], shape: tuple[int, int]) -> Box:
    if len(box) != 4:
        raise InputError(f"box for {name} must be x0,y0,x1,y1 (4 numbers), got {box!r}")
    x0, y0, x1, y1 = (float(b) for b in box)
    h, w = shape
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError(f"box {x0:g},{y0:g},{x1:g},{y1:g} for {name} must satisfy 0 <= x0 < x1 <= {w} and "
                         f"0 <= y0 < y1 <= {h} (image pixels)")
    return x0, y0, x1, y1


def _box_in_model_frame(box: Box, lb: Any) -> np.ndarray:
    m = np.zeros((lb.size, lb.size), np.float32)
    x0, y0, x1, y1 = box
    c0 = int(np.floor(lb.left + x0 * lb.scale))
    c1 = int(np.ceil(lb.left + x1 * lb.scale))
    r0 = int(np.floor(lb.top + y0 * lb.scale))
    r1 = int(np.ceil(lb.top + y1 * lb.scale))
    m[r0:r1, c0:c1] = 1.0
    return m


def _regions(items: Iterable[RegionEdit] | None, what: str) -> list[tuple[str, Box | None]]:
    out = []
    for it in items or []:
        if isinstance(it, str):
            out.append((it, None))
        elif isinstance(it, (tuple, list)) and len(it) == 2 and isinstance(it[0], str):
            out.append((it[0], tuple(it[1])))  # type: ignore[arg-type]
        else:
            raise InputError(f"bad {what} item {it!r}: give a visual concept name or (name, (x0, y0, x1, y1))")
    return out


def build_intervention(
    model: Any,
    image: np.ndarray,
    set: Mapping[str, Any] | None = None,
    erase: Iterable[RegionEdit] | None = None,
    paint: Iterable[RegionEdit] | None = None,
    pixel_spacing_mm: float | None = None,
) -> Any:
    """The :class:`~pcbm.pipeline.Intervention` :func:`intervene` runs (either path takes it), from names."""
    visual: dict[str, float | np.ndarray] = {}
    props: dict[str, float] = {}
    for name, value in (set or {}).items():
        concept = get_concept(name)  # KeyError with did-you-mean
        v = _check_value(name, value, concept)
        if isinstance(concept, PropertyConcept):
            if not concept.binary and not pixel_spacing_mm:
                raise InputError(f"setting {name} (mm) needs the pixel spacing (--pixel-spacing)")
            props[name] = v
        else:
            visual[name] = v
    edits = [(n, b, 0.0) for n, b in _regions(erase, "erase")] + [(n, b, 1.0) for n, b in _regions(paint, "paint")]
    current = None
    for name, box, value in edits:
        concept = get_concept(name)
        if isinstance(concept, PropertyConcept):
            raise InputError(f"{name} is a property concept: set it (--set {name}=0) instead of erasing/painting it")
        if box is None:
            visual[name] = value
            continue
        if current is None:
            current = _model_frame_masks(model, image)
        masks, lb = current
        region = _box_in_model_frame(_check_box(name, box, image.shape), lb)
        c = concept.index
        base = visual.get(name, masks[c])
        base = np.full_like(masks[c], float(base)) if np.ndim(base) == 0 else np.asarray(base, np.float32)
        visual[name] = base * (1 - region) + value * region
    from pcbm.pipeline import Intervention

    return Intervention(visual=visual, properties=props)


def _model_frame_masks(model: Any, image: np.ndarray) -> tuple[np.ndarray, Any]:
    """The (V, S, S) masks at the model's input size and the letterbox, on either path."""
    from pcbm.predictor import as_pipeline

    return as_pipeline(model).segment(image)


def intervene(
    model: Any,
    image: ImageLike,
    set: Mapping[str, Any] | None = None,
    erase: Iterable[RegionEdit] | None = None,
    paint: Iterable[RegionEdit] | None = None,
    pixel_spacing_mm: float | None = None,
) -> InterventionResult:
    """Correct concepts of one image and recompute what follows.

    Args:
        model: a PCBM, or a :class:`pcbm.runtime.Engine` (a model package: the same result, no torch).
        image: a uint8 (H, W) array, a :class:`~pcbm.data.Sample`, an image file or a DICOM file.
        set: concept name -> value. A property concept takes a probability (binary; yes/no work
            too) or mm (continuous, needs ``pixel_spacing_mm``); a visual concept takes a
            probability for its whole mask (0 erases the structure).
        erase: visual concepts to erase: a name (the whole structure) or (name, (x0, y0, x1, y1))
            for a box in image pixels.
        paint: (name, box) regions where the structure is declared present.
        pixel_spacing_mm: mm per pixel (needed to set a measurement); default: the sample's or
            the file's, when known.

    Raises:
        KeyError: an unknown concept name (with a did-you-mean suggestion).
        InputError: a bad value or box.
    """
    from pcbm.predictor import require_concepts

    require_concepts(model, "an intervention")  # a package always has concepts (export refuses the others)
    img, _, _, spacing, _ = load_image(image)
    pixel_spacing_mm = pixel_spacing_mm or spacing
    iv = build_intervention(model, img, set, erase, paint, pixel_spacing_mm)
    before = _decide(model, img, pixel_spacing_mm, None)
    after = _decide(model, img, pixel_spacing_mm, iv)
    corrections = describe_intervention(iv)
    for name, box, verb in [(n, b, "erased") for n, b in _regions(erase, "erase")] + [
            (n, b, "painted") for n, b in _regions(paint, "paint")]:
        if box is not None:
            corrections = [c for c in corrections if not c.startswith(f"{name}: mask replaced")]
            corrections.append(f"{name}: {verb} in box {','.join(f'{v:g}' for v in box)}")
    return InterventionResult(_summary(before), _summary(after), corrections, iv)


def parse_intervention(sets: Sequence[str] = (), erases: Sequence[str] = ()) -> dict[str, Any]:
    """Parse CLI corrections into :func:`intervene` keyword arguments.

    ``--set NAME=VALUE`` (``csp_visible=1``, ``cerebellum_visible=no``, ``kidney=0``,
    ``csp@x0,y0,x1,y1=1`` paints a box); ``--erase NAME`` or ``--erase NAME@x0,y0,x1,y1``.

    Example:
        >>> parse_intervention(["csp_visible=1"], ["kidney", "head@0,0,10,20"])
        {'set': {'csp_visible': '1'}, 'erase': ['kidney', ('head', (0.0, 0.0, 10.0, 20.0))], 'paint': []}
    """
    out: dict[str, Any] = {"set": {}, "erase": [], "paint": []}
    for item in sets:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise InputError(f"bad --set {item!r}: expected NAME=VALUE, e.g. csp_visible=1")
        name, box = _split_box(name.strip())
        get_concept(name)
        if box is None:
            _check_value(name, value.strip(), get_concept(name))  # a bad value fails before the model loads
            out["set"][name] = value.strip()
        else:
            if _check_value(name, value, get_concept(name)) not in (0.0, 1.0):
                raise InputError(f"a box edit sets the structure present (1) or absent (0), got {value!r}")
            out["paint" if float(value) == 1.0 else "erase"].append((name, box))
    for item in erases:
        name, box = _split_box(item.strip())
        get_concept(name)
        out["erase"].append(name if box is None else (name, box))
    return out


def _split_box(text: str) -> tuple[str, Box | None]:
    name, at, rest = text.partition("@")
    if not at:
        return name, None
    try:
        nums = tuple(float(v) for v in rest.split(","))
    except ValueError:
        raise InputError(f"bad box {rest!r} in {text!r}: expected x0,y0,x1,y1 in image pixels") from None
    if len(nums) != 4:
        raise InputError(f"bad box {rest!r} in {text!r}: expected 4 numbers x0,y0,x1,y1")
    return name, nums  # type: ignore[return-value]
