"""Attribution results: plain arrays with names, ``to_dict()`` and ``plot()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ConceptAttribution:
    """How much each named concept contributed to one target, per batch item.

    Attributes:
        values: (B, N) contributions (same units as the target: a logit).
        names: the N concept names (property or visual concepts).
        targets: per item, the target name (a plane or a property concept).
        method: "exact" (weight × value of a linear layer), "integrated_gradients" or "feature_ablation".
        inputs: (B, N) the concept values the contributions were computed at, when meaningful.
        bias: (B,) the part of the target not carried by any concept (the linear layer's bias), or None.

    Example:
        >>> a = ConceptAttribution(np.array([[0.5, -2.0, 0.1]]), ("a", "b", "c"), ["x"], "exact")
        >>> a.top(2)
        [('b', -2.0), ('a', 0.5)]
    """

    values: np.ndarray
    names: tuple[str, ...]
    targets: list[str]
    method: str
    inputs: np.ndarray | None = None
    bias: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.atleast_2d(np.asarray(self.values, dtype=np.float64))
        if self.values.shape[1] != len(self.names):
            raise ValueError(f"values have {self.values.shape[1]} columns but {len(self.names)} names were given")

    def top(self, k: int = 5, item: int = 0, by: str = "abs") -> list[tuple[str, float]]:
        """The k largest contributions of one item, by absolute value (``by="abs"``) or signed ("pos")."""
        v = self.values[item]
        order = np.argsort(-np.abs(v) if by == "abs" else -v, kind="stable")
        return [(self.names[i], float(v[i])) for i in order[:k]]

    def as_dict(self, item: int = 0) -> dict[str, float]:
        """Contributions of one item by concept name."""
        return {n: float(v) for n, v in zip(self.names, self.values[item], strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "targets": list(self.targets),
            "names": list(self.names),
            "values": self.values.tolist(),
            "inputs": None if self.inputs is None else np.asarray(self.inputs).tolist(),
            "bias": None if self.bias is None else np.asarray(self.bias).tolist(),
        }

    def plot(self, ax: Any = None, item: int = 0, k: int = 10) -> Any:
        """Horizontal bar chart of the k largest contributions (green for, red against)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 0.3 * k + 1))
        top = self.top(k, item)[::-1]
        ax.barh([n for n, _ in top], [v for _, v in top], color=["#2e9d5b" if v >= 0 else "#d1495b" for _, v in top])
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_title(f"{self.targets[item]} ← concepts ({self.method})", fontsize=9)
        ax.tick_params(labelsize=8)
        return ax


@dataclass
class PixelAttribution:
    """A per-pixel attribution map of one target, per batch item.

    Attributes:
        values: (B, H, W) signed attributions (summed over input channels).
        image: (B, H, W) the input image in [0, 1], for overlays.
        targets: per item, the target name.
        method: "integrated_gradients", "saliency" or "gradcam".
        delta: (B,) Integrated Gradients convergence delta, when computed.

    Example:
        >>> a = PixelAttribution(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), ["csp_visible"], "saliency")
        >>> a.heatmap().shape
        (4, 4)
    """

    values: np.ndarray
    image: np.ndarray
    targets: list[str]
    method: str
    delta: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def heatmap(self, item: int = 0, signed: bool = False) -> np.ndarray:
        """The map of one item scaled to [0, 1] (absolute values) or [-1, 1] (``signed=True``)."""
        v = np.asarray(self.values[item], dtype=np.float64)
        if not signed:
            v = np.abs(v)
        m = float(np.abs(v).max())
        return v / m if m > 0 else v

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "targets": list(self.targets),
            "shape": list(self.values.shape),
            "abs_max": [float(np.abs(v).max()) for v in self.values],
            "sum": [float(v.sum()) for v in self.values],
            "delta": None if self.delta is None else np.asarray(self.delta).tolist(),
        }

    def plot(self, ax: Any = None, item: int = 0, alpha: float = 0.55, cmap: str = "inferno") -> Any:
        """The heatmap over the image."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(self.image[item], cmap="gray", vmin=0, vmax=1)
        ax.imshow(self.heatmap(item), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
        ax.set_title(f"{self.targets[item]} ← pixels ({self.method})", fontsize=9)
        ax.axis("off")
        return ax
