"""Moves as pose changes: the step of each move, the move that best reduces a pose offset, motor noise.

Example:
    >>> import numpy as np
    >>> scene = PoseScene.sample(np.random.default_rng(0), size=64)
    >>> best_move(scene, scene.standard_pose("femur").moved("rotation", -20.0), "femur")
    'rotate+'
    >>> apply_move(Pose(), "rotate+").rotation
    5.0
"""

from __future__ import annotations

import math

import numpy as np

from pcbm.data.phantom.pose import POSE_DIMS, Pose, PoseScene
from pcbm.navigation.policy import MOVES

#: one step of each pose dimension (mm, mm, degrees, degrees)
STEP: dict[str, float] = {"along": 2.5, "across": 3.0, "tilt": 4.0, "rotation": 5.0}
_DIM = {"along": "along", "across": "across", "tilt": "tilt", "rotate": "rotation"}
_STEPS = np.array([STEP[d] for d in POSE_DIMS])


def distance(scene: PoseScene, pose: Pose, plane: str) -> float:
    """How far ``pose`` is from ``plane``'s standard section, in steps: the norm of
    :meth:`~pcbm.data.phantom.pose.PoseScene.plane_offset` divided by :data:`STEP`."""
    return float(np.linalg.norm(scene.plane_offset(pose, plane) / _STEPS))


def best_move(scene: PoseScene, pose: Pose, plane: str, standard: bool = False) -> str:
    """The move (one exact step) that most reduces :func:`distance` to ``plane``; ``stay`` when the
    frame is already standard."""
    if standard:
        return "stay"
    moves = MOVES[1:]
    return moves[int(np.argmin([distance(scene, apply_move(pose, m), plane) for m in moves]))]


def apply_move(pose: Pose, move: str, rng: np.random.Generator | None = None, noise: float = 0.0) -> Pose:
    """``pose`` after ``move`` (a tilt pivots about the image's centre); with ``noise`` > 0 the hand errs: the step's size is off by a factor
    ``1 + noise * N(0, 1)`` and every dimension drifts by ``N(0, noise / 2)`` steps (even on ``stay``)."""
    if move not in MOVES:
        raise ValueError(f"unknown move {move!r}; moves: {', '.join(MOVES)}")
    delta = np.zeros(4)
    if move != "stay":
        i = POSE_DIMS.index(_DIM[move[:-1]])
        delta[i] = _STEPS[i] * (1.0 if move.endswith("+") else -1.0)
    if noise > 0 and rng is not None:
        delta *= 1.0 + noise * rng.standard_normal()
        delta += _STEPS * rng.normal(0.0, noise / 2, 4)
    v = pose.vector() + delta
    # a tilt pivots about the centre of the image (the probe is rocked so that what lies mid-screen
    # stays there), so the probe's contact point slides by the change of the beam's sine
    th, pivot = math.radians(pose.rotation), pose.depth / 2
    ds = math.sin(math.radians(pose.tilt)) - math.sin(math.radians(v[2]))
    v[0] += pivot * ds * math.cos(th)
    v[1] -= pivot * ds * math.sin(th)
    return Pose(*v.tolist(), depth=pose.depth)
