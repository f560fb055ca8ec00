"""Training: the Lightning module (losses, metrics, optimiser), data mixing, evaluation, train().

``TrainConfig`` is torch-free; ``train``, ``resume`` (:mod:`pcbm.training.trainer`, Lightning) and
``evaluate`` (:mod:`pcbm.training.evaluation`, torch) are imported on first use, so that a command
that never trains (``pcbm --help``, ``pcbm concepts list``) does not pay for torch. The models never
import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

from pcbm.training.config import TrainConfig

_LAZY = {"train": "pcbm.training.trainer", "resume": "pcbm.training.trainer", "evaluate": "pcbm.training.evaluation"}

__all__ = ["TrainConfig", "evaluate", "resume", "train"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once imported, a plain attribute
    return value
