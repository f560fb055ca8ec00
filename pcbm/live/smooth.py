"""What the page shows of a result: the status smoothed over a few frames, in plain words.

Example:
    >>> s = StatusSmoother(window=5)
    >>> [s.update("femur", "standard")[1] for _ in range(3)][-1]
    'standard'
    >>> s.update("femur", "close_to_standard")[1]  # one odd frame does not flip the page
    'standard'
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from pcbm.concepts import get_plane, get_property_concept

STATUS_WORDS = {"standard": "Standard plane", "close_to_standard": "Close to standard",
                "not_a_known_plane": "Not a known plane"}
STATUS_COLOURS = {"standard": "#1a7f37", "close_to_standard": "#b7791f", "not_a_known_plane": "#57606a"}
BIOMETRY = ("hc", "bpd", "ac", "fl")


class StatusSmoother:
    """Majority vote of (plane, status) over the last ``window`` results; a tie goes to the newest."""

    def __init__(self, window: int = 5):
        self.window = max(1, int(window))
        self._recent: deque[tuple[str, str]] = deque(maxlen=self.window)

    def update(self, plane: str, status: str) -> tuple[str, str]:
        self._recent.append((plane, status))
        counts = Counter(self._recent)
        best = max(counts.values())
        for item in reversed(self._recent):
            if counts[item] == best:
                return item
        return plane, status  # pragma: no cover - the deque is never empty here

    def reset(self) -> None:
        self._recent.clear()


def plain_missing(missing: list[str]) -> list[str]:
    """The missing ISUOG criteria in the words of the ontology (``isuog`` text of each property)."""
    out = []
    for name in missing:
        try:
            out.append(get_property_concept(name).isuog or name.replace("_", " "))
        except Exception:  # noqa: BLE001 - an unknown name still reads as words
            out.append(name.replace("_", " "))
    return out


def view(prediction: dict[str, Any], shown: tuple[str, str]) -> dict[str, Any]:
    """The compact record the page draws: raw and smoothed plane/status, words, colours, biometry."""
    plane, status = shown
    raw_plane = prediction["plane"]
    missing = (prediction.get("missing_criteria") or []) if plane == raw_plane else []
    meas = {}
    if status == "standard":
        for k, m in (prediction.get("measurements") or {}).items():
            if k.lower() in BIOMETRY and m.get("value") is not None:
                meas[k.upper()] = f"{m['value']:.1f} {m.get('unit', '')}".strip()
    return {"plane": plane, "plane_title": get_plane(plane).title,
            "status": status, "status_words": STATUS_WORDS.get(status, status),
            "colour": STATUS_COLOURS.get(status, "#57606a"),
            "confidence": round(float(prediction["plane_probs"].get(plane, 0.0)), 3),
            "raw_plane": raw_plane, "raw_status": prediction["status"],
            "missing": plain_missing(list(missing)), "measurements": meas,
            "reason": prediction.get("status_reason")}
