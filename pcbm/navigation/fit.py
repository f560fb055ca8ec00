"""Fit the navigation policy on the probe-pose phantom (scikit-learn at fit time; the result is JSON).

For each target plane: fetuses under the training scanner styles, probe poses drawn around the
plane's standard pose (most in the starting box, some close to the plane), each frame rendered and
its features taken from its ground-truth masks and properties (or, with ``FitConfig.package``, from
what an exported model predicts of it); the label is the pose offset and the move that most reduces
it (:func:`pcbm.navigation.moves.best_move`). A regression tree per plane and pose dimension (its
tests become the hint's reason) is fitted and stored in flat arrays, then refitted with the frames
its own hints visit in closed loops (DAgger).

Example:
    >>> pol = fit_policy(FitConfig(planes=("femur",), scenes=2, poses=6, size=64, max_depth=2))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pcbm.data.phantom.pose import POSE_PLANES, PoseFrame, PoseScene, random_pose
from pcbm.data.phantom.styles import TRAIN_STYLES
from pcbm.errors import InputError
from pcbm.navigation.features import FEATURE_NAMES, LAST_MOVES, features, frame_features
from pcbm.navigation.moves import STEP, apply_move, best_move
from pcbm.navigation.policy import MOVES, OFFSET_DIMS, Policy, Tree
from pcbm.navigation.simulate import hint_chooser, oracle_prediction, run_episode
from pcbm.prediction import Prediction

STEPS = np.array([STEP[d] for d in ("along", "across", "tilt", "rotation")])


@dataclass(frozen=True)
class FitConfig:
    """How the policy is fitted."""

    planes: tuple[str, ...] = POSE_PLANES  # target planes, one tree each
    scenes: int = 400  # fetuses per plane
    poses: int = 30  # poses per fetus
    size: int = 128  # image side (px) of the rendered frames
    styles: tuple[str, ...] = TRAIN_STYLES  # scanner styles, cycled over the fetuses
    near_fraction: float = 0.3  # share of poses drawn close to the standard pose
    kind: str = "dims"  # "dims": a regression tree of the offset (steps) per pose dimension, the furthest off decides;
    # "offset": one multi-output regression tree of the offset; "moves": a classifier of the best move
    max_depth: int = 14  # tree depth (the hint's reason names the path's two tests that count most)
    min_samples_leaf: int = 5
    rounds: int = 6  # on-policy rounds (DAgger): frames the current policy visits, labelled, added
    episodes: int = 300  # closed-loop episodes per plane and round
    noise: float = 0.3  # the simulated hand's error in those episodes
    seed: int = 0
    package: str | None = None  # read the frames with this exported model package (what a deployed hint
    # reads) instead of their ground truth; the labels and the end of an episode stay ground truth
    candidates: int = 1  # fits per plane, with seeds seed, seed + 1, ...; the one whose hints succeed most
    # often in closed loops on validation fetuses (training styles, never the fit's) is kept
    validation_episodes: int = 200  # closed-loop episodes that choose among the candidates

    def __post_init__(self) -> None:
        for p in self.planes:
            if p not in POSE_PLANES:
                raise InputError(f"unknown navigation plane {p!r}; choose from {', '.join(POSE_PLANES)}")
        if self.kind not in ("dims", "offset", "moves"):
            raise InputError(f"unknown policy kind {self.kind!r}; choose dims, offset or moves")
        if self.scenes < 1 or self.poses < 1 or self.size < 48 or self.max_depth < 1:
            raise InputError(f"fit needs scenes, poses >= 1, size >= 48 and max_depth >= 1, got {self}")
        if self.candidates < 1 or self.validation_episodes < 1:
            raise InputError(f"fit needs candidates and validation_episodes >= 1, got {self.candidates} and "
                             f"{self.validation_episodes}")


def truth_features(frame: PoseFrame) -> np.ndarray:
    """(F0,) a frame's features from its ground-truth masks and properties."""
    masks = np.stack([frame.masks[n] for n in frame.masks]).astype(np.float32)
    return frame_features(frame.properties, masks)


