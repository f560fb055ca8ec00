import pytest

from pcbm.concepts import (
    PLANES,
    PROPERTY_CONCEPTS,
    VISUAL_CONCEPT_NAMES,
    VISUAL_CONCEPTS,
    get_concept,
    get_plane,
    get_property_concept,
    get_visual_concept,
    list_concepts,
)


@pytest.mark.parametrize("concept", VISUAL_CONCEPTS, ids=lambda c: c.name)
def test_visual_concept_roundtrip(concept):
    assert get_concept(concept.name) is concept
    assert get_visual_concept(concept.name) is concept
    assert VISUAL_CONCEPT_NAMES[concept.index] == concept.name
    assert all(0 <= v <= 255 for v in concept.color)


@pytest.mark.parametrize("concept", PROPERTY_CONCEPTS, ids=lambda c: c.name)
def test_property_concept_is_consistent(concept):
    assert get_property_concept(concept.name) is concept
    assert concept.kind in ("binary", "continuous")
    assert (concept.unit == "mm") == (concept.kind == "continuous")
    for v in concept.derived_from:
        get_visual_concept(v)  # derived from known structures
    assert concept.isuog


@pytest.mark.parametrize("plane", PLANES, ids=lambda p: p.name)
def test_plane_criteria_refer_to_binary_properties(plane):
    assert get_plane(plane.name) is plane
    for c in plane.criteria:
        assert get_property_concept(c.property).binary
    for m in plane.measurements:
        assert not get_property_concept(m).binary
    # all criteria met -> standard (except 'other'); flip one -> not standard, that one named
    ok = {c.property: c.expected for c in plane.criteria}
    standard, failed = plane.check(ok)
    assert standard == plane.known and failed == []
    for c in plane.criteria:
        broken = dict(ok, **{c.property: not c.expected})
        standard, failed = plane.check(broken)
        assert not standard and failed == [c]


def test_names_are_unique():
    names = [c.name for c in VISUAL_CONCEPTS] + [c.name for c in PROPERTY_CONCEPTS]
    assert len(names) == len(set(names))


def test_unknown_name_suggests_closest_and_lists_known():
    with pytest.raises(KeyError) as e:
        get_concept("cerebelum")
    msg = str(e.value)
    assert "'cerebelum'" in msg and "did you mean 'cerebellum'" in msg and "csp_visible" in msg
    with pytest.raises(KeyError, match="did you mean 'trans_thalamic'"):
        get_plane("trans_thalmic")
    with pytest.raises(KeyError, match="unknown visual concept 'csp_visible'"):
        get_visual_concept("csp_visible")


def test_trans_thalamic_criteria_follow_isuog():
    tt = get_plane("trans_thalamic")
    crit = {c.property: c.expected for c in tt.criteria}
    assert crit["cerebellum_visible"] is False
    assert crit["csp_visible"] and crit["thalamus_visible"] and crit["head_symmetric"]
    ac = {c.property: c.expected for c in get_plane("abdomen").criteria}
    assert ac["kidney_visible"] is False and ac["stomach_visible"] and ac["umbilical_vein_visible"]


def test_missing_property_fails_the_criterion():
    standard, failed = get_plane("thorax").check({"heart_visible": 0.9})
    assert not standard
    assert {c.property for c in failed} == {"heart_magnified", "gain_adequate"}


def test_list_concepts_by_plane():
    head = {c.name for c in list_concepts(plane="trans_thalamic")}
    assert "csp" in head and "hc_mm" in head and "gain_adequate" in head and "stomach" not in head
    assert {c.name for c in list_concepts("visual", plane="femur")} == {"femur"}
    with pytest.raises(ValueError):
        list_concepts(kind="bogus")  # type: ignore[arg-type]
