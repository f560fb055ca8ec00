"""Concept ontology and measurements from masks (numpy/OpenCV only, no torch)."""

from pcbm.concepts.ontology import (
    BINARY_PROPERTIES,
    CONTINUOUS_PROPERTIES,
    PLANE_FAMILIES,
    PLANE_FAMILY_NAMES,
    PLANE_NAMES,
    PLANES,
    PROPERTY_CONCEPT_NAMES,
    PROPERTY_CONCEPTS,
    VISUAL_CONCEPT_NAMES,
    VISUAL_CONCEPTS,
    Criterion,
    Plane,
    PlaneFamily,
    PropertyConcept,
    Rule,
    VisualConcept,
    anchor_of,
    get_concept,
    get_plane,
    get_plane_family,
    get_property_concept,
    get_visual_concept,
    list_concepts,
    list_planes,
    measurement_keys,
    measurement_label,
    measurement_structure,
)

__all__ = [
    "BINARY_PROPERTIES",
    "CONTINUOUS_PROPERTIES",
    "PLANE_FAMILIES",
    "PLANE_FAMILY_NAMES",
    "PLANE_NAMES",
    "PLANES",
    "PROPERTY_CONCEPT_NAMES",
    "PROPERTY_CONCEPTS",
    "VISUAL_CONCEPT_NAMES",
    "VISUAL_CONCEPTS",
    "Criterion",
    "Plane",
    "PlaneFamily",
    "PropertyConcept",
    "Rule",
    "VisualConcept",
    "anchor_of",
    "get_concept",
    "get_plane",
    "get_plane_family",
    "get_property_concept",
    "get_visual_concept",
    "list_concepts",
    "list_planes",
    "measurement_keys",
    "measurement_label",
    "measurement_structure",
    "register_property_concept",
]


def register_property_concept(concept: PropertyConcept) -> PropertyConcept:
    """Add a property concept after the built-in ones; see
    :func:`pcbm.concepts.measure.register_property_concept` (imported here on call: it needs OpenCV)."""
    from pcbm.concepts.measure import register_property_concept as register

    return register(concept)