@functools.lru_cache(maxsize=2)
def _engine(package: str) -> Any:
    from pcbm.runtime import Engine

    return Engine(package, threads=1)


def _predict(package: str, frame: PoseFrame) -> Prediction:
    return _engine(package).predict(frame.image, frame.pixel_spacing_mm, keep_masks=True, refine_head=False)


def read(cfg: FitConfig, frame: PoseFrame, target: str) -> Prediction:
    """What a hint reads of a frame: its ground truth, or ``cfg.package``'s prediction (masks kept)."""
    return oracle_prediction(frame, target) if cfg.package is None else _predict(cfg.package, frame)


def read_features(cfg: FitConfig, frame: PoseFrame) -> np.ndarray:
    """(F0,) the frame features of what :func:`read` gives (without building an oracle Prediction)."""
    return truth_features(frame) if cfg.package is None else features_of(_predict(cfg.package, frame))


def labelled(scene: PoseScene, plane: str, frame: PoseFrame, current: np.ndarray, previous: np.ndarray | None = None,
             last_move: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A frame's features (F,) from its frame features ``current`` (F0,) (with those of the frame
    before the last move, when given) and its label (5,): the index of the move that best reduces
    its pose offset, then the offset itself in steps
    (:meth:`~pcbm.data.phantom.pose.PoseScene.plane_offset` / :data:`~pcbm.navigation.moves.STEP`)."""
    x = features(current, previous, last_move)
    move = best_move(scene, frame.pose, plane, frame.standard_for(plane))
    return x, np.array([MOVES.index(move), *(scene.plane_offset(frame.pose, plane) / STEPS)])


def make_training_set(cfg: FitConfig, plane: str, progress: Callable[[int], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, F), labels (N, 5): move index and offset in steps, see :func:`labelled`) for one plane."""
    rng = np.random.default_rng([cfg.seed, POSE_PLANES.index(plane), 20])
    xs, ys = [], []
    for k in range(cfg.scenes):
        scene = PoseScene.sample(rng, style=cfg.styles[k % len(cfg.styles)], size=cfg.size)
        for _ in range(cfg.poses):
            pose = random_pose(scene, plane, rng, scale=0.35 if rng.random() < cfg.near_fraction else 1.25)
            prev, last = None, None
            if rng.random() < 0.7:  # arrived here by a move: the frame before it is known
                last = LAST_MOVES[int(rng.integers(len(LAST_MOVES)))]
                back = last[:-1] + ("-" if last.endswith("+") else "+")
                prev = read_features(cfg, scene.render(apply_move(pose, back, rng, cfg.noise), rng))
            frame = scene.render(pose, rng)
            x, label = labelled(scene, plane, frame, read_features(cfg, frame), prev, last)
            xs.append(x)
            ys.append(label)
        if progress:
            progress(cfg.poses)
    return np.stack(xs), np.stack(ys)


def on_policy_set(cfg: FitConfig, plane: str, policy: Policy, round_: int) -> tuple[np.ndarray, np.ndarray]:
    """The frames ``policy`` visits in closed-loop episodes (hand noise included), each labelled with
    the move it should have made: what the next tree learns from (DAgger)."""
    rng = np.random.default_rng([cfg.seed, POSE_PLANES.index(plane), 21, round_])
    xs, ys = [], []
    seen: dict[str, Prediction] = {}

    def observe(frame: PoseFrame) -> tuple[bool, Prediction]:
        seen["now"] = read(cfg, frame, plane)
        return frame.standard_for(plane), seen["now"]

    for k in range(cfg.episodes):
        scene = PoseScene.sample(rng, style=cfg.styles[k % len(cfg.styles)], size=cfg.size)

        def keep(frame: PoseFrame, standard: bool, prev: object, last: str | None, scene: PoseScene = scene) -> None:
            p = None if prev is None else features_of(prev)
            x, label = labelled(scene, plane, frame, features_of(seen["now"]), p, last)
            xs.append(x)
            ys.append(label)

        run_episode(scene, plane, random_pose(scene, plane, rng), observe,
                    hint_chooser(plane, policy), rng, noise=cfg.noise, on_frame=keep)
    return np.stack(xs), np.stack(ys)


