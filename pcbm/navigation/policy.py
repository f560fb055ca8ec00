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
#: the moves' dimensions, in the order of an "offset" tree's values
OFFSET_DIMS: tuple[str, ...] = ("along", "across", "tilt", "rotate")
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
    value: list[list[float]]  # per node: share of each move ("moves"), or mean pose offset in steps ("offset")
    gain: list[float]  # per node: weighted impurity decrease of its test
    kind: str = "moves"  # "moves": a classifier of the move; "offset": a regression of the offset to the plane
    dim: str = ""  # an "offset" tree of one dimension only (its values have one column): which

    def move_of(self, node: int) -> tuple[str, float]:
        """The move a node's value says, and its strength (a share, or the offset in steps)."""
        v = np.asarray(self.value[node], float)
        if self.dim:
            return f"{self.dim}{'+' if v[0] > 0 else '-'}", float(abs(v[0]))
        if self.kind == "offset":  # the dimension furthest off, each way
            i = int(np.abs(v).argmax())
            return f"{OFFSET_DIMS[i]}{'+' if v[i] > 0 else '-'}", float(abs(v[i]))
        return MOVES[int(v.argmax())], float(v.max())

    def support(self, node: int, move: str) -> float:
        """How much a node's value speaks for ``move`` (its share, or its signed offset in steps)."""
        v = np.asarray(self.value[node], float)
        sign = 1.0 if move.endswith("+") else -1.0
        if self.dim:
            return float(v[0] * sign) if move[:-1] == self.dim else 0.0
        if self.kind == "offset":
            return float(v[OFFSET_DIMS.index(move[:-1])] * sign)
        return float(v[MOVES.index(move)])

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
        """The target planes (a plane's trees are keyed ``plane`` or ``plane/dimension``)."""
        return tuple(dict.fromkeys(k.split("/")[0] for k in self.trees))

    def trees_of(self, plane: str) -> list[str]:
        """The keys of ``plane``'s trees: one tree, or one per pose dimension."""
        from pcbm.errors import look_up

        look_up(plane, self.planes, "navigation target plane")
        return [k for k in self.trees if k.split("/")[0] == plane]

    def decide(self, plane: str, x: np.ndarray | list[float]) -> tuple[str, float, list[int], str]:
        """(move, its strength at the leaf, path, the deciding tree's key) for features ``x`` toward
        ``plane``; with a tree per dimension, the dimension predicted furthest off decides."""
        x = np.asarray(x, np.float64)
        best: tuple[str, float, list[int], str] | None = None
        for key in self.trees_of(plane):
            path = self.trees[key].path(x)
            move, strength = self.trees[key].move_of(path[-1])
            if best is None or strength > best[1]:
                best = (move, strength, path, key)
        assert best is not None  # trees_of never returns an empty list for a known plane
        return best

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
