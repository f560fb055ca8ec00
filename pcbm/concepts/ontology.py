"""The concept ontology: visual concepts, property concepts and planes, declared once as data.

Everything in pcbm — the phantom, the loaders, the model's heads, the reports and the tests —
reads the concept lists from here. Adding a concept is one entry in a tuple below.

Example:
    >>> from pcbm.concepts import get_concept, get_plane
    >>> get_concept("csp_visible").derived_from
    ('csp',)
    >>> [c.property for c in get_plane("trans_thalamic").criteria][:2]
    ['head_complete', 'head_magnified']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pcbm.errors import InputError, unknown_name

Kind = Literal["binary", "continuous"]


@dataclass(frozen=True)
class VisualConcept:
    """A structure that is segmented: one channel of the segmenter's output."""

    name: str
    description: str
    color: tuple[int, int, int]  # RGB used for overlays in reports and contact sheets
    group: str  # anatomical family: head, abdomen, femur, thorax, cervix

    @property
    def index(self) -> int:
        """Channel index of this concept in every mask tensor."""
        return VISUAL_CONCEPT_NAMES.index(self.name)


@dataclass(frozen=True)
class PropertyConcept:
    """A landmark or quality attribute derived from the visual concepts."""

    name: str
    kind: Kind  # binary (probability of True) or continuous (a measurement)
    group: str  # plane family it belongs to: head, abdomen, femur, thorax, cervix or any
    derived_from: tuple[str, ...]  # visual concepts it is measured from
    isuog: str  # the guideline wording (or plain meaning) the concept stands for
    unit: str | None = None  # "mm" for measurements; None for binary concepts

    @property
    def index(self) -> int:
        """Position of this concept in every property vector."""
        return PROPERTY_CONCEPT_NAMES.index(self.name)

    @property
    def binary(self) -> bool:
        return self.kind == "binary"


@dataclass(frozen=True)
class Criterion:
    """One ISUOG criterion of a standard plane: a binary property and the value it must take."""

    property: str
    expected: bool = True

    def describe(self) -> str:
        """Human wording, e.g. 'cerebellum_visible = no'."""
        return f"{self.property} = {'yes' if self.expected else 'no'}"

    def met(self, value: float | bool | None, threshold: float = 0.5) -> bool | None:
        """Whether a property value (bool or probability) meets the criterion; None if unknown."""
        if value is None:
            return None
        return (float(value) >= threshold) == self.expected


@dataclass(frozen=True)
class Plane:
    """A decision class; standard when every criterion holds."""

    name: str
    title: str  # display name, e.g. "Trans-thalamic (TT)"
    group: str  # plane family: head, abdomen, femur, thorax, cervix, other
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)
    measurements: tuple[str, ...] = ()  # continuous properties measured on this plane

    @property
    def index(self) -> int:
        """Class index of this plane in every plane-logit vector."""
        return PLANE_NAMES.index(self.name)

    @property
    def known(self) -> bool:
        """False for the catch-all 'other' plane, which has no standard."""
        return self.name != "other"

    def check(
        self, properties: Mapping[str, float | bool | None], threshold: float = 0.5
    ) -> tuple[bool, list[Criterion]]:
        """Evaluate the criteria on property values.

        Args:
            properties: binary property values or probabilities, by name.
            threshold: probability at which a binary property counts as true.

        Returns:
            (standard, failed criteria). A criterion whose property is missing counts as failed.
            The 'other' plane is never standard.
        """
        failed = [c for c in self.criteria if not c.met(properties.get(c.property), threshold)]
        return (self.known and not failed), failed


_V = VisualConcept
VISUAL_CONCEPTS: tuple[VisualConcept, ...] = (
    _V("head", "filled skull outline (as HC18's masks)", (255, 196, 0), "head"),
    _V("falx", "midline echo (falx cerebri)", (255, 255, 255), "head"),
    _V("csp", "cavum septi pellucidi", (0, 200, 255), "head"),
    _V("thalamus", "thalami", (255, 90, 90), "head"),
    _V("cerebellum", "cerebellar hemispheres", (170, 80, 255), "head"),
    _V("lateral_ventricle", "lateral ventricle (posterior horn, atrium)", (0, 120, 255), "head"),
    _V("abdomen", "filled abdominal outline", (255, 160, 60), "abdomen"),
    _V("stomach", "stomach bubble", (0, 230, 120), "abdomen"),
    _V("umbilical_vein", "umbilical vein at the portal sinus", (0, 255, 255), "abdomen"),
    _V("spine", "vertebra in cross-section", (230, 230, 120), "abdomen"),
    _V("kidney", "kidney", (200, 120, 60), "abdomen"),
    _V("femur", "femoral diaphysis", (255, 255, 0), "femur"),
    _V("heart", "heart, four-chamber view", (255, 40, 120), "thorax"),
    _V("cervix", "uterine cervix", (255, 120, 200), "cervix"),
    _V("bladder", "maternal bladder", (60, 160, 255), "cervix"),
)
VISUAL_CONCEPT_NAMES: tuple[str, ...] = tuple(c.name for c in VISUAL_CONCEPTS)

