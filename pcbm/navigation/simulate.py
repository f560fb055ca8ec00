"""The closed loop: a simulated sonographer follows hints (or moves at random) until the frame is standard.

``observe(frame)`` says whether the frame is standard for the target and gives what the hint reads
(a :class:`~pcbm.prediction.Prediction`); ``choose(observation, previous, last_move, rng)`` picks the
next move from it, the observation before the last move and that move (None at the start). The hand
errs (:func:`pcbm.navigation.moves.apply_move` with ``noise``). Success: the frame is judged standard
for the target within ``max_moves`` moves (the starting frame counts as move 0).

Example:
    >>> import numpy as np
    >>> from pcbm.data.phantom.pose import PoseScene
    >>> scene = PoseScene.sample(np.random.default_rng(0), size=64)
    >>> start = scene.standard_pose("abdomen")
    >>> run_episode(scene, "abdomen", start, oracle_observer("abdomen"), lambda o, p, m, r: "stay",
    ...             np.random.default_rng(0)).success
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcbm.data.phantom.pose import Pose, PoseFrame, PoseScene
from pcbm.navigation.moves import apply_move
from pcbm.navigation.policy import MOVES
from pcbm.prediction import Prediction

Observer = Callable[[PoseFrame], tuple[bool, Any]]
Chooser = Callable[[Any, Any, "str | None", np.random.Generator], str]


@dataclass(frozen=True)
class Episode:
    success: bool
    moves: int  # moves made until standard (max_moves when it failed)
    final_offset: np.ndarray  # (4,) pose offset left at the end


def oracle_prediction(frame: PoseFrame, target: str) -> Prediction:
    """A Prediction built from the frame's ground truth (oracle concepts): properties and masks."""
    std = frame.standard_for(target)
    masks = np.stack([m for m in frame.masks.values()]).astype(np.float32)
    return Prediction("oracle", target if std else "other", {}, "standard" if std else "close_to_standard", std, [],
                      properties=dict(frame.properties), masks=masks)


def hint_chooser(target: str, policy: Any = None) -> Chooser:
    """Follow the hints: the move :func:`pcbm.navigation.hint` gives from the frame, the one before and the last move."""
    from pcbm.navigation.hint import hint

    return lambda obs, prev, last, rng: hint(obs, target, policy=policy, previous=prev, last_move=last).move


def oracle_observer(target: str) -> Observer:
    """Judge and read frames by their ground truth."""
    return lambda frame: (frame.standard_for(target), oracle_prediction(frame, target))


def blind_chooser(observation: Any, previous: Any, last_move: str | None, rng: np.random.Generator) -> str:
    """Blind search: a random move (never ``stay``)."""
    return MOVES[1 + int(rng.integers(len(MOVES) - 1))]


def run_episode(scene: PoseScene, target: str, start: Pose, observe: Observer, choose: Chooser,
                rng: np.random.Generator, max_moves: int = 30, noise: float = 0.3,
                on_frame: Callable[[PoseFrame, bool, Any, str | None], None] | None = None,
                confirm: int = 1) -> Episode:
    """Follow ``choose`` from ``start`` until ``observe`` says standard or ``max_moves`` moves are made
    (``on_frame(frame, standard, previous observation, last move)`` sees every frame: the fit collects the states a policy visits).

    ``confirm`` > 1: the sonographer stops only once ``confirm`` frames in a row are judged standard,
    holding the probe (``stay``, the hand still drifts) after each standard frame, as on the live
    page, whose status is a majority over recent frames; every hold counts as a move.
    """
    pose, prev, last, run = start, None, None, 0
    for k in range(max_moves + 1):
        frame = scene.render(pose, rng)
        standard, obs = observe(frame)
        if on_frame is not None:
            on_frame(frame, standard, prev, last)
        run = run + 1 if standard else 0
        if run >= max(1, confirm):
            return Episode(True, k, scene.offset(pose, target))
        if k == max_moves:
            break
        move = "stay" if run else choose(obs, prev, last, rng)
        pose, prev, last = apply_move(pose, move, rng, noise), obs, move
    return Episode(False, max_moves, scene.offset(pose, target))
