"""Navigation: from "what is missing" to "where to move the probe" (numpy only; no torch).

``hint(prediction, target=None)`` reads a frame's :class:`~pcbm.prediction.Prediction` (its property
concepts and, when kept, its masks) and returns the next probe move toward a target plane (or the
nearest standard plane) with the reason in concept words. The policy is a small decision tree per
plane, fitted on the probe-pose phantom (:mod:`pcbm.data.phantom.pose`, ``pcbm navigation fit``) and
shipped as ``policy.json``; the wording is data (:mod:`pcbm.navigation.wording`).

Example:
    >>> from pcbm.navigation import MOVES, default_policy
    >>> sorted(default_policy().planes)[:2], MOVES[0]
    (['abdomen', 'femur'], 'stay')
"""

from __future__ import annotations

from pcbm.navigation.hint import Hint, default_policy, hint, known_target, nearest_plane
from pcbm.navigation.policy import DEFAULT_POLICY, MOVES, Policy, Tree

__all__ = ["DEFAULT_POLICY", "MOVES", "Hint", "Policy", "Tree", "default_policy", "hint", "known_target", "nearest_plane"]
