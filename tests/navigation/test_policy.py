"""The navigation policy file, its wording and the hint API (numpy only)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pcbm.errors import InputError
from pcbm.navigation import MOVES, Policy, Tree, default_policy, hint
from pcbm.navigation.features import FEATURE_NAMES
from pcbm.navigation.wording import MOVES as MOVE_WORDS
from pcbm.navigation.wording import PLANES, phrase
from pcbm.prediction import Prediction


def _toy() -> Policy:
    i = FEATURE_NAMES.index("cerebellum_visible")
    t = Tree([i, -1, -1], [0.5, 0.0, 0.0], [1, -1, -1], [2, -1, -1],
             [[0, 0.5, 0.5, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1, 0]], [0.5, 0, 0])
    return Policy(FEATURE_NAMES, MOVES, {"trans_thalamic": t})


def _pred(**props: float) -> Prediction:
    return Prediction("f", "trans_cerebellar", {"trans_cerebellar": 0.8, "trans_thalamic": 0.1}, "close_to_standard",
                      False, [], properties=dict(props))


def test_policy_file_round_trips(tmp_path) -> None:
    pol = default_policy()
    pol.save(tmp_path / "p.json")
    back = Policy.load(tmp_path / "p.json")
    assert back.to_dict() == pol.to_dict()
    x = np.random.default_rng(0).uniform(-1, 1, len(FEATURE_NAMES))
    for plane in pol.planes:
        assert back.decide(plane, x)[0] == pol.decide(plane, x)[0]


def test_bad_policy_files_are_input_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        Policy.load(tmp_path / "missing.json")
    (tmp_path / "old.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(InputError, match="format"):
        Policy.load(tmp_path / "old.json")


def test_reason_names_the_features_that_drove_the_move() -> None:
    h = hint(_pred(cerebellum_visible=0.97), "trans_thalamic", policy=_toy())
    assert h.move == "rotate+" and h.target_plane == "trans_thalamic"
    assert h.reason.startswith("the cerebellum is in view: ") and "trans-thalamic plane" in h.reason
    assert hint(_pred(cerebellum_visible=0.02), "trans_thalamic", policy=_toy()).move == "along+"


def test_standard_frame_says_stay_and_unknown_target_names_the_choices() -> None:
    p = Prediction("f", "femur", {"femur": 0.9}, "standard", True, [], properties={"femur_visible": 1.0})
    assert hint(p, "femur").move == "stay"
    with pytest.raises(InputError, match="did you mean 'femur'.*known: "):
        hint(p, "femr")


def test_nearest_plane_follows_the_plane_probabilities() -> None:
    p = Prediction("f", "abdomen", {"abdomen": 0.7, "femur": 0.2}, "close_to_standard", False, [], properties={})
    assert hint(p).target_plane == "abdomen"


def test_every_feature_move_and_plane_has_words() -> None:
    for f in FEATURE_NAMES:
        for thr, above in ((0.3, True), (-0.3, False)):
            assert isinstance(phrase(f, thr, above), str)
    assert set(MOVE_WORDS) == set(MOVES)
    assert set(default_policy().planes) <= set(PLANES)


def test_navigation_imports_no_torch() -> None:
    code = ("import sys, numpy as np\n"
            "from pcbm.navigation import hint\n"
            "from pcbm.data.phantom.pose import PoseScene\n"
            "from pcbm.prediction import Prediction\n"
            "h = hint(Prediction('f', 'femur', {'femur': 0.9}, 'close_to_standard', False, [], properties={}))\n"
            "assert h.target_plane == 'femur', h\n"
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, 'torch or sklearn imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_policy_fitted_on_other_features_is_refused_and_a_prefix_is_read() -> None:
    p = Prediction("f", "femur", {"femur": 0.9}, "close_to_standard", False, [], properties={"femur_visible": 1.0})
    i = FEATURE_NAMES.index("femur_visible")
    t = Tree([i, -1, -1], [0.5, 0, 0], [1, -1, -1], [2, -1, -1], [[0.0] * 9, [1.0] + [0.0] * 8, [0.0, 0.0, 1.0] + [0.0] * 6],
             [0.5, 0, 0])
    shorter = Policy(FEATURE_NAMES[: i + 1], MOVES, {"femur": t})  # features appended since are never tested
    assert hint(p, "femur", policy=shorter).move == "along-"
    renamed = Policy(("femur_seen", *FEATURE_NAMES[1:]), MOVES, {"femur": t})
    with pytest.raises(InputError, match="femur_seen.*refit"):
        hint(p, "femur", policy=renamed)
    longer = Policy((*FEATURE_NAMES, "femur_seen_before"), MOVES, {"femur": t})
    with pytest.raises(InputError, match="femur_seen_before"):
        hint(p, "femur", policy=longer)
