"""The robust ellipse: masks that leak, break, dent or are cut by the image keep their true ellipse,
and a quality score flags the outlines that are not ellipses (issue 15)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.concepts.measure import (
    RELIABLE_MIN_QUALITY,
    ellipse_perimeter,
    fit_ellipse,
    fit_ellipse_robust,
    measure,
)

AXES, CENTRE, ANGLE = (80, 55), (150, 150), 20
TRUE_HC = ellipse_perimeter(*AXES)


def _ellipse(shape=(300, 300), centre=CENTRE) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, centre, AXES, ANGLE, 0, 360, 1, -1)
    return m


def _leak(m):  # the head mask runs through a neck into the body beside it
    cv2.ellipse(m, (260, 240), (50, 40), 0, 0, 360, 1, -1)
    cv2.line(m, (200, 200), (240, 230), 1, 12)
    return m


def _broken(m):  # a faint head: the mask in four pieces
    m[:, 140:146] = 0
    m[145:150, :] = 0
    return m


def _dent(m):  # a weak skull echo: a deep dent in the outline
    cv2.circle(m, (150, 95), 30, 0, -1)
    return m


def test_a_clean_mask_gives_the_plain_fit_and_full_quality() -> None:
    m = _ellipse()
    f = fit_ellipse_robust(m)
    assert f.ellipse.perimeter == pytest.approx(fit_ellipse(m).perimeter, abs=1e-6)
    assert abs(f.ellipse.perimeter - TRUE_HC) < 1.0 and f.quality > 0.95 and f.reliable and f.reason() is None


@pytest.mark.parametrize("damage", [_leak, _broken, _dent], ids=["leak", "broken", "dent"])
def test_a_damaged_mask_keeps_the_true_ellipse(damage) -> None:
    m = damage(_ellipse())
    plain, robust = fit_ellipse(m), fit_ellipse_robust(m)
    assert abs(plain.perimeter - TRUE_HC) > 4.0  # the plain fit is pulled (or takes the merged blob)
    assert abs(robust.ellipse.perimeter - TRUE_HC) < 1.5
    assert abs(robust.ellipse.cx - CENTRE[0]) < 1.5 and abs(robust.ellipse.cy - CENTRE[1]) < 1.5


def test_outlines_that_are_not_the_ellipse_are_flagged_with_a_reason() -> None:
    broken = fit_ellipse_robust(_broken(_ellipse()))
    assert not broken.reliable and "4 pieces" in broken.reason() and str(RELIABLE_MIN_QUALITY) in broken.reason()
    box = np.zeros((300, 300), np.uint8)
    cv2.rectangle(box, (50, 50), (250, 200), 1, -1)
    rect = fit_ellipse_robust(box)
    assert rect.quality < 0.5 and "of the outline lies on the fitted ellipse" in rect.reason()
    assert fit_ellipse_robust(_leak(_ellipse())).cut_neck


def test_a_head_cut_by_the_image_edge_is_extrapolated_not_flagged() -> None:
    m = _ellipse(centre=(150, 20))  # the top of the head outside the image
    f = fit_ellipse_robust(m)
    assert abs(f.ellipse.perimeter - TRUE_HC) < 3.0 and f.reliable
    assert abs(fit_ellipse(m).perimeter - TRUE_HC) > 20.0


def test_measure_carries_the_quality_and_the_reason() -> None:
    good = measure({"head": _ellipse()}, pixel_spacing_mm=0.1)["hc"]
    assert good.reliable and good.quality > 0.95 and good.value == pytest.approx(TRUE_HC * 0.1, abs=0.1)
    bad = measure({"head": _broken(_ellipse())}, pixel_spacing_mm=0.1)["hc"]
    assert not bad.reliable and "unreliable" in str(bad) and bad.quality < RELIABLE_MIN_QUALITY
    femur = np.zeros((100, 100), np.uint8)
    femur[48:52, 20:80] = 1
    assert measure({"femur": femur})["fl"].quality is None  # a rod is not an ellipse: no ellipse quality
    with pytest.raises(ValueError, match="empty mask"):
        fit_ellipse_robust(np.zeros((10, 10), np.uint8))


def test_biometry_gives_no_number_for_an_unreliable_outline() -> None:
    from pcbm.concepts.measure import biometry

    rows, notes = biometry({"head": _broken(_ellipse()), "abdomen": _ellipse()}, "trans_thalamic", 0.1)
    assert [r.name for r in rows] == ["hc", "bpd", "ofd"] and notes == []  # the plane's, not the abdomen's
    hc = rows[0].to_dict()
    assert hc["value"] is None and hc["measured"] > 0 and not hc["reliable"] and "4 pieces" in hc["reason"]
    rows, _ = biometry({"head": _ellipse()}, "trans_thalamic", 0.1)
    assert rows[0].to_dict()["value"] == pytest.approx(TRUE_HC * 0.1, abs=0.1)
    assert biometry({"head": _ellipse()}, "thorax")[0] == []  # a known plane without biometry
    other, _ = biometry({"head": _ellipse(), "abdomen": _ellipse()}, "other")
    assert {"hc", "ac"} <= {r.name for r in other}  # not a known plane: whatever is found
