"""Decision layer (property vector -> plane logits) and the ontology's standardness rules.

The linear decision's ``linear.weight[k, p] * x[p]`` is the exact contribution of property ``p``
to the logit of plane ``k`` (``x`` = :attr:`PCBMOutput.concept_inputs`).

Example:
    >>> import torch
    >>> from pcbm.models.decision import LinearDecision, assess
    >>> d = LinearDecision()
    >>> d(torch.zeros(2, 29)).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import torch
from torch import nn

from pcbm.concepts import BINARY_PROPERTIES, PLANE_NAMES, PLANES, PROPERTY_CONCEPT_NAMES

N_PLANES = len(PLANE_NAMES)
N_PROPS = len(PROPERTY_CONCEPT_NAMES)

STANDARD = "standard"
CLOSE = "close_to_standard"
UNKNOWN = "not_a_known_plane"


class LinearDecision(nn.Module):
    """Plane logits as a linear function of the property values: each weight is readable evidence."""

    def __init__(self, n_properties: int = N_PROPS, n_planes: int = N_PLANES):
        super().__init__()
        self.linear = nn.Linear(n_properties, n_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (B, K)


class MLPDecision(nn.Module):
    """A one-hidden-layer MLP over the property values (more capacity, less readable)."""

    def __init__(self, n_properties: int = N_PROPS, n_planes: int = N_PLANES, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_properties, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)  # (B, K)


def assess(
    plane_probs: torch.Tensor,
    binary_values: torch.Tensor,
    min_confidence: float = 0.5,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, list[str], list[list[str]]]:
    """Standardness from the predicted plane's ISUOG criteria (``Plane.check``).

    Args:
        plane_probs: (B, K) plane probabilities.
        binary_values: (B, P) property values; binary entries are probabilities.
        min_confidence: top plane probability below which the frame is "not_a_known_plane".
        threshold: probability at which a binary property counts as true.

    Returns:
        standard (B,) bool, status per item, missing (failed criteria's property names) per item.
    """
    conf, idx = plane_probs.max(1)
    vals = binary_values.detach().float().cpu().tolist()
    standard, status, missing = [], [], []
    for b, k in enumerate(idx.tolist()):
        plane = PLANES[k]
        props = {n: vals[b][i] for i, n in enumerate(PROPERTY_CONCEPT_NAMES) if n in BINARY_PROPERTIES}
        ok, failed = plane.check(props, threshold)
        known = plane.known and float(conf[b].detach()) >= min_confidence
        standard.append(bool(ok and known))
        status.append(UNKNOWN if not known else STANDARD if ok else CLOSE)
        missing.append([c.property for c in failed])
    return torch.tensor(standard, dtype=torch.bool, device=plane_probs.device), status, missing
