"""The ontology's standardness check on arrays (numpy only): what the torch model and the
torch-free runtime (:mod:`pcbm.runtime`) both call, so the two can never disagree on a status.

Example:
    >>> import numpy as np
    >>> from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
    >>> probs = np.zeros((1, len(PLANE_NAMES))); probs[0, PLANE_NAMES.index("femur")] = 0.9
    >>> values = np.ones((1, len(PROPERTY_CONCEPT_NAMES)))
    >>> standard, status, missing = assess(probs, values)
    >>> bool(standard[0]), status[0], missing[0]
    (True, 'standard', [])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pcbm.concepts.ontology import BINARY_PROPERTIES, PLANES, PROPERTY_CONCEPT_NAMES

STANDARD = "standard"
CLOSE = "close_to_standard"
UNKNOWN = "not_a_known_plane"


def assess(plane_probs: np.ndarray, values: np.ndarray, min_confidence: float = 0.5, threshold: float = 0.5
           ) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """Standardness from the predicted plane's ISUOG criteria (``Plane.check``).

    Args:
        plane_probs: (B, K) plane probabilities.
        values: (B, P) property values; binary entries are probabilities.
        min_confidence: top plane probability below which the frame is "not_a_known_plane".
        threshold: probability at which a binary property counts as true.

    Returns:
        standard (B,) bool, status per item, missing (failed criteria's property names) per item.
    """
    probs, vals = np.asarray(plane_probs, np.float64), np.asarray(values, np.float64)
    idx, conf = probs.argmax(1), probs.max(1)
    standard, status, missing = [], [], []
    binary = [(i, n) for i, n in enumerate(PROPERTY_CONCEPT_NAMES) if n in BINARY_PROPERTIES]
    for b, k in enumerate(idx.tolist()):
        plane = PLANES[k]
        ok, failed = plane.check({n: float(vals[b, i]) for i, n in binary}, threshold)
        known = plane.known and float(conf[b]) >= min_confidence
        standard.append(bool(ok and known))
        status.append(UNKNOWN if not known else STANDARD if ok else CLOSE)
        missing.append([c.property for c in failed])
    return np.asarray(standard, bool), status, missing


def property_row(properties: Mapping[str, float | None], pixel_spacing_mm: float | None, long_side: float) -> np.ndarray:
    """(P,) property values as the decision reads them, from values by name (a dataset's labels or a
    prediction's properties): binary ones as given, lengths in mm as a fraction of the image's
    ``long_side`` (NaN without a pixel spacing), NaN where a value is missing or None.

    Example:
        >>> from pcbm.concepts import PROPERTY_CONCEPT_NAMES
        >>> row = property_row({"hc_mm": 100.0, "csp_visible": 1.0}, 0.2, 500)
        >>> float(row[PROPERTY_CONCEPT_NAMES.index("hc_mm")]), float(row[PROPERTY_CONCEPT_NAMES.index("csp_visible")])
        (1.0, 1.0)
    """
    row = np.full(len(PROPERTY_CONCEPT_NAMES), np.nan)
    for i, name in enumerate(PROPERTY_CONCEPT_NAMES):
        v = properties.get(name)
        if v is None:
            continue
        if name in BINARY_PROPERTIES:
            row[i] = float(v)
        elif pixel_spacing_mm:
            row[i] = float(v) / (pixel_spacing_mm * long_side)
    return row