_P = PropertyConcept
PROPERTY_CONCEPTS: tuple[PropertyConcept, ...] = (
    # head (TT / TV / TC)
    _P("head_visible", "binary", "head", ("head",), "fetal head in view"),
    _P("head_complete", "binary", "head", ("head",), "whole skull outline inside the image, not cut by the sector edge"),
    _P("head_magnified", "binary", "head", ("head",), "head occupies at least a third of the image (ISUOG: magnified so the head fills most of the screen)"),
    _P("head_symmetric", "binary", "head", ("head", "falx"), "symmetrical plane: the midline echo runs along the long axis and splits the head into equal halves"),
    _P("csp_visible", "binary", "head", ("csp",), "cavum septi pellucidi visible"),
    _P("thalamus_visible", "binary", "head", ("thalamus",), "thalami visible"),
    _P("cerebellum_visible", "binary", "head", ("cerebellum",), "cerebellar hemispheres visible (required in the trans-cerebellar plane; must not be in the trans-thalamic and trans-ventricular planes)"),
    _P("lateral_ventricle_visible", "binary", "head", ("lateral_ventricle",), "lateral ventricle visible"),
    _P("hc_mm", "continuous", "head", ("head",), "head circumference of the ellipse fitted to the outer skull", "mm"),
    _P("bpd_mm", "continuous", "head", ("head",), "biparietal diameter (ellipse minor axis, outer-outer)", "mm"),
    _P("ofd_mm", "continuous", "head", ("head",), "occipito-frontal diameter (ellipse major axis)", "mm"),
    # abdomen (AC)
    _P("abdomen_visible", "binary", "abdomen", ("abdomen",), "fetal abdomen in view"),
    _P("abdomen_round", "binary", "abdomen", ("abdomen",), "transverse section as round as possible (minor/major axis ratio at least 0.8)"),
    _P("abdomen_magnified", "binary", "abdomen", ("abdomen",), "abdomen occupies at least a third of the image"),
    _P("stomach_visible", "binary", "abdomen", ("stomach",), "stomach bubble visible"),
    _P("umbilical_vein_visible", "binary", "abdomen", ("umbilical_vein",), "umbilical vein at the level of the portal sinus, in the anterior third"),
    _P("kidney_visible", "binary", "abdomen", ("kidney",), "kidneys visible (must not be, in the AC plane)"),
    _P("spine_visible", "binary", "abdomen", ("spine",), "spine visible in cross-section"),
    _P("ac_mm", "continuous", "abdomen", ("abdomen",), "abdominal circumference of the fitted ellipse", "mm"),
    # femur (FL)
    _P("femur_visible", "binary", "femur", ("femur",), "femur in view"),
    _P("femur_ends_visible", "binary", "femur", ("femur",), "both ends of the ossified diaphysis clearly visible, inside the image"),
    _P("femur_horizontal", "binary", "femur", ("femur",), "angle to the horizontal under 45 degrees (ideally under 30)"),
    _P("femur_magnified", "binary", "femur", ("femur",), "femur spans at least a third of the image width"),
    _P("fl_mm", "continuous", "femur", ("femur",), "femur length, end to end of the ossified diaphysis", "mm"),
    # thorax (4CH)
    _P("heart_visible", "binary", "thorax", ("heart",), "heart visible (four-chamber view)"),
    _P("heart_magnified", "binary", "thorax", ("heart",), "heart occupies at least a tenth of the image"),
    # cervix
    _P("cervix_visible", "binary", "cervix", ("cervix",), "cervix visible"),
    _P("bladder_visible", "binary", "cervix", ("bladder",), "maternal bladder visible"),
    # any plane
    _P("gain_adequate", "binary", "any", (), "overall gain adequate: tissue neither too dark nor saturated"),
)
PROPERTY_CONCEPT_NAMES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS)

