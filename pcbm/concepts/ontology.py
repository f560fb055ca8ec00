"""The concept ontology: visual concepts, property concepts, plane families and planes, declared once as data.

Everything in pcbm — the phantom, the loaders, the model's heads, the reports and the tests —
reads the concept lists from here. Adding a concept is one entry in a tuple below.

A property concept carries its own rule: how it is derived from the structure it rests on
(``derived_from[0]``; ``head_symmetric`` also reads the falx). The rules, implemented in
:data:`pcbm.concepts.measure.RULES`:

* ``visible`` — the structure has a pixel; ``complete`` — it keeps clear of the field-of-view edge;
* ``magnified(f)`` — its area is at least ``f`` of the field-of-view area;
* ``spans(f)`` — its length (as a rod) is at least ``f`` of the field-of-view width;
* ``round(r)`` — its fitted ellipse has minor/major axis ratio at least ``r``;
* ``horizontal(deg)`` — its angle to the horizontal is under ``deg`` degrees;
* ``symmetric`` — the falx splits it into equal halves along its long axis;
* ``gain`` — the image (not a structure) is neither too dark nor saturated;
* ``length`` — a measurement in mm: the fitted ellipse's ``perimeter``, ``minor`` or ``major``
  axis, or a ``rod``'s end-to-end length (which also reports the rod's angle).

So adding a property — its rule, thresholds, the model's output for it, its report label — is one
entry in :data:`PROPERTY_CONCEPTS` (or one :func:`pcbm.concepts.measure.register_property_concept` call, for a plug-in).

Example:
    >>> from pcbm.concepts import get_concept, get_plane
    >>> get_concept("csp_visible").derived_from
    ('csp',)
    >>> [c.property for c in get_plane("trans_thalamic").criteria][:2]
    ['head_complete', 'head_magnified']
    >>> str(get_concept("head_magnified").rule), get_concept("fl_mm").measurement_keys
    ('magnified(0.3333)', ('fl', 'femur_angle'))
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pcbm.errors import InputError, unknown_name

Kind = Literal["binary", "continuous"]
Length = Literal["perimeter", "minor", "major", "rod"]  # which length a continuous property measures


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
class Rule:
    """How a property concept is derived: a rule of :data:`pcbm.concepts.measure.RULES` and its parameter.

    Example:
        >>> str(Rule("magnified", 0.1)), str(Rule("visible"))
        ('magnified(0.1)', 'visible')
    """

    name: str  # key of the rule's implementation in pcbm.concepts.measure.RULES
    param: float | None = None  # its threshold (an area or width fraction, an axis ratio, degrees)

    def __str__(self) -> str:
        return self.name if self.param is None else f"{self.name}({self.param:.4g})"


@dataclass(frozen=True)
class PropertyConcept:
    """A landmark or quality attribute derived from the visual concepts, with the rule that derives it.

    Example:
        >>> c = PropertyConcept("hc_mm", "continuous", "head", ("head",), "head circumference", "mm",
        ...                     rule=Rule("length"), length="perimeter", label="HC")
        >>> c.structure, c.measurement_keys
        ('head', ('hc',))
    """

    name: str
    kind: Kind  # binary (probability of True) or continuous (a measurement)
    group: str  # plane family it belongs to: head, abdomen, femur, thorax, cervix or any
    derived_from: tuple[str, ...]  # visual concepts it is measured from; the first is the one it rests on
    isuog: str  # the guideline wording (or plain meaning) the concept stands for
    unit: str | None = None  # "mm" for measurements; None for binary concepts
    rule: Rule = field(kw_only=True)  # how it is derived from its structure's mask (or from the image)
    length: Length | None = field(default=None, kw_only=True)  # continuous only: which length it measures
    label: str | None = field(default=None, kw_only=True)  # continuous only: the report's label, e.g. "HC"

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "continuous"):
            raise ValueError(f"property concept {self.name!r}: kind must be binary or continuous, got {self.kind!r}")
        measured = (self.rule.name == "length", self.length is not None, self.label is not None,
                    self.unit is not None)
        if measured != (not self.binary,) * 4:
            raise ValueError(f"property concept {self.name!r}: a continuous concept has rule 'length', a length, "
                             "a label and a unit; a binary one none of them")
        if not self.binary and not self.derived_from:
            raise ValueError(f"property concept {self.name!r}: a measurement needs the structure it measures")

    @property
    def index(self) -> int:
        """Position of this concept in every property vector."""
        return PROPERTY_CONCEPT_NAMES.index(self.name)

    @property
    def binary(self) -> bool:
        return self.kind == "binary"

    @property
    def structure(self) -> str | None:
        """The visual concept it rests on (``derived_from[0]``); None for an image property (gain)."""
        return self.derived_from[0] if self.derived_from else None

    @property
    def measurement_keys(self) -> tuple[str, ...]:
        """The report's biometry keys of a continuous concept: its name without the unit (``hc_mm``
        -> ``hc``) and, for a rod, the rod's angle (``femur_angle``, in degrees). Empty when binary."""
        if self.binary:
            return ()
        key = self.name.removesuffix(f"_{self.unit}")
        return (key, f"{self.structure}_angle") if self.length == "rod" else (key,)


