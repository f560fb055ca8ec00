"""Moves as pose changes: the step of each move, the move that best reduces a pose offset, motor noise.

Example:
    >>> import numpy as np
    >>> best_move(np.array([1.0, 0.0, -12.0, 3.0]), standard=False)
    'tilt-'
    >>> apply_move(Pose(), "rotate+").rotation
    5.0
"""

from __future__ import annotations

import numpy as np

from pcbm.data.phantom.pose import POSE_DIMS, Pose
from pcbm.navigation.policy import MOVES

#: one step of each pose dimension (mm, mm, degrees, degrees)
STEP: dict[str, float] = {"along": 2.5, "across": 3.0, "tilt": 4.0, "rotation": 5.0}
_DIM = {"along": "along", "across": "across", "tilt": "tilt", "rotate": "rotation"}
_STEPS = np.array([STEP[d] for d in POSE_DIMS])


def best_move(offset: np.ndarray, standard: bool) -> str:
    """The move that most reduces the step-normalised pose offset (4,) to the target; ``stay`` when the
    frame is already standard."""
    if standard:
        return "stay"
    z = np.asarray(offset, float) / _STEPS
    i = int(np.abs(z).argmax())
    name = ("along", "across", "tilt", "rotate")[i]
    return f"{name}{'+' if z[i] > 0 else '-'}"


def apply_move(pose: Pose, move: str, rng: np.random.Generator | None = None, noise: float = 0.0) -> Pose:
    """``pose`` after ``move``; with ``noise`` > 0 the hand errs: the step's size is off by a factor
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
    return Pose(*v.tolist(), depth=pose.depth)