_C = Criterion
_HEAD_COMMON = (_C("head_complete"), _C("head_magnified"))
PLANES: tuple[Plane, ...] = (
    Plane(
        "trans_thalamic", "Trans-thalamic (TT, HC/BPD plane)", "head",
        (*_HEAD_COMMON, _C("head_symmetric"), _C("csp_visible"), _C("thalamus_visible"),
         _C("cerebellum_visible", False), _C("gain_adequate")),
        ("hc_mm", "bpd_mm", "ofd_mm"),
    ),
    Plane(
        "trans_ventricular", "Trans-ventricular (TV)", "head",
        (*_HEAD_COMMON, _C("head_symmetric"), _C("csp_visible"), _C("lateral_ventricle_visible"),
         _C("cerebellum_visible", False), _C("gain_adequate")),
        ("hc_mm", "bpd_mm", "ofd_mm"),
    ),
    Plane(
        "trans_cerebellar", "Trans-cerebellar (TC)", "head",
        (*_HEAD_COMMON, _C("csp_visible"), _C("cerebellum_visible"), _C("gain_adequate")),
        ("hc_mm", "bpd_mm", "ofd_mm"),
    ),
    Plane(
        "abdomen", "Abdomen (AC plane)", "abdomen",
        (_C("abdomen_round"), _C("abdomen_magnified"), _C("stomach_visible"),
         _C("umbilical_vein_visible"), _C("kidney_visible", False), _C("gain_adequate")),
        ("ac_mm",),
    ),
    Plane(
        "femur", "Femur (FL plane)", "femur",
        (_C("femur_visible"), _C("femur_ends_visible"), _C("femur_horizontal"),
         _C("femur_magnified"), _C("gain_adequate")),
        ("fl_mm",),
    ),
    Plane(
        "thorax", "Thorax (four-chamber)", "thorax",
        (_C("heart_visible"), _C("heart_magnified"), _C("gain_adequate")),
    ),
    Plane(
        "cervix", "Cervix", "cervix",
        (_C("cervix_visible"), _C("bladder_visible"), _C("gain_adequate")),
    ),
    Plane("other", "Other / not a known plane", "other"),
)
PLANE_NAMES: tuple[str, ...] = tuple(p.name for p in PLANES)

_BY_NAME: dict[str, VisualConcept | PropertyConcept] = {
    **{c.name: c for c in VISUAL_CONCEPTS},
    **{c.name: c for c in PROPERTY_CONCEPTS},
}
_PLANES_BY_NAME: dict[str, Plane] = {p.name: p for p in PLANES}


def _unknown(what: str, name: str, known: Iterable[str]) -> KeyError:
    return unknown_name(name, known, what)


def get_concept(name: str) -> VisualConcept | PropertyConcept:
    """Look a visual or property concept up by name.

    Raises:
        KeyError: naming the unknown name, the closest known one and the full list.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise _unknown("concept", name, _BY_NAME) from None


def get_visual_concept(name: str) -> VisualConcept:
    """Look a visual concept (segmentation channel) up by name."""
    c = _BY_NAME.get(name) if isinstance(name, str) else None
    if not isinstance(c, VisualConcept):
        raise _unknown("visual concept", name, VISUAL_CONCEPT_NAMES)
    return c


def get_property_concept(name: str) -> PropertyConcept:
    """Look a property concept up by name."""
    c = _BY_NAME.get(name) if isinstance(name, str) else None
    if not isinstance(c, PropertyConcept):
        raise _unknown("property concept", name, PROPERTY_CONCEPT_NAMES)
    return c


def get_plane(name: str) -> Plane:
    """Look a plane up by name."""
    try:
        return _PLANES_BY_NAME[name]
    except (KeyError, TypeError):
        raise _unknown("plane", name, PLANE_NAMES) from None


def list_planes() -> list[Plane]:
    """All planes, in class-index order."""
    return list(PLANES)


def list_concepts(
    kind: Literal["visual", "property", "all"] = "all", plane: str | None = None
) -> list[VisualConcept | PropertyConcept]:
    """List concepts, optionally those of one plane (its family's concepts plus 'any' ones).

    Args:
        kind: "visual", "property" or "all".
        plane: a plane name (e.g. "trans_thalamic") or a family ("head", "abdomen", …).
    """
    if kind not in ("visual", "property", "all"):
        raise InputError(f"unknown kind {kind!r}; choose visual, property or all")
    items: list[VisualConcept | PropertyConcept] = []
    if kind in ("visual", "all"):
        items += list(VISUAL_CONCEPTS)
    if kind in ("property", "all"):
        items += list(PROPERTY_CONCEPTS)
    if plane is None:
        return items
    families = {p.group for p in PLANES}
    group = plane if plane in families else get_plane(plane).group
    return [c for c in items if c.group in (group, "any")]


BINARY_PROPERTIES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS if c.binary)
CONTINUOUS_PROPERTIES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS if not c.binary)
