"""Intervention experiments over a dataset: policies that choose which concept a person corrects
next, a noisy expert, intervention curves (task accuracy against concepts corrected) and leakage
checks (completeness; "zero the concepts" ablations).

All of it runs on the decision stage alone (``model.from_values``), from the concept values the
model predicted once per image, so a curve over hundreds of images takes seconds.

Example:
    >>> from pcbm.data import open_dataset  # doctest: +SKIP
    >>> cs = ConceptSet.from_model(model, open_dataset("phantom:n=200,seed=7"))  # doctest: +SKIP
    >>> curve = intervention_curve(model, cs, UncertaintyPolicy())  # doctest: +SKIP
    >>> curve.concepts_to_fix(0.9)  # doctest: +SKIP
    3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcbm.concepts import BINARY_PROPERTIES, PLANE_NAMES, PROPERTY_CONCEPT_NAMES
from pcbm.concepts.assess import property_row
from pcbm.errors import InputError

BINARY_INDEX = np.array([PROPERTY_CONCEPT_NAMES.index(n) for n in BINARY_PROPERTIES])


@dataclass
class ConceptSet:
    """Predicted and true property concepts of N images, in the decision stage's units.

    Attributes:
        predicted: (N, P) values the model predicted (binary probabilities; continuous lengths
            normalised by the image's long side, as ``model.from_values`` reads them).
        true: (N, P) ground truth in the same units, NaN where unknown.
        plane: (N,) true plane index, -1 where unknown.
        standard: (N,) true standard flag as 1/0, -1 where unknown.
        ids: sample ids.
        zero_mask_values: (N, P) values predicted from empty masks (the image alone), for leakage checks.
    """

    predicted: np.ndarray
    true: np.ndarray
    plane: np.ndarray
    standard: np.ndarray
    ids: list[str] = field(default_factory=list)
    zero_mask_values: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.predicted)

    @classmethod
    def from_model(cls, model: Any, samples: Sequence[Any], batch_size: int = 16) -> ConceptSet:
        """Run ``model`` once over ``samples`` (pcbm.data.Sample) and collect predicted vs true concepts."""
        import torch


        pred, true, zero, planes, std, ids = [], [], [], [], [], []
        model.eval()
        for start in range(0, len(samples), batch_size):
            batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
            x, boxes = model.prepare([s.image for s in batch])
            ls = torch.tensor([float(b.long_side) for b in boxes])
            with torch.inference_mode():
                out = model(x, long_side=ls)
                pred.append(model.property_values(out.property_logits).numpy())
                z = model.from_masks(torch.zeros_like(out.masks), x, long_side=ls)
                zero.append(model.property_values(z.property_logits).numpy())
            for s, b in zip(batch, boxes, strict=True):
                true.append(property_row(s.properties, s.pixel_spacing_mm, b.long_side))
                planes.append(PLANE_NAMES.index(s.plane) if s.plane in PLANE_NAMES else -1)
                std.append(-1 if s.standard is None else int(bool(s.standard)))
                ids.append(s.id)
        return cls(np.concatenate(pred), np.stack(true), np.array(planes), np.array(std), ids, np.concatenate(zero))


def decide(model: Any, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the decision stage on (N, P) values: (plane index (N,), standard (N,) bool, plane probs (N, K))."""
    import torch

    with torch.inference_mode():
        out = model.from_values(torch.as_tensor(np.asarray(values), dtype=torch.float32))
    return out.plane_index.numpy(), out.standard.numpy().astype(bool), out.plane_probs.numpy()


def decision_right(pred_plane: np.ndarray, pred_standard: np.ndarray, plane: np.ndarray,
                   standard: np.ndarray) -> np.ndarray:
    """Per item: the decision is right (the plane, and standardness where labelled; -1 = unlabelled)."""
    ok = (pred_plane == plane) | (plane < 0)
    return ok & ((standard < 0) | (pred_standard.astype(int) == standard))


@dataclass
class NoisyExpert:
    """A person who gives the true value of a binary concept, wrong with probability ``error_rate``.

    Example:
        >>> NoisyExpert(0.0).answer(1.0, np.random.default_rng(0))
        1.0
    """

    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise InputError(f"error_rate must be in [0, 1], got {self.error_rate}")

    def answer(self, true_value: float, rng: np.random.Generator) -> float:
        v = float(true_value >= 0.5)
        return 1.0 - v if rng.random() < self.error_rate else v


class Policy:
    """Chooses the order in which a person corrects each image's (binary) concepts.

    Subclasses implement :meth:`order` for one image, or :meth:`orders` for all at once.
    """

    name = "policy"

    def order(self, model: Any, values: np.ndarray, true: np.ndarray, plane: int, standard: int,
              rng: np.random.Generator) -> list[int]:  # pragma: no cover - interface
        raise NotImplementedError

    def orders(self, model: Any, cs: ConceptSet, rng: np.random.Generator) -> list[list[int]]:
        """One order per image of ``cs``."""
        return [self.order(model, cs.predicted[i], cs.true[i], int(cs.plane[i]), int(cs.standard[i]), rng)
                for i in range(len(cs))]


def _correctable(true: np.ndarray) -> list[int]:
    return [int(i) for i in BINARY_INDEX if not math.isnan(true[i])]


class RandomPolicy(Policy):
    """Concepts in random order."""

    name = "random"

    def order(self, model, values, true, plane, standard, rng):
        idx = _correctable(true)
        rng.shuffle(idx)
        return idx


class UncertaintyPolicy(Policy):
    """The least certain concepts first (probability closest to 0.5)."""

    name = "uncertainty"

    def order(self, model, values, true, plane, standard, rng):
        return sorted(_correctable(true), key=lambda i: abs(values[i] - 0.5))


class GreedyPolicy(Policy):
    """Oracle: at each step, the correction that most improves the decision on this image.

    Knows the truth (an upper bound on what any policy can do): scores each candidate correction by
    (decision right) + probability of the true plane, picks the best, and repeats. All images are
    scored together, one decision-stage call per step.
    """

    name = "greedy"

    def order(self, model, values, true, plane, standard, rng):
        cs = ConceptSet(values[None], true[None], np.array([plane]), np.array([standard]))
        return self.orders(model, cs, rng)[0]

    def orders(self, model, cs, rng):
        n = len(cs)
        left = [_correctable(cs.true[i]) for i in range(n)]
        cur = cs.predicted.copy()
        result: list[list[int]] = [[] for _ in range(n)]
        while any(left):
            rows, owner, concept = [], [], []
            for i in range(n):
                for j in left[i]:
                    r = cur[i].copy()
                    r[j] = cs.true[i, j]
                    rows.append(r)
                    owner.append(i)
                    concept.append(j)
            owner_a = np.array(owner)
            p, s, probs = decide(model, np.stack(rows))
            plane, std = cs.plane[owner_a], cs.standard[owner_a]
            ok = decision_right(p, s, plane, std)
            score = ok.astype(float) + np.where(plane >= 0, probs[np.arange(len(p)), np.maximum(plane, 0)], 0.0)
            for i in range(n):
                if not left[i]:
                    continue
                sel = np.nonzero(owner_a == i)[0]
                best = sel[int(np.argmax(score[sel]))]
                j = concept[best]
                result[i].append(j)
                left[i].remove(j)
                cur[i, j] = cs.true[i, j]
        return result


@dataclass
class InterventionCurve:
    """Task accuracy against the number of concepts corrected per image.

    Attributes:
        k: (M,) numbers of concepts corrected.
        accuracy: (M,) decision accuracy (plane right and, where labelled, standardness right).
        plane_accuracy: (M,) plane accuracy alone.
        policy: the policy's name.
        error_rate: the expert's error rate.
        n: number of images.
    """

    k: np.ndarray
    accuracy: np.ndarray
    plane_accuracy: np.ndarray
    policy: str
    error_rate: float
    n: int

    def concepts_to_fix(self, fraction: float = 0.9) -> int | None:
        """Fewest corrections per image that fix ``fraction`` of the initial decision errors (None: never)."""
        err0 = 1.0 - self.accuracy[0]
        if err0 <= 0:
            return 0
        fixed = (self.accuracy - self.accuracy[0]) / err0
        hit = np.nonzero(fixed >= fraction - 1e-9)[0]
        return int(self.k[hit[0]]) if len(hit) else None

    def concepts_to_gain(self, fraction: float = 0.9) -> int | None:
        """Fewest corrections per image that reach ``fraction`` of the gain of correcting them all
        (None when correcting everything gains nothing)."""
        gain = self.accuracy[-1] - self.accuracy[0]
        if gain <= 0:
            return None
        hit = np.nonzero((self.accuracy - self.accuracy[0]) / gain >= fraction - 1e-9)[0]
        return int(self.k[hit[0]])

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "error_rate": self.error_rate, "n": self.n, "k": self.k.tolist(),
                "accuracy": self.accuracy.tolist(), "plane_accuracy": self.plane_accuracy.tolist(),
                "concepts_to_fix_90": self.concepts_to_fix(0.9), "concepts_to_gain_90": self.concepts_to_gain(0.9)}

    def plot(self, ax: Any = None, label: str | None = None, **kwargs: Any) -> Any:
        """Accuracy against concepts corrected (call on several curves with the same ``ax`` to compare)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        name = label or (self.policy + (f" (expert error {self.error_rate:.0%})" if self.error_rate else ""))
        ax.plot(self.k, self.accuracy, marker="o", ms=3, label=name, **kwargs)
        ax.set_xlabel("concepts corrected per image")
        ax.set_ylabel("decision accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return ax


def intervention_curve(
    model: Any,
    concepts: ConceptSet,
    policy: Policy | None = None,
    expert: NoisyExpert | None = None,
    max_k: int | None = None,
    seed: int = 0,
) -> InterventionCurve:
    """Correct 0, 1, 2, … concepts per image in the policy's order and measure the decision accuracy.

    Args:
        model: a PCBM (its decision stage, ``from_values``, is what runs).
        concepts: predicted and true concepts (:meth:`ConceptSet.from_model`).
        policy: which concept to correct next (default: :class:`UncertaintyPolicy`).
        expert: who gives the corrected value (default: always right).
        max_k: most corrections per image (default: all binary concepts).
        seed: seeds the random policy and the expert's errors.
    """
    policy = policy or UncertaintyPolicy()
    expert = expert or NoisyExpert(0.0)
    rng = np.random.default_rng(seed)
    cs = concepts
    n = len(cs)
    max_k = len(BINARY_INDEX) if max_k is None else max_k
    orders = policy.orders(model, cs, rng)
    answers = [[expert.answer(cs.true[i, j], rng) for j in orders[i]] for i in range(n)]
    ks, acc, pacc = [], [], []
    cur = cs.predicted.copy()
    for k in range(max_k + 1):
        if k > 0:
            for i in range(n):
                if k - 1 < len(orders[i]):
                    cur[i, orders[i][k - 1]] = answers[i][k - 1]
        p, s, _ = decide(model, cur)
        ks.append(k)
        acc.append(decision_right(p, s, cs.plane, cs.standard).mean())
        pacc.append(((p == cs.plane) | (cs.plane < 0)).mean())
    return InterventionCurve(np.array(ks), np.array(acc), np.array(pacc), policy.name, expert.error_rate, n)


@dataclass
class LeakageReport:
    """Does the decision rest on the concepts, and only on them?

    Attributes:
        predicted: decision accuracy from the model's predicted concepts.
        true_concepts: accuracy from the true concepts (where known) — completeness: how much of the
            task the concepts can carry.
        zero_masks: accuracy when the visual concepts are all erased (the property head sees the image
            alone). Well above ``chance`` means information leaks past the masks.
        zero_properties: accuracy when every property concept is 0 (the decision sees nothing).
        chance: accuracy of always answering the most frequent (plane, standard) pair.
        n: number of images.
    """

    predicted: float
    true_concepts: float
    zero_masks: float
    zero_properties: float
    chance: float
    n: int

    @property
    def completeness(self) -> float:
        """(predicted − chance) / (true − chance): share of the concept-reachable accuracy reached."""
        den = self.true_concepts - self.chance
        return float((self.predicted - self.chance) / den) if den > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": self.predicted, "true_concepts": self.true_concepts, "zero_masks": self.zero_masks,
                "zero_properties": self.zero_properties, "chance": self.chance, "n": self.n,
                "completeness": self.completeness}

    def __str__(self) -> str:
        return (f"decision accuracy on {self.n} images — predicted concepts {self.predicted:.3f}, true concepts "
                f"{self.true_concepts:.3f}, masks erased {self.zero_masks:.3f}, properties zeroed "
                f"{self.zero_properties:.3f}, chance {self.chance:.3f}")

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        names = ["predicted", "true concepts", "masks erased", "properties zeroed"]
        vals = [self.predicted, self.true_concepts, self.zero_masks, self.zero_properties]
        ax.bar(names, vals, color=["#3b82f6", "#1f8a4c", "#c77c02", "#6b7280"])
        ax.axhline(self.chance, color="k", ls="--", lw=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("decision accuracy")
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
        return ax


def leakage_check(model: Any, concepts: ConceptSet) -> LeakageReport:
    """Completeness and "zero the concepts" ablations on a :class:`ConceptSet`."""
    cs = concepts

    def acc(values: np.ndarray) -> float:
        p, s, _ = decide(model, values)
        return float(decision_right(p, s, cs.plane, cs.standard).mean())

    true_filled = np.where(np.isnan(cs.true), cs.predicted, cs.true)
    zero_masks = acc(cs.zero_mask_values) if cs.zero_mask_values is not None else float("nan")
    pairs = [(int(p), int(s)) for p, s in zip(cs.plane, cs.standard, strict=True)]
    chance = max(pairs.count(x) for x in set(pairs)) / len(pairs) if pairs else float("nan")
    return LeakageReport(acc(cs.predicted), acc(true_filled), zero_masks, acc(np.zeros_like(cs.predicted)),
                         chance, len(cs))