@dataclass(frozen=True)
class PlaneFamily:
    """A plane family (head, abdomen, …) and its anchor: the binary property whose presence makes the
    family's other properties applicable.

    Example:
        >>> get_plane_family("thorax").anchor
        'heart_visible'
    """

    name: str
    anchor: str  # a binary property concept of this family, e.g. "head_visible"


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
_R = Rule
VISIBLE, COMPLETE, SYMMETRIC, GAIN, LENGTH = _R("visible"), _R("complete"), _R("symmetric"), _R("gain"), _R("length")
PROPERTY_CONCEPTS: tuple[PropertyConcept, ...] = (
    # head (TT / TV / TC)
    _P("head_visible", "binary", "head", ("head",), "fetal head in view", rule=VISIBLE),
    _P("head_complete", "binary", "head", ("head",), "whole skull outline inside the image, not cut by the sector edge", rule=COMPLETE),
    _P("head_magnified", "binary", "head", ("head",), "head occupies at least a third of the image (ISUOG: magnified so the head fills most of the screen)", rule=_R("magnified", 1 / 3)),
    _P("head_symmetric", "binary", "head", ("head", "falx"), "symmetrical plane: the midline echo runs along the long axis and splits the head into equal halves", rule=SYMMETRIC),
    _P("csp_visible", "binary", "head", ("csp",), "cavum septi pellucidi visible", rule=VISIBLE),
    _P("thalamus_visible", "binary", "head", ("thalamus",), "thalami visible", rule=VISIBLE),
    _P("cerebellum_visible", "binary", "head", ("cerebellum",), "cerebellar hemispheres visible (required in the trans-cerebellar plane; must not be in the trans-thalamic and trans-ventricular planes)", rule=VISIBLE),
    _P("lateral_ventricle_visible", "binary", "head", ("lateral_ventricle",), "lateral ventricle visible", rule=VISIBLE),
    _P("hc_mm", "continuous", "head", ("head",), "head circumference of the ellipse fitted to the outer skull", "mm", rule=LENGTH, length="perimeter", label="HC"),
    _P("bpd_mm", "continuous", "head", ("head",), "biparietal diameter (ellipse minor axis, outer-outer)", "mm", rule=LENGTH, length="minor", label="BPD"),
    _P("ofd_mm", "continuous", "head", ("head",), "occipito-frontal diameter (ellipse major axis)", "mm", rule=LENGTH, length="major", label="OFD"),
    # abdomen (AC)
    _P("abdomen_visible", "binary", "abdomen", ("abdomen",), "fetal abdomen in view", rule=VISIBLE),
    _P("abdomen_round", "binary", "abdomen", ("abdomen",), "transverse section as round as possible (minor/major axis ratio at least 0.8)", rule=_R("round", 0.8)),
    _P("abdomen_magnified", "binary", "abdomen", ("abdomen",), "abdomen occupies at least a third of the image", rule=_R("magnified", 1 / 3)),
    _P("stomach_visible", "binary", "abdomen", ("stomach",), "stomach bubble visible", rule=VISIBLE),
    _P("umbilical_vein_visible", "binary", "abdomen", ("umbilical_vein",), "umbilical vein at the level of the portal sinus, in the anterior third", rule=VISIBLE),
    _P("kidney_visible", "binary", "abdomen", ("kidney",), "kidneys visible (must not be, in the AC plane)", rule=VISIBLE),
    _P("spine_visible", "binary", "abdomen", ("spine",), "spine visible in cross-section", rule=VISIBLE),
    _P("ac_mm", "continuous", "abdomen", ("abdomen",), "abdominal circumference of the fitted ellipse", "mm", rule=LENGTH, length="perimeter", label="AC"),
    # femur (FL)
    _P("femur_visible", "binary", "femur", ("femur",), "femur in view", rule=VISIBLE),
    _P("femur_ends_visible", "binary", "femur", ("femur",), "both ends of the ossified diaphysis clearly visible, inside the image", rule=COMPLETE),
    _P("femur_horizontal", "binary", "femur", ("femur",), "angle to the horizontal under 45 degrees (ideally under 30)", rule=_R("horizontal", 45.0)),
    _P("femur_magnified", "binary", "femur", ("femur",), "femur spans at least a third of the image width", rule=_R("spans", 1 / 3)),
    _P("fl_mm", "continuous", "femur", ("femur",), "femur length, end to end of the ossified diaphysis", "mm", rule=LENGTH, length="rod", label="FL"),
    # thorax (4CH)
    _P("heart_visible", "binary", "thorax", ("heart",), "heart visible (four-chamber view)", rule=VISIBLE),
    _P("heart_magnified", "binary", "thorax", ("heart",), "heart occupies at least a tenth of the image", rule=_R("magnified", 0.10)),
    # cervix
    _P("cervix_visible", "binary", "cervix", ("cervix",), "cervix visible", rule=VISIBLE),
    _P("bladder_visible", "binary", "cervix", ("bladder",), "maternal bladder visible", rule=VISIBLE),
    # any plane
    _P("gain_adequate", "binary", "any", (), "overall gain adequate: tissue neither too dark nor saturated", rule=GAIN),
)
PROPERTY_CONCEPT_NAMES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS)
BINARY_PROPERTIES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS if c.binary)
CONTINUOUS_PROPERTIES: tuple[str, ...] = tuple(c.name for c in PROPERTY_CONCEPTS if not c.binary)

