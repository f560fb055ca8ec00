"""The three protocols of the study: ``linear`` (probe on frozen features), ``finetune`` (the whole
encoder, Lightning) and ``pcbm`` (a PCBM and its concept-free twin on the same encoder).

Each method returns, for a fold, the predicted class of every test image and of every image of each
external set (:class:`FoldPredictions`)."""

from __future__ import annotations

PROTOCOLS = ("linear", "finetune", "pcbm")
METHODS = {"linear": ("linear",), "finetune": ("finetune",), "pcbm": ("pcbm", "pcbm_free")}
