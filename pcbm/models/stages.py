"""A PCBM's network steps in torch, for the one prediction pipeline (:class:`pcbm.pipeline.Pipeline`).

:class:`TorchStages` is the torch twin of :class:`pcbm.runtime.engine.OnnxStages`: the same four
stages (the segmenter, the property head, the decision, the head refiner) on numpy arrays in and out,
so :func:`pcbm.models.predict` and a model package run the same pipeline.

Example:
    >>> import numpy as np
    >>> from pcbm.models import build_model
    >>> from pcbm.pipeline import Pipeline
    >>> p = Pipeline(TorchStages(build_model("tiny").eval())).predict(np.zeros((60, 80), np.uint8))
    >>> p.status in ("standard", "close_to_standard", "not_a_known_plane")
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pcbm.pipeline import RefinerSpec
from pcbm.reliability import Reliability

if TYPE_CHECKING:
    from pcbm.models.families import FamilyModel


class TorchStages:
    """The :class:`pcbm.pipeline.Stages` of a torch PCBM (``model.family.has_concepts``), on its device."""

    def __init__(self, model: FamilyModel):
        model.family.require_concepts("the prediction pipeline")
        self.model = model

    @property
    def identity(self) -> dict[str, Any]:
        return self.model.identity

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(next(self.model.parameters()).device)

    @property
    def size(self) -> int:
        return int(self.model.input_size)

    @property
    def temperature(self) -> float:
        return float(self.model.temperature)

    @property
    def reliability(self) -> Reliability | None:
        return self.model.reliability

    @property
    def min_confidence(self) -> float:
        return float(self.model.config.min_confidence)

    @property
    def refiner(self) -> RefinerSpec | None:
        r = self.model.head_refiner
        if r is None:
            return None
        return RefinerSpec(int(r.config.size), float(r.config.margin), bool(r.flip_tta))

    @torch.inference_mode()
    def segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._tensor(image).contiguous(memory_format=torch.channels_last)
        logits, pooled = self.model.segment(x)
        return logits.float().cpu().numpy(), pooled.float().cpu().numpy()

    @torch.inference_mode()
    def properties(self, masks: np.ndarray, image: np.ndarray) -> np.ndarray:
        return self.model.property_logits(self._tensor(masks), self._tensor(image)).float().cpu().numpy()

    @torch.inference_mode()
    def decide(self, values: np.ndarray) -> np.ndarray:
        return self.model.decide(self._tensor(values)).float().cpu().numpy()

    @torch.inference_mode()
    def refine(self, crops: np.ndarray) -> np.ndarray:
        return self.model.head_refiner(self._tensor(crops)).float().cpu().numpy()


__all__ = ["TorchStages"]
