"""Fit the navigation policy on the probe-pose phantom (scikit-learn at fit time; the result is JSON).

For each target plane: fetuses under the training scanner styles, probe poses drawn around the
plane's standard pose (most in the starting box, some close to the plane), each frame rendered and
its features taken from its ground-truth masks and properties; the label is the move that most
reduces the pose offset (:func:`pcbm.navigation.moves.best_move`). A shallow decision tree per plane
(readable: its tests become the hint's reason) is fitted and stored in flat arrays.

Example:
    >>> pol = fit_policy(FitConfig(planes=("femur",), scenes=2, poses=6, size=64, max_depth=2))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcbm.data.phantom.pose import POSE_PLANES, PoseScene, random_pose
from pcbm.data.phantom.styles import TRAIN_STYLES
from pcbm.errors import InputError
from pcbm.navigation.features import FEATURE_NAMES, frame_features
from pcbm.navigation.moves import best_move
from pcbm.navigation.policy import MOVES, Policy, Tree


@dataclass(frozen=True)
class FitConfig:
    """How the policy is fitted."""

    planes: tuple[str, ...] = POSE_PLANES  # target planes, one tree each
    scenes: int = 40  # fetuses per plane
    poses: int = 30  # poses per fetus
    size: int = 128  # image side (px) of the rendered frames
    styles: tuple[str, ...] = TRAIN_STYLES  # scanner styles, cycled over the fetuses
    near_fraction: float = 0.3  # share of poses drawn close to the standard pose
    max_depth: int = 7  # tree depth (readability: a path names at most this many tests)
    min_samples_leaf: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        for p in self.planes:
            if p not in POSE_PLANES:
                raise InputError(f"unknown navigation plane {p!r}; choose from {', '.join(POSE_PLANES)}")
        if self.scenes < 1 or self.poses < 1 or self.size < 48 or self.max_depth < 1:
            raise InputError(f"fit needs scenes, poses >= 1, size >= 48 and max_depth >= 1, got {self}")


def frame_xy(scene: PoseScene, plane: str, pose_rng: np.random.Generator, render_rng: np.random.Generator,
             near: bool) -> tuple[np.ndarray, str, np.ndarray]:
    """One training frame: features (F,), the best move's name and the pose offset (4,)."""
    pose = random_pose(scene, plane, pose_rng, scale=0.35 if near else 1.25)
    frame = scene.render(pose, render_rng)
    masks = np.stack([frame.masks[n] for n in frame.masks]).astype(np.float32)
    x = frame_features(frame.properties, masks)
    off = scene.offset(pose, plane)
    return x, best_move(off, frame.standard_for(plane)), off


def make_training_set(cfg: FitConfig, plane: str, progress: Callable[[int], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, F), y (N,) move indices) for one plane."""
    rng = np.random.default_rng([cfg.seed, POSE_PLANES.index(plane), 20])
    xs, ys = [], []
    for k in range(cfg.scenes):
        scene = PoseScene.sample(rng, style=cfg.styles[k % len(cfg.styles)], size=cfg.size)
        for _ in range(cfg.poses):
            x, move, _ = frame_xy(scene, plane, rng, rng, bool(rng.random() < cfg.near_fraction))
            xs.append(x)
            ys.append(MOVES.index(move))
        if progress:
            progress(cfg.poses)
    return np.stack(xs), np.array(ys)


def tree_from_sklearn(clf: object, n_moves: int) -> Tree:
    """A :class:`Tree` from a fitted ``sklearn.tree.DecisionTreeClassifier`` (all moves as columns)."""
    t = clf.tree_  # type: ignore[attr-defined]
    classes = list(clf.classes_)  # type: ignore[attr-defined]
    value = np.zeros((t.node_count, n_moves))
    counts = t.value[:, 0, :]
    value[:, classes] = counts / np.maximum(counts.sum(1, keepdims=True), 1e-12)
    n = t.weighted_n_node_samples
    gain = np.zeros(t.node_count)
    inner = t.children_left >= 0
    left, right = t.children_left[inner], t.children_right[inner]
    gain[inner] = (n[inner] * t.impurity[inner] - n[left] * t.impurity[left] - n[right] * t.impurity[right]) / n[0]
    return Tree(feature=[int(f) if c >= 0 else -1 for f, c in zip(t.feature, t.children_left, strict=True)],
                threshold=[round(float(v), 6) if c >= 0 else 0.0 for v, c in zip(t.threshold, t.children_left, strict=True)],
                left=[int(v) for v in t.children_left], right=[int(v) for v in t.children_right],
                value=np.round(value, 4).tolist(), gain=np.round(gain, 6).tolist())


def fit_policy(cfg: FitConfig = FitConfig(), progress: Callable[[int], None] | None = None) -> Policy:
    """Render the training frames and fit one tree per plane."""
    from sklearn.tree import DecisionTreeClassifier

    trees, counts = {}, {}
    for plane in cfg.planes:
        x, y = make_training_set(cfg, plane, progress)
        clf = DecisionTreeClassifier(max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                                     class_weight="balanced", random_state=cfg.seed).fit(x, y)
        trees[plane] = tree_from_sklearn(clf, len(MOVES))
        counts[plane] = {MOVES[i]: int((y == i).sum()) for i in range(len(MOVES))}
    meta = {"fit": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
            "label_counts": counts, "features_from": "ground-truth masks and properties of the probe-pose phantom"}
    return Policy(FEATURE_NAMES, MOVES, trees, meta)
