"""The typed output of a PCBM forward pass and the intervention request it accepts.

This is the contract between the model (``pcbm.models``), the explainers, the reports, the export
path and the CLI. Tensors are batch-first; names index into the ontology's orders
(``VISUAL_CONCEPT_NAMES``, ``PROPERTY_CONCEPT_NAMES``, ``PLANE_NAMES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pcbm.pipeline import Intervention  # the one intervention type, shared with the runtime


@dataclass
class PCBMOutput:
    """What a PCBM returns for a batch.

    Attributes:
        mask_logits: (B, V, H, W) segmenter logits, one channel per visual concept.
        masks: (B, V, H, W) probabilities after any visual intervention — what the property head read.
        property_logits: (B, P) raw property-head outputs (logits for binary concepts, normalised
            values for continuous ones).
        properties: (B, P) property values after any property intervention: probabilities for
            binary concepts, mm for continuous ones (NaN where unknown, e.g. no pixel spacing).
        applicable: (B, P) bool, False where the concept's structure/plane is absent (not guessed).
        plane_logits: (B, K) decision-layer logits over planes.
        plane_probs: (B, K) softmax of plane_logits.
        standard: (B,) bool — predicted plane is known and all its criteria hold.
        status: per item "standard", "close_to_standard" or "not_a_known_plane".
        missing: per item, the names of the failed criteria of the predicted plane.
        concept_inputs: (B, P) the exact vector the decision layer read (binary probabilities,
            continuous values normalised by the image's long side, 0 where not applicable), so that
            ``decision.linear.weight * concept_inputs`` are exact per-concept contributions. None
            for the concept-free baseline.
        standard_logit: (B,) the concept-free baseline's own standardness logit; None for a PCBM,
            whose standardness comes from the ontology's criteria on its properties.
        class_probs: (B, C) a reference classifier's probabilities over its own classes, in the order
            of its family's ``plane_map`` (e.g. SonoNet-16's "BRAIN-CB"); None for our own families.
        features: (B, C) the segmenter encoder's pooled features (what the out-of-distribution
            score reads), or None.
        ood_score: (B,) the out-of-distribution score (:mod:`pcbm.reliability`), or None
            when the model has no fitted reliability file.
        status_reason: per item, why the status is what it is when the plane's probability alone
            does not say (``"unlike the training data"``), else None.
    """

    mask_logits: torch.Tensor
    masks: torch.Tensor
    property_logits: torch.Tensor
    properties: torch.Tensor
    applicable: torch.Tensor
    plane_logits: torch.Tensor
    plane_probs: torch.Tensor
    standard: torch.Tensor
    status: list[str]
    missing: list[list[str]]
    concept_inputs: torch.Tensor | None = None
    standard_logit: torch.Tensor | None = None
    class_probs: torch.Tensor | None = None
    features: torch.Tensor | None = None
    ood_score: torch.Tensor | None = None
    status_reason: list[str | None] | None = None

    @classmethod
    def without_concepts(cls, plane_logits: torch.Tensor, plane_probs: torch.Tensor, min_confidence: float,
                         standard_logit: torch.Tensor | None = None,
                         class_probs: torch.Tensor | None = None) -> PCBMOutput:
        """The output of a family without concepts (the baseline, a reference classifier): the plane
        is known when it is not "other" and its probability reaches ``min_confidence``; standard when
        known and ``standard_logit`` > 0 (never, without one); concept fields NaN (masks (B, V, 1, 1)),
        applicable all False."""
        from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES

        b, dev = plane_probs.shape[0], plane_probs.device
        conf, idx = plane_probs.max(1)
        known = (idx != PLANE_NAMES.index("other")) & (conf >= min_confidence)
        standard = known & (standard_logit > 0) if standard_logit is not None else torch.zeros_like(known)
        status = ["not_a_known_plane" if not k else "standard" if s else "close_to_standard"
                  for k, s in zip(known.tolist(), standard.tolist(), strict=True)]
        nan_m = plane_probs.new_full((b, len(VISUAL_CONCEPT_NAMES), 1, 1), math.nan)
        nan_p = plane_probs.new_full((b, len(PROPERTY_CONCEPT_NAMES)), math.nan)
        return cls(nan_m, nan_m, nan_p, nan_p, torch.zeros(b, len(PROPERTY_CONCEPT_NAMES), dtype=torch.bool, device=dev),
                   plane_logits, plane_probs, standard, status, [[] for _ in range(b)],
                   standard_logit=standard_logit, class_probs=class_probs)

    @property
    def plane_index(self) -> torch.Tensor:
        return self.plane_probs.argmax(dim=1)

    @property
    def planes(self) -> list[str]:
        """Predicted plane names."""
        from pcbm.concepts import PLANE_NAMES

        return [PLANE_NAMES[i] for i in self.plane_index.tolist()]


__all__ = ["Intervention", "PCBMOutput"]