PLANE_FAMILIES: tuple[PlaneFamily, ...] = (
    PlaneFamily("head", "head_visible"),
    PlaneFamily("abdomen", "abdomen_visible"),
    PlaneFamily("femur", "femur_visible"),
    PlaneFamily("thorax", "heart_visible"),
    PlaneFamily("cervix", "cervix_visible"),
)
PLANE_FAMILY_NAMES: tuple[str, ...] = tuple(f.name for f in PLANE_FAMILIES)

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


@dataclass(frozen=True)
class Implication:
    """What an image-level plane label says about its structures, declared for real images that carry
    a plane (or plane-group) label but no masks: ``present`` structures are in the frame (a sonographer
    who labels a frame "femur" sees a femur), ``absent`` ones are not (no abdomen in a brain plane).
    Nothing else is implied: a structure in neither list stays unlabelled."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


_HEAD_STRUCTURES = ("head", "falx", "csp", "thalamus", "cerebellum", "lateral_ventricle")
# Deliberately conservative: the maternal bladder can be in view of any transabdominal frame, a fetal head
# beside a cervix, an abdomen's edge beside a femur, so those are left unlabelled.
IMPLIED_BY_GROUP: dict[str, Implication] = {
    "head": Implication(("head",), ("abdomen", "stomach", "umbilical_vein", "kidney", "femur", "heart", "cervix")),
    "abdomen": Implication(("abdomen",), (*_HEAD_STRUCTURES, "femur", "heart", "cervix")),
    "femur": Implication(("femur",), (*_HEAD_STRUCTURES, "heart", "cervix")),
    "thorax": Implication(("heart",), (*_HEAD_STRUCTURES, "stomach", "kidney", "femur", "cervix")),
    "cervix": Implication(("cervix",), ("falx", "csp", "thalamus", "cerebellum", "lateral_ventricle", "abdomen",
                                        "stomach", "umbilical_vein", "kidney", "femur", "heart")),
    "other": Implication(),
}


def plane_group(plane: str | None = None, group: str | None = None) -> str | None:
    """The plane group a (plane, group) label names: the plane's own group, else ``group``; None if neither.

    Example:
        >>> plane_group("trans_cerebellar"), plane_group(None, "head"), plane_group(None, None)
        ('head', 'head', None)
    """
    if plane is not None:
        return get_plane(plane).group
    if group is not None and group not in IMPLIED_BY_GROUP:
        raise unknown_name(group, IMPLIED_BY_GROUP, "plane group")
    return group


def planes_of_group(group: str) -> tuple[str, ...]:
    """The planes of a plane group, in class order (the head group is TT, TV, TC).

    Example:
        >>> planes_of_group("head")
        ('trans_thalamic', 'trans_ventricular', 'trans_cerebellar')
    """
    out = tuple(p.name for p in PLANES if p.group == group)
    if not out:
        raise unknown_name(group, sorted({p.group for p in PLANES}), "plane group")
    return out


def implied_concepts(plane: str | None = None, group: str | None = None) -> Implication:
    """The structures a plane (or plane-group) label implies present and absent (:data:`IMPLIED_BY_GROUP`).

    Example:
        >>> implied_concepts("femur").present, "heart" in implied_concepts(None, "head").absent
        (('femur',), True)
    """
    g = plane_group(plane, group)
    return IMPLIED_BY_GROUP.get(g, Implication()) if g else Implication()


def implied_properties(plane: str | None = None, group: str | None = None) -> dict[str, float]:
    """Binary property labels a plane label implies: a "<structure> visible" property of every implied
    structure, 1 if present and 0 if absent.

    Example:
        >>> implied_properties("femur")["femur_visible"], implied_properties("femur")["heart_visible"]
        (1.0, 0.0)
    """
    imp = implied_concepts(plane, group)
    value = {**{v: 0.0 for v in imp.absent}, **{v: 1.0 for v in imp.present}}
    return {c.name: value[c.derived_from[0]] for c in PROPERTY_CONCEPTS
            if c.rule == VISIBLE and len(c.derived_from) == 1 and c.derived_from[0] in value}

_BY_NAME: dict[str, VisualConcept | PropertyConcept] = {
    **{c.name: c for c in VISUAL_CONCEPTS},
    **{c.name: c for c in PROPERTY_CONCEPTS},
}
_PLANES_BY_NAME: dict[str, Plane] = {p.name: p for p in PLANES}
_FAMILIES_BY_NAME: dict[str, PlaneFamily] = {f.name: f for f in PLANE_FAMILIES}


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


def get_plane_family(name: str) -> PlaneFamily:
    """Look a plane family up by name."""
    try:
        return _FAMILIES_BY_NAME[name]
    except (KeyError, TypeError):
        raise _unknown("plane family", name, PLANE_FAMILY_NAMES) from None


def anchor_of(name: str) -> str | None:
    """The anchor property that makes property ``name`` applicable: its family's anchor; None for an
    anchor itself and for the properties of every plane (group "any").

    Example:
        >>> anchor_of("csp_visible"), anchor_of("head_visible"), anchor_of("gain_adequate")
        ('head_visible', None, None)
    """
    concept = get_property_concept(name)
    if concept.group == "any" or concept.name in {f.anchor for f in PLANE_FAMILIES}:
        return None
    return get_plane_family(concept.group).anchor


def measurement_keys(plane: str | None = None) -> tuple[str, ...]:
    """The report's biometry keys (``hc``, ``bpd``, …, ``femur_angle``), in ontology order: of one
    plane's measurements, or of every continuous property when ``plane`` is None.

    Example:
        >>> measurement_keys("femur"), measurement_keys("thorax")
        (('fl', 'femur_angle'), ())
    """
    props = CONTINUOUS_PROPERTIES if plane is None else get_plane(plane).measurements
    return tuple(k for p in props for k in get_property_concept(p).measurement_keys)


def _biometry() -> dict[str, tuple[str, str]]:
    """Biometry key -> (structure measured, report label), for every continuous property."""
    table: dict[str, tuple[str, str]] = {}
    for name in CONTINUOUS_PROPERTIES:
        c = get_property_concept(name)
        length, *angle = c.measurement_keys
        table[length] = (str(c.structure), str(c.label))
        table.update({k: (str(c.structure), f"{c.structure} angle") for k in angle})
    return table


def measurement_label(key: str) -> str:
    """The report's label of a biometry key (``hc`` -> ``HC``, ``femur_angle`` -> ``femur angle``);
    an unknown key is its own label."""
    found = _biometry().get(key)
    return found[1] if found else key


def measurement_structure(key: str) -> str:
    """The visual concept a biometry key is measured on (``bpd`` -> ``head``)."""
    table = _biometry()
    if key not in table:
        raise _unknown("measurement", key, table)
    return table[key][0]


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



# the parts of pcbm that may be loaded before register_property_concept: none binds the concept lists
# at import (pcbm.concepts.measure reads them from this module at call time)
_LOADS_BEFORE_REGISTRY = ("concepts", "errors", "validate", "_io")
_DERIVED = ("PROPERTY_CONCEPTS", "PROPERTY_CONCEPT_NAMES", "BINARY_PROPERTIES", "CONTINUOUS_PROPERTIES")


def _add_property_concept(concept: PropertyConcept) -> PropertyConcept:
    """Append ``concept`` to the property concepts (checked by
    :func:`pcbm.concepts.measure.register_property_concept`, which knows the rules; call that)."""
    global PROPERTY_CONCEPTS, PROPERTY_CONCEPT_NAMES, BINARY_PROPERTIES, CONTINUOUS_PROPERTIES
    bound = sorted(m for m in sys.modules if m.startswith("pcbm.") and m.split(".")[1] not in _LOADS_BEFORE_REGISTRY)
    if bound:
        raise RuntimeError(f"register_property_concept({concept.name!r}) must run before importing "
                           f"{', '.join(bound)}: they bind the concept lists at import")
    if concept.name in _BY_NAME:
        raise ValueError(f"concept {concept.name!r} exists already")
    for v in concept.derived_from:
        get_visual_concept(v)
    if concept.group != "any":
        get_plane_family(concept.group)
    PROPERTY_CONCEPTS = (*PROPERTY_CONCEPTS, concept)
    PROPERTY_CONCEPT_NAMES = tuple(c.name for c in PROPERTY_CONCEPTS)
    BINARY_PROPERTIES = tuple(c.name for c in PROPERTY_CONCEPTS if c.binary)
    CONTINUOUS_PROPERTIES = tuple(c.name for c in PROPERTY_CONCEPTS if not c.binary)
    _BY_NAME[concept.name] = concept
    package = sys.modules.get("pcbm.concepts")
    for name in _DERIVED if package is not None else ():
        setattr(package, name, globals()[name])
    return concept