def features_of(prediction: object) -> np.ndarray:
    """(F0,) frame features of a Prediction (its properties and masks)."""
    return frame_features(getattr(prediction, "properties", None) or {}, getattr(prediction, "masks", None))


def _fit_tree(cfg: FitConfig, x: np.ndarray, y: np.ndarray) -> Tree | dict[str, Tree]:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    keep = y[:, 0] != MOVES.index("stay")  # a standard frame ends the search: the tree only ever moves
    if cfg.kind == "dims":  # one regression tree per pose dimension
        out = {}
        for i, dim in enumerate(OFFSET_DIMS):
            reg = DecisionTreeRegressor(max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                                        random_state=cfg.seed).fit(x[keep], y[keep, 1 + i])
            out[dim] = replace(tree_from_sklearn(reg, len(MOVES)), dim=dim)
        return out
    if cfg.kind == "offset":
        reg = DecisionTreeRegressor(max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                                    random_state=cfg.seed).fit(x[keep], y[keep, 1:])
        return tree_from_sklearn(reg, len(MOVES))
    clf = DecisionTreeClassifier(max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                                 class_weight="balanced", random_state=cfg.seed).fit(x[keep], y[keep, 0].astype(int))
    return tree_from_sklearn(clf, len(MOVES))


def tree_from_sklearn(est: object, n_moves: int) -> Tree:
    """A :class:`Tree` from a fitted ``sklearn.tree.DecisionTreeClassifier`` (value: the share of each
    move) or multi-output ``DecisionTreeRegressor`` (value: the mean pose offset in steps, kind "offset")."""
    t = est.tree_  # type: ignore[attr-defined]
    if hasattr(est, "classes_"):
        kind, classes = "moves", list(est.classes_)  # type: ignore[attr-defined]
        value = np.zeros((t.node_count, n_moves))
        counts = t.value[:, 0, :]
        value[:, classes] = counts / np.maximum(counts.sum(1, keepdims=True), 1e-12)
    else:
        kind, value = "offset", t.value[:, :, 0] if t.value.shape[2] == 1 else t.value[:, 0, :]
    n = t.weighted_n_node_samples
    gain = np.zeros(t.node_count)
    inner = t.children_left >= 0
    left, right = t.children_left[inner], t.children_right[inner]
    gain[inner] = (n[inner] * t.impurity[inner] - n[left] * t.impurity[left] - n[right] * t.impurity[right]) / n[0]
    return Tree(feature=[int(f) if c >= 0 else -1 for f, c in zip(t.feature, t.children_left, strict=True)],
                threshold=[round(float(v), 6) if c >= 0 else 0.0 for v, c in zip(t.threshold, t.children_left, strict=True)],
                left=[int(v) for v in t.children_left], right=[int(v) for v in t.children_right],
                value=np.round(value, 4).tolist(), gain=np.round(gain, 6).tolist(), kind=kind)


def _keyed(plane: str, fitted: Tree | dict[str, Tree]) -> dict[str, Tree]:
    if isinstance(fitted, Tree):
        return {plane: fitted}
    return {f"{plane}/{dim}": t for dim, t in fitted.items()}


def _fit_plane(cfg: FitConfig, plane: str, progress: Callable[[int], None] | None = None
               ) -> tuple[dict[str, Tree], dict[str, int]]:
    """One plane's trees (after ``cfg.rounds`` on-policy rounds) and its label counts."""
    x, y = make_training_set(cfg, plane, progress)
    mine = _keyed(plane, _fit_tree(cfg, x, y))
    for r in range(cfg.rounds):
        xo, yo = on_policy_set(cfg, plane, Policy(FEATURE_NAMES, MOVES, mine), r)
        x, y = np.concatenate([x, xo]), np.concatenate([y, yo])
        mine = _keyed(plane, _fit_tree(cfg, x, y))
    return mine, {MOVES[i]: int((y[:, 0] == i).sum()) for i in range(len(MOVES))}


