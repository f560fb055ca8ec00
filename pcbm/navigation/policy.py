"""The navigation policy: one small decision tree per target plane, stored as JSON, evaluated with numpy.

A tree maps a frame's features (:mod:`pcbm.navigation.features`) to a probe move. It is fitted on
the probe-pose phantom (:mod:`pcbm.navigation.fit`, scikit-learn at fit time only) and shipped as
``policy.json`` beside this module. Each node keeps its test and the impurity it removed (its
``gain``), so the tests on a frame's path that decided the move can be named (the hint's reason).

Example:
    >>> t = Tree(feature=[0, -1, -1], threshold=[0.5, 0, 0], left=[1, -1, -1], right=[2, -1, -1],
    ...          value=[[0.5, 0.5], [1, 0], [0, 1]], gain=[0.5, 0, 0])
    >>> p = Policy(("f",), ("stay", "along+"), {"femur": t})
    >>> p.decide("femur", [0.9])[0]
    'along+'
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pcbm._io import atomic_open
from pcbm.errors import InputError

#: probe moves: stay, or one step along a pose dimension, each way
MOVES: tuple[str, ...] = ("stay", "along+", "along-", "across+", "across-", "tilt+", "tilt-", "rotate+", "rotate-")
#: the policy shipped with pcbm
DEFAULT_POLICY = Path(__file__).with_name("policy.json")
FORMAT = 1


@dataclass(frozen=True)
class Tree:
    """A fitted decision tree in flat arrays (scikit-learn's layout); leaves have feature -1."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    value: list[list[float]]  # per node: the share of each move among its training frames
    gain: list[float]  # per node: weighted impurity decrease of its test

    def path(self, x: np.ndarray) -> list[int]:
        """Node ids from the root to the leaf that ``x`` (F,) reaches."""
        node, out = 0, [0]
        while self.feature[node] >= 0:
            node = self.left[node] if x[self.feature[node]] <= self.threshold[node] else self.right[node]
            out.append(node)
        return out


@dataclass(frozen=True)
class Policy:
    """Feature names, move names and a tree per target plane."""

    features: tuple[str, ...]
    moves: tuple[str, ...]
    trees: dict[str, Tree]
    meta: dict | None = None

    @property
    def planes(self) -> tuple[str, ...]:
        return tuple(self.trees)

    def decide(self, plane: str, x: np.ndarray | list[float]) -> tuple[str, np.ndarray, list[int]]:
        """(move, move shares at the leaf, path) for features ``x`` toward ``plane``."""
        from pcbm.errors import look_up

        tree = look_up(plane, self.trees, "navigation target plane")
        x = np.asarray(x, np.float64)
        path = tree.path(x)
        shares = np.asarray(tree.value[path[-1]], float)
        return self.moves[int(shares.argmax())], shares, path

    def to_dict(self) -> dict:
        return {"format": FORMAT, "features": list(self.features), "moves": list(self.moves),
                "trees": {k: asdict(t) for k, t in self.trees.items()}, "meta": self.meta or {}}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy as JSON (atomically)."""
        with atomic_open(path, "w") as fh:
            json.dump(self.to_dict(), fh, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict, source: str = "policy") -> Policy:
        if d.get("format") != FORMAT:
            raise InputError(f"{source}: navigation policy format {d.get('format')!r}, expected {FORMAT}")
        trees = {k: Tree(**t) for k, t in d["trees"].items()}
        return cls(tuple(d["features"]), tuple(d["moves"]), trees, d.get("meta") or {})

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_POLICY) -> Policy:
        """Read a policy file.

        Raises:
            InputError: the file is missing, not JSON, or of another format.
        """
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"navigation policy {path} not found; fit one with 'pcbm navigation fit'") from None
        except json.JSONDecodeError as e:
            raise InputError(f"navigation policy {path} is not JSON: {e}") from None
        return cls.from_dict(d, str(path))
