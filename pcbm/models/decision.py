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

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
from pcbm.concepts.assess import CLOSE, STANDARD, UNKNOWN

N_PLANES = len(PLANE_NAMES)
N_PROPS = len(PROPERTY_CONCEPT_NAMES)

__all__ = ["CLOSE", "STANDARD", "UNKNOWN", "LinearDecision", "MLPDecision", "assess"]


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
    """Standardness from the predicted plane's ISUOG criteria: :func:`pcbm.concepts.assess.assess` on
    the tensors' values (the runtime calls the same function), the standard flags back as a tensor.

    Returns:
        standard (B,) bool, status per item, missing (failed criteria's property names) per item.
    """
    from pcbm.concepts.assess import assess as assess_np

    probs = plane_probs.detach().float().cpu().numpy()
    standard, status, missing = assess_np(probs, binary_values.detach().float().cpu().numpy(), min_confidence,
                                          threshold)
    return torch.from_numpy(standard).to(plane_probs.device), status, missing
