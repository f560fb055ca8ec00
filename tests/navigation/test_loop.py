"""Moves, the closed loop, the fit, and the shipped policy on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from pcbm.data.phantom.pose import PoseScene, probe_frame
from pcbm.navigation import MOVES, hint
from pcbm.navigation.fit import FitConfig, fit_policy
from pcbm.navigation.moves import STEP, apply_move, best_move, distance
from pcbm.navigation.simulate import blind_chooser, oracle_observer, oracle_prediction, run_episode


def test_moves_are_exact_steps_and_a_tilt_pivots_about_the_image_centre() -> None:
    scene = PoseScene.sample(np.random.default_rng(2), size=64)
    pose = scene.standard_pose("abdomen")
    assert apply_move(pose, "along+").along == pytest.approx(pose.along + STEP["along"])
    assert apply_move(pose, "rotate-").rotation == pytest.approx(pose.rotation - STEP["rotation"])
    tilted = apply_move(pose, "tilt+")
    centre = lambda p: probe_frame(p).to_world(np.array([0.0, p.depth / 2]))  # noqa: E731
    np.testing.assert_allclose(centre(tilted)[[0, 2]], centre(pose)[[0, 2]], atol=1e-9)
    with pytest.raises(ValueError, match="unknown move"):
        apply_move(pose, "jump")


def test_best_move_reduces_the_offset_back_to_the_plane() -> None:
    scene = PoseScene.sample(np.random.default_rng(4), size=64)
    for plane, dim, amount, want in (("femur", "along", 9.0, "along-"), ("abdomen", "rotation", -20.0, "rotate+"),
                                     ("trans_thalamic", "across", 9.0, "across-")):
        pose = scene.standard_pose(plane).moved(dim, amount)
        assert best_move(scene, pose, plane) == want
        assert distance(scene, apply_move(pose, want), plane) < distance(scene, pose, plane)


def test_episode_from_a_standard_pose_succeeds_at_once_and_blind_moves_are_moves() -> None:
    scene = PoseScene.sample(np.random.default_rng(0), size=64)
    ep = run_episode(scene, "femur", scene.standard_pose("femur"), oracle_observer("femur"), blind_chooser,
                     np.random.default_rng(0))
    assert ep.success and ep.moves == 0
    rng = np.random.default_rng(1)
    assert {blind_chooser(None, None, None, rng) for _ in range(200)} == set(MOVES[1:])


def test_confirm_holds_the_probe_until_enough_standard_frames_in_a_row() -> None:
    scene = PoseScene.sample(np.random.default_rng(0), size=64)
    start = scene.standard_pose("abdomen")
    seen: list = []
    chosen: list = []

    def flicker(frame):  # a judge that says standard on every other frame
        seen.append(frame)
        return len(seen) % 2 == 1, None

    def choose(obs, prev, last, rng):
        chosen.append(last)
        return "along+"

    ep = run_episode(scene, "abdomen", start, flicker, choose, np.random.default_rng(0), max_moves=6, confirm=2)
    assert not ep.success and ep.moves == 6  # never two in a row
    # after each standard frame the hand holds (no hint asked); after each non-standard one it follows the hint
    assert len(chosen) == 3 and len(seen) == 7
    steady = run_episode(scene, "abdomen", start, lambda f: (True, None), choose, np.random.default_rng(0), confirm=3)
    assert steady.success and steady.moves == 2  # two holds, then the third standard frame in a row stops


def test_cerebellum_in_view_gets_a_move_back_toward_the_trans_thalamic_plane() -> None:
    """From the trans-cerebellar section (the cerebellum in view), the shipped policy steers toward
    TT: its move reduces the pose offset in most fetuses, and the reason is in concept words."""
    helpful, reasons = 0, []
    for seed in range(6):
        scene = PoseScene.sample(np.random.default_rng(100 + seed), style="heldout", size=96)
        pose = scene.standard_pose("trans_cerebellar")
        frame = scene.render(pose, np.random.default_rng(seed))
        assert frame.properties["cerebellum_visible"] == 1.0
        h = hint(oracle_prediction(frame, "trans_thalamic"), "trans_thalamic")
        helpful += distance(scene, apply_move(pose, h.move), "trans_thalamic") < distance(scene, pose, "trans_thalamic")
        reasons.append(h.reason)
    assert helpful >= 4, reasons
    assert all(r.endswith("to reach the trans-thalamic plane.") for r in reasons)


def test_a_tiny_fit_gives_a_usable_policy() -> None:
    pol = fit_policy(FitConfig(planes=("femur",), scenes=2, poses=8, size=64, rounds=1, episodes=1, max_depth=3,
                               min_samples_leaf=1))
    assert pol.planes == ("femur",) and pol.meta["label_counts"]["femur"]
    assert sorted(pol.trees) == ["femur/across", "femur/along", "femur/rotate", "femur/tilt"]
    x = np.zeros(len(pol.features))
    move, strength, path, key = pol.decide("femur", x)
    assert move in MOVES[1:] and strength >= 0 and path[0] == 0 and key.startswith("femur/" + move[:-1])


def test_candidates_keep_the_fit_that_validates_best() -> None:
    from dataclasses import replace

    from pcbm.errors import InputError
    from pcbm.navigation.fit import validate

    cfg = FitConfig(planes=("abdomen",), scenes=3, poses=8, size=64, rounds=1, episodes=2, max_depth=4,
                    min_samples_leaf=1, seed=4, candidates=3, validation_episodes=8)
    pol = fit_policy(cfg)
    sel = pol.meta["selection"]["abdomen"]
    assert sel["seeds"] == [4, 5, 6] and all(0 <= v <= 1 for v in sel["validation_success"])
    assert sel["chosen_seed"] == 4 + int(np.argmax(sel["validation_success"]))
    assert len(set(sel["validation_success"])) > 1  # the fits do differ by chance (here the last one wins)
    alone = fit_policy(replace(cfg, seed=sel["chosen_seed"], candidates=1))  # the kept trees are that seed's fit
    assert pol.trees == alone.trees and "selection" not in alone.meta
    # every candidate meets the same fetuses, starts and hand: a score depends on the trees alone
    assert validate(cfg, "abdomen", alone.trees) == max(sel["validation_success"])
    with pytest.raises(InputError, match="candidates"):
        FitConfig(candidates=0)
