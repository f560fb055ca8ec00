"""The ontology carries its rules: every property concept names how it is derived, and every layer
(labels from masks, the property head, the reports) follows its entry — a new property is one entry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from pcbm.concepts import (
    PLANE_FAMILIES,
    PLANE_FAMILY_NAMES,
    PLANES,
    PROPERTY_CONCEPTS,
    VISUAL_CONCEPTS,
    PropertyConcept,
    Rule,
    anchor_of,
    get_plane_family,
    get_property_concept,
    measurement_keys,
    measurement_label,
    measurement_structure,
    register_property_concept,
)
from pcbm.concepts import measure as M

CONTINUOUS = [c for c in PROPERTY_CONCEPTS if not c.binary]


@pytest.mark.parametrize("concept", PROPERTY_CONCEPTS, ids=lambda c: c.name)
def test_every_rule_is_implemented(concept: PropertyConcept) -> None:
    assert concept.rule.name in M.RULES
    assert concept.group in (*PLANE_FAMILY_NAMES, "any")
    if concept.rule.name in ("magnified", "spans", "round", "horizontal"):
        assert concept.rule.param is not None and concept.rule.param > 0
    if concept.rule.name == "symmetric":
        assert len(concept.derived_from) == 2  # the structure and its midline


@pytest.mark.parametrize("concept", CONTINUOUS, ids=lambda c: c.name)
def test_every_length_is_implemented_and_labelled(concept: PropertyConcept) -> None:
    from pcbm.models.property_head import LENGTHS

    assert concept.rule == Rule("length") and concept.unit == "mm"
    assert concept.length in M.LENGTHS and concept.length in LENGTHS
    key = concept.measurement_keys[0]
    assert concept.label and measurement_label(key) == concept.label
    assert measurement_structure(key) == concept.structure


@pytest.mark.parametrize("family", PLANE_FAMILIES, ids=lambda f: f.name)
def test_every_family_has_an_anchor_of_its_own(family) -> None:
    anchor = get_property_concept(family.anchor)
    assert anchor.binary and anchor.group == family.name and anchor.rule == Rule("visible")
    assert get_plane_family(family.name) is family and anchor_of(family.anchor) is None
    members = [c for c in PROPERTY_CONCEPTS if c.group == family.name and c.name != family.anchor]
    assert members and all(anchor_of(c.name) == family.anchor for c in members)


@pytest.mark.parametrize("plane", PLANES, ids=lambda p: p.name)
def test_every_plane_belongs_to_a_family(plane) -> None:
    assert plane.group in (*PLANE_FAMILY_NAMES, "other")


def test_visual_concepts_belong_to_families() -> None:
    assert {c.group for c in VISUAL_CONCEPTS} <= set(PLANE_FAMILY_NAMES)


def test_biometry_keys_and_labels() -> None:
    assert measurement_keys() == ("hc", "bpd", "ofd", "ac", "fl", "femur_angle")
    assert measurement_keys("trans_thalamic") == ("hc", "bpd", "ofd") and measurement_keys("cervix") == ()
    assert [measurement_label(k) for k in measurement_keys()] == ["HC", "BPD", "OFD", "AC", "FL", "femur angle"]
    assert measurement_label("not_a_key") == "not_a_key"
    assert str(get_property_concept("heart_magnified").rule) == "magnified(0.1)"
    with pytest.raises(KeyError, match="unknown measurement 'hcc'; did you mean 'hc'"):
        measurement_structure("hcc")
    with pytest.raises(KeyError, match="unknown plane family 'hed'; did you mean 'head'"):
        get_plane_family("hed")


def test_malformed_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="a continuous concept has rule 'length'"):
        PropertyConcept("x_mm", "continuous", "head", ("head",), "x", "mm", rule=Rule("length"))  # no length
    with pytest.raises(ValueError, match="a continuous concept has rule 'length'"):
        PropertyConcept("x", "binary", "head", ("head",), "x", rule=Rule("length"), length="rod")


def test_registering_after_the_layers_above_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pcbm.models", types.ModuleType("pcbm.models"))
    concept = PropertyConcept("stomach_magnified", "binary", "abdomen", ("stomach",), "x", rule=Rule("magnified", 0.02))
    with pytest.raises(RuntimeError, match="must run before importing .*pcbm.models"):
        register_property_concept(concept)
    assert "stomach_magnified" not in [c.name for c in PROPERTY_CONCEPTS]


_NEW_PROPERTIES = textwrap.dedent('''
    import cv2
    import numpy as np

    import pcbm.concepts as C
    from pcbm.concepts import PropertyConcept, Rule, register_property_concept

    register_property_concept(PropertyConcept(
        "stomach_magnified", "binary", "abdomen", ("stomach",), "stomach bubble fills 2 % of the image",
        rule=Rule("magnified", 0.02)))
    register_property_concept(PropertyConcept(
        "kidney_length_mm", "continuous", "abdomen", ("kidney",), "kidney length", "mm",
        rule=Rule("length"), length="major", label="KL"))
    assert C.PROPERTY_CONCEPT_NAMES[-2:] == ("stomach_magnified", "kidney_length_mm"), C.PROPERTY_CONCEPT_NAMES
    assert C.BINARY_PROPERTIES[-1] == "stomach_magnified" and C.CONTINUOUS_PROPERTIES[-1] == "kidney_length_mm"
    assert C.get_concept("stomach_magnified").index == 29 and C.anchor_of("stomach_magnified") == "abdomen_visible"
    try:
        register_property_concept(C.get_concept("stomach_magnified"))
        raise SystemExit("a taken name was accepted")
    except ValueError as e:
        assert "exists already" in str(e)

    # labels from masks
    from pcbm.concepts.measure import derive_properties, measure

    big, small = np.zeros((100, 100), bool), np.zeros((100, 100), bool)
    big[10:30, 10:30] = True  # 4 % of the image
    small[10:20, 10:20] = True  # 1 %
    assert derive_properties({"stomach": big}) == {"stomach_visible": 1.0, "stomach_magnified": 1.0}
    assert derive_properties({"stomach": small}) == {"stomach_visible": 1.0, "stomach_magnified": 0.0}
    assert derive_properties({"stomach": np.zeros((100, 100), bool)})["stomach_magnified"] == 0.0
    kidney = np.zeros((100, 100), np.uint8)
    cv2.ellipse(kidney, (50, 50), (40, 15), 0, 0, 360, 1, -1)
    p = derive_properties({"kidney": kidney}, pixel_spacing_mm=0.5)
    assert abs(p["kidney_length_mm"] - 40) < 1, p
    found = measure({"kidney": kidney})
    assert abs(found["kidney_length"].value - 80) < 2 and found["kidney_length"].unit == "px", found
    assert C.measurement_label("kidney_length") == "KL" and C.measurement_keys()[-1] == "kidney_length"

    # the property head
    import torch

    from pcbm.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    s = model.input_size
    props = model.property_head(torch.rand(2, len(C.VISUAL_CONCEPT_NAMES), s, s), torch.rand(2, 1, s, s))
    assert props.shape == (2, 31), props.shape
    out = model(torch.rand(1, 1, s, s))
    assert out.properties.shape == (1, 31), out.properties.shape

    # the report
    from pcbm.explain.build import explain_image
    from pcbm.explain.report import MeasurementRow

    image = (np.random.default_rng(0).random((70, 90)) * 200).astype(np.uint8)
    report = explain_image(model, image, heatmap=None, pixel_spacing_mm=0.2)
    for name in ("stomach_magnified", "kidney_length_mm"):
        assert name in report.properties and name in report.to_dict()["properties"], name
    assert MeasurementRow("kidney_length", 41.0, "mm").label == "KL"
    print("ok")
''')


def test_a_new_property_flows_through_every_layer() -> None:
    """Registered before the layers above import: labels, the property head and the report follow.

    A subprocess, since the concept lists are bound at import (and this process has imported them)."""
    done = subprocess.run([sys.executable, "-c", _NEW_PROPERTIES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
