"""``hint(prediction, target=None) -> Hint``: the next probe move and why, in concept words.

Example:
    >>> from pcbm.navigation.policy import MOVES, Policy, Tree
    >>> from pcbm.navigation.features import FEATURE_NAMES
    >>> from pcbm.prediction import Prediction
    >>> i, share = FEATURE_NAMES.index("cerebellum_visible"), lambda m: [float(k == m) for k in MOVES]
    >>> t = Tree([i, -1, -1], [0.5, 0, 0], [1, -1, -1], [2, -1, -1], [share("along+"), share("along+"),
    ...          share("rotate+")], [0.5, 0, 0])
    >>> pol = Policy(FEATURE_NAMES, MOVES, {"trans_thalamic": t})
    >>> p = Prediction("f", "trans_cerebellar", {"trans_cerebellar": 0.9}, "close_to_standard", False, [],
    ...                properties={"cerebellum_visible": 0.97})
    >>> h = hint(p, "trans_thalamic", policy=pol)
    >>> h.move, h.reason
    ('rotate+', 'the cerebellum is in view: rotate the probe, its right end toward the fetal head to reach the trans-thalamic plane.')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcbm.errors import InputError, look_up
from pcbm.navigation import wording
from pcbm.navigation.features import FEATURE_NAMES, features, frame_features, present_flag
from pcbm.navigation.policy import DEFAULT_POLICY, Policy

#: how many of the path's tests the reason names (the ones that removed the most impurity)
REASON_TESTS = 2


@dataclass(frozen=True)
class Hint:
    """A probe move toward a target plane, with its reason in words.

    Attributes:
        move: one of :data:`pcbm.navigation.policy.MOVES`.
        target_plane: the plane the move leads to.
        reason: the sentence shown to the sonographer.
        arrow: a one-character arrow for the move (the live page's).
        evidence: the feature tests behind the move, as (feature, threshold, above).
        confidence: the move's strength at the tree's leaf: its share among the training frames there
            (a move classifier), or the offset left along its dimension, in steps (an offset tree).
    """

    move: str
    target_plane: str
    reason: str
    arrow: str = ""
    evidence: tuple[tuple[str, float, bool], ...] = ()
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``navigation`` field of ``pcbm predict``'s JSON."""
        return {"move": self.move, "target_plane": self.target_plane, "reason": self.reason, "arrow": self.arrow,
                "confidence": round(self.confidence, 3)}


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Policy:
    return Policy.load(path)


def default_policy() -> Policy:
    """The shipped policy (read once)."""
    return _load(str(DEFAULT_POLICY))


def known_target(target: str, what: str = "navigation target plane", policy: Policy | None = None) -> str:
    """``target`` if ``policy`` (default: the shipped one) can steer toward it.

    Raises:
        InputError: naming the planes it knows (and the closest one).
    """
    return look_up(target, (policy or default_policy()).planes, what)


def nearest_plane(prediction: Any, policy: Policy) -> str:
    """The plane the frame is closest to, among those the policy knows: the most probable one."""
    probs = dict(getattr(prediction, "plane_probs", {}) or {})
    known = [p for p in policy.planes]
    return max(known, key=lambda p: (probs.get(p, 0.0), -known.index(p)))


def _reason(policy: Policy, plane: str, key: str, x: np.ndarray, path: list[int], move: str) -> tuple[str, tuple]:
    """The sentence: the path's tests (in tree ``key``) that raised the support for ``move`` most, in words."""
    tree = policy.trees[key]
    lift = [(tree.support(child, move) - tree.support(node, move), node) for node, child in zip(path, path[1:], strict=False)]
    tests, seen = [], set()
    for up, node in sorted(lift, key=lambda t: -t[0]):
        feat = policy.features[tree.feature[node]]
        thr = float(tree.threshold[node])
        test = (feat, thr, bool(x[tree.feature[node]] > thr))
        flag = present_flag(feat)
        absent = flag is not None and x[policy.features.index(flag)] < 0.5
        if up <= 0 or feat in seen or absent or not wording.phrase(*test):  # against the move, or nothing to say
            continue
        seen.add(feat)
        tests.append(test)
        if len(tests) == REASON_TESTS:
            break
    evidence = " and ".join(wording.phrase(*t) for t in tests) or wording.NO_EVIDENCE
    words = wording.MOVES[move]["text"]
    template = wording.STAY_TEMPLATE if move == "stay" else wording.TEMPLATE
    text = template.format(evidence=evidence, move=words, plane=wording.PLANES.get(plane, plane.replace("_", " ")))
    return text, tuple(tests)


def _frame(prediction: Any) -> np.ndarray:
    return frame_features(getattr(prediction, "properties", None) or {}, getattr(prediction, "masks", None))


def _first_difference(names: tuple[str, ...]) -> str:
    """The first of a policy's feature names that is not this pcbm's (or the first one past them)."""
    for n, m in zip(names, FEATURE_NAMES, strict=False):
        if n != m:
            return n
    return names[len(FEATURE_NAMES)]


def hint(prediction: Any, target: str | None = None, policy: Policy | None = None, previous: Any = None,
         last_move: str | None = None) -> Hint:
    """The next probe move toward ``target`` (None: the nearest standard plane the policy knows).

    Args:
        prediction: a :class:`pcbm.prediction.Prediction` (its properties, plane probabilities and,
            when kept, its masks; without masks the policy reads the properties alone).
        target: a plane name, e.g. "trans_thalamic".
        policy: a :class:`Policy` (default: the shipped one).
        previous: the Prediction of the frame before the last move (optional: what changed helps).
        last_move: the move made since ``previous`` (e.g. the last hint, followed).

    Raises:
        InputError: for a target plane the policy does not know (naming the known ones), or a policy
            fitted on features this pcbm does not compute (features only appended since are fine).
    """
    policy = policy or default_policy()
    if policy.features != FEATURE_NAMES[: len(policy.features)]:  # fitted on features this pcbm computes otherwise
        raise InputError(f"navigation policy reads {len(policy.features)} features that are not this pcbm's "
                         f"(first difference: {_first_difference(policy.features)!r}); refit it with 'pcbm navigation fit'")
    plane = known_target(target, policy=policy) if target is not None else nearest_plane(prediction, policy)
    if getattr(prediction, "standard", False) and getattr(prediction, "plane", None) == plane:
        text = wording.STAY_TEMPLATE.format(evidence=f"every criterion of {wording.PLANES.get(plane, plane)} is met",
                                            move=wording.MOVES["stay"]["text"], plane=wording.PLANES.get(plane, plane))
        return Hint("stay", plane, text, wording.MOVES["stay"]["arrow"], (), 1.0)
    x = features(_frame(prediction), None if previous is None else _frame(previous), last_move)
    move, strength, path, key = policy.decide(plane, x)
    text, tests = _reason(policy, plane, key, x, path, move)
    return Hint(move, plane, text, wording.MOVES[move]["arrow"], tests, strength)
