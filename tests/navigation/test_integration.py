"""The navigation field in predict JSON (only when asked), the CLI flags, the live result message."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.prediction import make_prediction


def _prediction(masks: bool = True):
    probs = np.full(len(PLANE_NAMES), 0.01)
    probs[PLANE_NAMES.index("femur")] = 0.9
    m = np.zeros((len(VISUAL_CONCEPT_NAMES), 64, 64), np.float32)
    m[VISUAL_CONCEPT_NAMES.index("femur"), 30:34, 5:30] = 1.0
    return make_prediction("x", probs, np.full(len(PROPERTY_CONCEPT_NAMES), 0.2), np.ones(len(PROPERTY_CONCEPT_NAMES), bool),
                           "close_to_standard", False, ["femur_magnified"], m if masks else None, 0.3, keep_masks=masks)


def test_navigation_field_only_when_set() -> None:
    p = _prediction()
    before = p.to_dict()
    assert "navigation" not in before
    p.navigation = {"move": "along+", "target_plane": "femur", "reason": "r"}
    after = p.to_dict()
    assert after["navigation"]["move"] == "along+"
    assert {k: v for k, v in after.items() if k != "navigation"} == before


def test_live_result_message_carries_the_hint() -> None:
    from pcbm.live.worker import result_message

    frame = SimpleNamespace(seq=3, captured_at=0.0, frozen_since=0.0, truth=None, image=np.zeros((64, 64), np.uint8),
                            pixel_spacing_mm=0.3)
    msg = result_message(_prediction(), frame, 5.0, 0)
    assert msg["navigation"]["target_plane"] == "femur" and msg["navigation"]["reason"]
    assert msg["prediction"]["navigation"] == msg["navigation"]
    steered = result_message(_prediction(), frame, 5.0, 0, navigate_to="abdomen")  # pcbm live --navigate-to
    assert steered["navigation"]["target_plane"] == "abdomen" and "abdominal" in steered["navigation"]["reason"]


def test_live_refuses_an_unknown_navigation_plane_before_starting(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.errors import InputError
    from pcbm.live.session import LiveSession

    with pytest.raises(InputError, match="femr.*femur"):
        LiveSession("phantom-sweep", "default", tmp_path / "s", navigate_to="femr")
    r = CliRunner().invoke(app, ["live", "--navigate-to", "femr", "--session", str(tmp_path / "t"), "--duration", "1"])
    assert r.exit_code != 0 and "femur" in str(r.exception or r.output)
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()  # nothing started, nothing written


def test_predict_flags_refuse_bad_use(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((64, 64), np.uint8))
    r = CliRunner().invoke(app, ["predict", "default", str(img), "--target", "femur"])
    assert r.exit_code != 0 and "--navigate" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["predict", "default", str(img), "--navigate", "--target", "femr"])
    assert r.exit_code != 0 and "femur" in str(r.exception or r.output)


@pytest.mark.slow
def test_predict_navigate_adds_the_field(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.data.phantom.pose import PoseScene

    scene = PoseScene.sample(np.random.default_rng(0), size=128)
    frame = scene.render(scene.standard_pose("femur").moved("rotation", 15.0), np.random.default_rng(0))
    img = tmp_path / "f.png"
    cv2.imwrite(str(img), frame.image)
    r = CliRunner().invoke(app, ["predict", "default", str(img), "--navigate", "--target", "femur",
                                 "--pixel-spacing", f"{frame.pixel_spacing_mm:.4f}"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.output.strip().splitlines()[-1])
    assert rec["navigation"]["target_plane"] == "femur" and rec["navigation"]["move"] and rec["navigation"]["reason"]


def test_navigation_fit_command_writes_a_policy_and_never_replaces_one(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.navigation import Policy

    out = tmp_path / "p.json"
    args = ["navigation", "fit", "--out", str(out), "--planes", "femur", "--scenes", "1", "--poses", "6",
            "--rounds", "0", "--size", "64"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert Policy.load(out).planes == ("femur",)
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0 and "exists" in str(r.exception or r.output)


def test_navigation_fit_in_two_processes_gives_the_same_policy(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.navigation import Policy

    base = ["navigation", "fit", "--planes", "femur+thorax", "--scenes", "1", "--poses", "6", "--rounds", "1",
            "--episodes", "1", "--size", "64", "--max-depth", "3", "--min-samples-leaf", "2"]
    for name, jobs in (("one.json", "1"), ("two.json", "2")):
        r = CliRunner().invoke(app, [*base, "--jobs", jobs, "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    one, two = Policy.load(tmp_path / "one.json"), Policy.load(tmp_path / "two.json")
    assert one.planes == two.planes == ("femur", "thorax")
    assert one.to_dict() == two.to_dict()
    assert one.meta["fit"]["max_depth"] == 3 and one.meta["fit"]["min_samples_leaf"] == 2


def test_navigation_fit_can_read_frames_with_a_model_package(tmp_path, tiny_package) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.navigation import Policy
    from pcbm.navigation.features import FRAME_FEATURES
    from pcbm.navigation.fit import FitConfig, make_training_set

    # the package's readings, not the ground truth, are what the trees see
    cfg = FitConfig(planes=("femur",), scenes=1, poses=4, size=64)
    x_truth, y_truth = make_training_set(cfg, "femur")
    x_model, y_model = make_training_set(FitConfig(planes=("femur",), scenes=1, poses=4, size=64,
                                                   package=str(tiny_package)), "femur")
    assert np.array_equal(y_truth, y_model)  # the same poses and labels ...
    assert not np.array_equal(x_truth[:, :len(FRAME_FEATURES)], x_model[:, :len(FRAME_FEATURES)])  # ... read otherwise

    out = tmp_path / "p.json"
    args = ["navigation", "fit", "--out", str(out), "--planes", "femur", "--scenes", "1", "--poses", "4", "--rounds", "1",
            "--episodes", "1", "--size", "64", "--package", str(tiny_package)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert str(tiny_package) in Policy.load(out).meta["features_from"]
    r = CliRunner().invoke(app, [*args[:3], str(tmp_path / "q.json"), *args[4:-1], str(tmp_path / "nope")])
    assert r.exit_code != 0 and "not a pcbm model package" in str(r.exception or r.output)
    assert not (tmp_path / "q.json").exists()


def test_navigation_fit_help_shows_the_fit_defaults() -> None:
    import re

    from typer.testing import CliRunner

    from pcbm.cli import app
    from pcbm.navigation.fit import FitConfig

    r = CliRunner().invoke(app, ["navigation", "fit", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    shown = dict(re.findall(r"--([a-z-]+)\s.*?\[default: \(?(\d+)\)?\]", r.output))
    cfg = FitConfig()
    for flag in ("scenes", "poses", "episodes", "rounds", "size", "max-depth", "min-samples-leaf", "candidates",
                 "validation-episodes"):
        assert int(shown[flag]) == getattr(cfg, flag.replace("-", "_")), flag
