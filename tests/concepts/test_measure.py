"""Measurements from masks: analytic known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pcbm.concepts import PROPERTY_CONCEPTS
from pcbm.concepts import measure as M


def ellipse_mask(shape=(400, 500), centre=(250, 200), axes=(150, 100), angle=0.0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, centre, axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


def bar_mask(length: float, angle_deg: float, shape=(400, 500), thickness=6) -> np.ndarray:
    """A rectangle of ``length`` x ``thickness`` centred in the image, rotated by ``angle_deg``."""
    cx, cy = shape[1] / 2, shape[0] / 2
    box = cv2.boxPoints(((cx, cy), (length, thickness), -angle_deg))
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(box * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)


def test_ramanujan_perimeter_circle_and_degenerate() -> None:
    assert M.ellipse_perimeter(10, 10) == pytest.approx(2 * math.pi * 10)
    assert M.ellipse_perimeter(10, 0) == pytest.approx(40, rel=1e-3)  # flat ellipse: 4a
    assert M.ellipse_perimeter(0, 0) == 0.0


@pytest.mark.parametrize("angle", [0, 30, 90, 135])
def test_fit_ellipse_known_axes(angle: float) -> None:
    a, b = 150, 100
    e = M.fit_ellipse(ellipse_mask(axes=(a, b), angle=angle))
    assert e.semi_major == pytest.approx(a, rel=0.01)
    assert e.semi_minor == pytest.approx(b, rel=0.01)
    assert e.perimeter == pytest.approx(M.ellipse_perimeter(a, b), rel=0.01)
    assert (e.cx, e.cy) == pytest.approx((250, 200), abs=1)
    diff = abs(e.angle_deg - angle) % 180
    assert min(diff, 180 - diff) < 1.0


def test_hc_bpd_ofd_in_mm_and_px() -> None:
    m = ellipse_mask(axes=(150, 100))
    p = M.derive_properties({"head": m}, pixel_spacing_mm=0.2)
    assert p["hc_mm"] == pytest.approx(M.ellipse_perimeter(150, 100) * 0.2, rel=0.01)
    assert p["bpd_mm"] == pytest.approx(40, rel=0.01)
    assert p["ofd_mm"] == pytest.approx(60, rel=0.01)
    # unknown spacing: no mm value (None), but measure() reports px
    p = M.derive_properties({"head": m})
    assert p["hc_mm"] is None and p["head_visible"] == 1.0
    meas = M.measure({"head": m})
    assert meas["hc"].unit == "px" and meas["hc"].value == pytest.approx(M.ellipse_perimeter(150, 100), rel=0.01)
    assert M.measure({"head": m}, pixel_spacing_mm=0.2)["bpd"].unit == "mm"


@pytest.mark.parametrize("angle,length", [(0, 200), (20, 150), (45, 120), (60, 180), (90, 100), (160, 150)])
def test_femur_length_and_angle(angle: float, length: float) -> None:
    seg = M.femur_segment(bar_mask(length, angle))
    assert seg.length == pytest.approx(length, rel=0.02)
    folded = min(angle % 180, 180 - angle % 180)
    assert seg.angle_deg == pytest.approx(folded, abs=1.0)


def test_femur_properties() -> None:
    flat = M.derive_properties({"femur": bar_mask(200, 10)}, pixel_spacing_mm=0.25)
    assert flat["femur_horizontal"] == 1.0 and flat["femur_ends_visible"] == 1.0
    assert flat["femur_magnified"] == 1.0  # 200 px >= 500 / 3
    assert flat["fl_mm"] == pytest.approx(50, rel=0.02)
    steep = M.derive_properties({"femur": bar_mask(100, 60)})
    assert steep["femur_horizontal"] == 0.0 and steep["femur_magnified"] == 0.0
    cut = np.zeros((400, 500), bool)
    cut[200:206, 400:] = True  # runs off the right border
    assert M.derive_properties({"femur": cut})["femur_ends_visible"] == 0.0


def test_empty_mask_raises_naming_concept() -> None:
    empty = np.zeros((50, 50), bool)
    with pytest.raises(ValueError, match="empty mask: 'head'"):
        M.fit_ellipse(empty)
    with pytest.raises(ValueError, match="empty mask: 'femur'"):
        M.femur_segment(empty)
    with pytest.raises(ValueError, match="empty mask: 'falx'"):
        M.head_symmetry(ellipse_mask(), np.zeros((400, 500), bool))


def test_empty_mask_is_not_visible_never_zero_mm() -> None:
    empty = np.zeros((400, 500), bool)
    p = M.derive_properties({"head": empty, "falx": empty, "abdomen": empty, "femur": empty}, pixel_spacing_mm=0.1)
    for name in ("head_visible", "head_complete", "head_magnified", "head_symmetric", "abdomen_visible",
                 "abdomen_round", "abdomen_magnified", "femur_visible", "femur_ends_visible",
                 "femur_horizontal", "femur_magnified"):
        assert p[name] == 0.0, name
    for name in ("hc_mm", "bpd_mm", "ofd_mm", "ac_mm", "fl_mm"):
        assert p[name] is None, name
    assert M.measure({"head": empty}) == {}


def test_only_labelled_properties_appear() -> None:
    p = M.derive_properties({"csp": np.ones((10, 10), bool)})
    assert set(p) == {"csp_visible"}
    assert "gain_adequate" in M.derive_properties({}, image=np.full((10, 10), 80, np.uint8))
    labelled = {"head": np.zeros((20, 20), bool)}  # no falx: head_symmetric is not determined
    assert set(M.derive_properties(labelled)) == {c.name for c in PROPERTY_CONCEPTS if c.derived_from == ("head",)}


def test_every_property_derivable() -> None:
    from pcbm.concepts import VISUAL_CONCEPT_NAMES

    rng = np.random.default_rng(0)
    masks = {name: ellipse_mask(centre=(int(rng.integers(200, 300)), 200), axes=(60, 40)) for name in VISUAL_CONCEPT_NAMES}
    p = M.derive_properties(masks, image=np.full((400, 500), 60, np.uint8), pixel_spacing_mm=0.1)
    assert list(p) == [c.name for c in PROPERTY_CONCEPTS]
    for c in PROPERTY_CONCEPTS:
        if c.binary:
            assert p[c.name] in (0.0, 1.0), c.name
        else:
            assert p[c.name] is not None and p[c.name] > 0, c.name


def test_magnification_and_field_of_view() -> None:
    big = ellipse_mask(axes=(200, 150))  # ~0.47 of 400x500
    small = ellipse_mask(axes=(60, 40))
    assert M.derive_properties({"head": big})["head_magnified"] == 1.0
    assert M.derive_properties({"head": small})["head_magnified"] == 0.0
    fov = np.zeros((400, 500), bool)
    fov[140:260, 180:320] = True  # the small head fills a small sector
    assert M.area_fraction(small, fov) > 1 / 3
    p = M.derive_properties({"head": small}, field_of_view=fov)
    assert p["head_magnified"] == 1.0 and p["head_complete"] == 1.0
    tight = np.zeros((400, 500), bool)
    tight[170:230, 180:320] = True
    assert M.derive_properties({"head": small}, field_of_view=tight)["head_complete"] == 0.0  # cut by the sector


def test_head_touching_border_is_incomplete() -> None:
    m = ellipse_mask(centre=(250, 50), axes=(150, 100))  # off the top edge
    assert M.touches_border(m)
    assert M.derive_properties({"head": m})["head_complete"] == 0.0


def test_symmetry_centred_vs_offset_vs_tilted_falx() -> None:
    head = ellipse_mask(axes=(150, 100))
    falx = np.zeros_like(head)
    falx[199:202, 120:380] = True  # along the major axis through the centre
    assert M.head_symmetry(head, falx).symmetric
    assert M.derive_properties({"head": head, "falx": falx})["head_symmetric"] == 1.0
    off = np.zeros_like(head)
    off[259:262, 150:350] = True  # 60 px off centre
    s = M.head_symmetry(head, off)
    assert s.imbalance > M.SYMMETRY_MAX_AREA_IMBALANCE and not s.symmetric
    tilted = np.zeros(head.shape, np.uint8)
    cv2.line(tilted, (200, 120), (300, 280), 1, 3)  # through the centre but at ~58° to the long axis
    s = M.head_symmetry(head, tilted.astype(bool))
    assert s.imbalance < 0.05 and s.falx_angle_deg > 30 and not s.symmetric
    assert M.derive_properties({"head": head, "falx": np.zeros_like(head)})["head_symmetric"] == 0.0


def test_abdomen_round() -> None:
    assert M.derive_properties({"abdomen": ellipse_mask(axes=(120, 110))})["abdomen_round"] == 1.0
    assert M.derive_properties({"abdomen": ellipse_mask(axes=(150, 80))})["abdomen_round"] == 0.0


def test_gain() -> None:
    fov = np.zeros((100, 100), bool)
    fov[20:80, 20:80] = True
    mid = np.zeros((100, 100), np.uint8)
    mid[fov] = 80
    assert M.image_gain(mid, fov).adequate  # the black outside the sector is not counted
    assert not M.image_gain(np.full((100, 100), 3, np.uint8)).adequate  # too dark
    assert not M.image_gain(np.full((100, 100), 255, np.uint8)).adequate  # saturated
    assert M.derive_properties({}, image=mid, field_of_view=fov) == {"gain_adequate": 1.0}


def test_probability_and_uint8_masks_accepted() -> None:
    m = ellipse_mask()
    ref = M.derive_properties({"head": m}, pixel_spacing_mm=0.1)
    assert M.derive_properties({"head": m.astype(np.uint8) * 255}, pixel_spacing_mm=0.1) == ref
    assert M.derive_properties({"head": m.astype(np.float32) * 0.9}, pixel_spacing_mm=0.1) == ref


def test_tiny_mask_does_not_crash() -> None:
    m = np.zeros((20, 20), bool)
    m[10, 10] = True
    p = M.derive_properties({"head": m, "femur": m}, pixel_spacing_mm=1.0)
    assert p["head_visible"] == 1.0 and p["hc_mm"] is not None and p["fl_mm"] == pytest.approx(1.0)
