"""The model package's file names, in one place (numpy- and torch-free): what ``pcbm export`` writes and
what the runtime, ``serve``, ``live`` and the commands read.

Example:
    >>> from pcbm.layout import METADATA, is_package
    >>> METADATA, is_package("/nonexistent")
    ('metadata.json', False)
"""

from __future__ import annotations

import os
from pathlib import Path

METADATA = "metadata.json"  # the package's manifest: ontology, graphs, thresholds, every file's sha256
REFERENCE = "reference.json"  # the reference window's summary (drift)
RELIABILITY = "reliability.json"  # temperature and out-of-distribution score
MODEL_CARD = "MODEL_CARD.md"
SEGMENT, PROPERTIES, DECISION, HEAD_REFINER = "segment.onnx", "properties.onnx", "decision.onnx", "head_refiner.onnx"


def is_package(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder ``pcbm export`` wrote (it holds :data:`METADATA`)."""
    return (Path(path) / METADATA).is_file()


__all__ = ["DECISION", "HEAD_REFINER", "METADATA", "MODEL_CARD", "PROPERTIES", "REFERENCE", "RELIABILITY", "SEGMENT",
           "is_package"]