def validate(cfg: FitConfig, plane: str, trees: dict[str, Tree]) -> float:
    """The share of ``cfg.validation_episodes`` closed loops toward ``plane`` that ``trees``' hints end
    on a standard frame within 30 moves: validation fetuses under the training styles (drawn from
    ``cfg.seed`` on a stream of their own, never a fit's frames), read and judged as in the fit."""
    rng = np.random.default_rng([cfg.seed, POSE_PLANES.index(plane), 22])
    policy, wins = Policy(FEATURE_NAMES, MOVES, trees), 0

    def observe(frame: PoseFrame) -> tuple[bool, Prediction]:
        return frame.standard_for(plane), read(cfg, frame, plane)

    for k in range(cfg.validation_episodes):  # the same fetuses, starts and hand for every candidate
        scene = PoseScene.sample(rng, style=cfg.styles[k % len(cfg.styles)], size=cfg.size)
        hand = np.random.default_rng([cfg.seed, POSE_PLANES.index(plane), 23, k])
        wins += run_episode(scene, plane, random_pose(scene, plane, rng), observe, hint_chooser(plane, policy),
                            hand, noise=cfg.noise).success
    return wins / cfg.validation_episodes


def _candidate(cfg: FitConfig, plane: str, k: int, progress: Callable[[int], None] | None = None
               ) -> tuple[dict[str, Tree], dict[str, int], float | None]:
    """Candidate ``k`` of a plane (fit seed ``cfg.seed + k``): its trees, label counts and, when there
    are several candidates, its validation success."""
    trees, counts = _fit_plane(replace(cfg, seed=cfg.seed + k), plane, progress)
    return trees, counts, validate(cfg, plane, trees) if cfg.candidates > 1 else None


def fit_policy(cfg: FitConfig = FitConfig(), progress: Callable[[int], None] | None = None, jobs: int = 1) -> Policy:
    """Render the training frames and fit one tree per plane, then ``cfg.rounds`` on-policy rounds;
    with ``cfg.candidates`` > 1, that many fits per plane (seeds ``cfg.seed``, ``cfg.seed + 1``, ...)
    and the one :func:`validate` rates best is kept (the first of a tie; the choice is in ``meta``).

    ``jobs`` > 1 fits that many planes (and candidates) at once in worker processes (each fit's frames
    come from its own seed, so the policy is the same); ``progress`` then hears of whole fits
    (``cfg.scenes * cfg.poses`` frames each) as they finish, else of the training frames as they are drawn."""
    work = [(plane, k) for plane in cfg.planes for k in range(cfg.candidates)]
    done: dict[tuple[str, int], tuple[dict[str, Tree], dict[str, int], float | None]] = {}
    if jobs > 1 and len(work) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            futures = {w: pool.submit(_candidate, cfg, *w) for w in work}
            for w, fut in futures.items():
                done[w] = fut.result()
                if progress:
                    progress(cfg.scenes * cfg.poses)
    else:
        for w in work:
            done[w] = _candidate(cfg, *w, progress=progress)  # progress frame by frame
    trees, counts, selection = {}, {}, {}
    for plane in cfg.planes:
        scores = [done[plane, k][2] for k in range(cfg.candidates)]
        best = 0 if cfg.candidates == 1 else int(np.argmax(scores))
        trees.update(done[plane, best][0])
        counts[plane] = done[plane, best][1]
        if cfg.candidates > 1:
            selection[plane] = {"seeds": [cfg.seed + k for k in range(cfg.candidates)],
                                "validation_success": scores, "chosen_seed": cfg.seed + best}
    meta = {"fit": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
            **({"selection": selection} if selection else {}),
            "label_counts": counts,
            "features_from": "ground-truth masks and properties of the probe-pose phantom" if cfg.package is None
            else f"the predictions of model package {cfg.package} on the probe-pose phantom"}
    return Policy(FEATURE_NAMES, MOVES, trees, meta)
