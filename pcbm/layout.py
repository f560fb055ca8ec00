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

METADATA = "metadata.json"  # ontology, graphs, thresholds, the model's provenance
MANIFEST = "package.sha256"  # every file's sha256, metadata.json included (pcbm.runtime.verify)
SIGNATURE = "package.sig"  # HMAC-SHA256 of the manifest under the site's key, when one is set
REFERENCE = "reference.json"  # the reference window's summary (drift)
RELIABILITY = "reliability.json"  # temperature and out-of-distribution score
MODEL_CARD = "MODEL_CARD.md"
SEGMENT, PROPERTIES, DECISION, HEAD_REFINER = "segment.onnx", "properties.onnx", "decision.onnx", "head_refiner.onnx"


def is_package(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder ``pcbm export`` wrote (it holds :data:`METADATA`)."""
    return (Path(path) / METADATA).is_file()


__all__ = ["DECISION", "HEAD_REFINER", "MANIFEST", "METADATA", "MODEL_CARD", "PROPERTIES", "REFERENCE", "RELIABILITY",
           "SEGMENT", "SIGNATURE", "is_package"]
