"""The probe-pose phantom: analytic sections, standard poses, offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pcbm.data.phantom.pose import POSE_PLANES, Ellipsoid, Pose, PoseScene, Rod, section_ellipse, section_rod


def _ellipsoid() -> Ellipsoid:
    return Ellipsoid(np.array([4.0, 50.0, 10.0]), np.eye(3), np.array([30.0, 20.0, 25.0]))


@pytest.mark.parametrize("dz", [0.0, 10.0, -20.0])
def test_transverse_section_is_the_analytic_ellipse(dz: float) -> None:
    s = section_ellipse(_ellipsoid(), Pose(along=10.0 + dz))
    k = math.sqrt(1 - (dz / 25.0) ** 2)
    np.testing.assert_allclose(sorted(s.axes), sorted([30.0 * k, 20.0 * k]), rtol=1e-9)
    np.testing.assert_allclose(s.center, [4.0, 50.0], atol=1e-9)  # u = x - across, v = depth


def test_rotated_section_through_the_centre() -> None:
    th = math.radians(30.0)
    e = _ellipsoid()
    pose = Pose(along=10.0 - math.tan(th) * 4.0, across=0.0, rotation=30.0)  # plane through the centre
    s = section_ellipse(e, pose)
    along_l = 1 / math.sqrt(math.cos(th) ** 2 / 30.0**2 + math.sin(th) ** 2 / 25.0**2)
    np.testing.assert_allclose(sorted(s.axes), sorted([along_l, 20.0]), rtol=1e-9)


def test_plane_missing_the_ellipsoid() -> None:
    assert section_ellipse(_ellipsoid(), Pose(along=40.0)) is None


def test_rod_in_the_plane_is_whole_and_across_it_a_dot() -> None:
    lying = Rod(np.array([-20.0, 40.0, 0.0]), np.array([20.0, 40.0, 0.0]), 2.0)
    a, b, width = section_rod(lying, Pose())
    assert np.linalg.norm(b - a) == pytest.approx(40.0)
    assert width == pytest.approx(4.0)  # lying in the plane: its full diameter
    crossing = Rod(np.array([0.0, 40.0, -20.0]), np.array([0.0, 40.0, 20.0]), 2.0)
    a, b, _ = section_rod(crossing, Pose())
    assert np.linalg.norm(b - a) < 1e-9  # seen end-on: a dot
    a, _, _ = section_rod(crossing, Pose(across=5.0))
    np.testing.assert_allclose(a, [-5.0, 40.0])  # the probe slid right: the dot moves left
    assert section_rod(lying, Pose(along=5.0)) is None  # parallel, beyond radius + half the slice


@pytest.fixture(scope="module")
def scene() -> PoseScene:
    return PoseScene.sample(np.random.default_rng(11), style="heldout", size=96)


@pytest.mark.parametrize("plane", POSE_PLANES)
def test_standard_pose_renders_a_standard_frame(scene: PoseScene, plane: str) -> None:
    f = scene.render(scene.standard_pose(plane), np.random.default_rng(0))
    assert f.image.shape == (96, 96) and f.image.dtype == np.uint8
    assert f.standard_for(plane), {k: v for k, v in f.properties.items() if v is not None}


def test_off_plane_poses_break_named_criteria(scene: PoseScene) -> None:
    tt = scene.standard_pose("trans_thalamic")
    low = scene.render(tt.moved("along", -15.0), np.random.default_rng(0))  # into the posterior fossa
    assert low.properties["cerebellum_visible"] == 1.0 and not low.standard_for("trans_thalamic")
    femur = scene.render(scene.standard_pose("femur").moved("along", 12.0), np.random.default_rng(0))
    assert femur.properties["femur_visible"] == 0.0


def test_offset_is_the_exact_pose_difference(scene: PoseScene) -> None:
    pose = scene.standard_pose("abdomen").moved("tilt", 7.0).moved("along", -3.0)
    np.testing.assert_allclose(scene.offset(pose, "abdomen"), [3.0, 0.0, -7.0, 0.0], atol=1e-9)
    assert scene.plane_offset(scene.standard_pose("femur"), "femur") == pytest.approx(np.zeros(4), abs=1e-9)
