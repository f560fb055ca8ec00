"""Crops around the head for the head refiner (numpy and OpenCV only, so the torch model and the
torch-free runtime crop, map back and iterate identically).

Example:
    >>> import numpy as np
    >>> m = np.zeros((100, 160), bool); m[20:80, 40:120] = True
    >>> box = head_box(m, margin=1.25)
    >>> (round(box.cx), round(box.cy), round(box.side))
    (80, 50, 100)
    >>> crop(np.full((100, 160), 255, np.uint8), box, 32).shape
    (32, 32)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

#: the crop is this many times the head mask's larger extent (room for a mask that was too small)
MARGIN = 1.3


@dataclass(frozen=True)
class CropBox:
    """A square of ``side`` original pixels centred on (cx, cy), turned by ``angle_deg`` (training only)."""

    cx: float
    cy: float
    side: float
    angle_deg: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        """The 2×3 affine map from original pixels to the (size × size) crop."""
        m = cv2.getRotationMatrix2D((self.cx, self.cy), self.angle_deg, size / self.side)
        m[:, 2] += (size / 2 - self.cx, size / 2 - self.cy)
        return m


def head_box(mask: np.ndarray, margin: float = MARGIN) -> CropBox | None:
    """The crop around a head mask's largest component (None for an empty mask)."""
    m = np.asarray(mask) > 0.5 if np.asarray(mask).dtype != bool else np.asarray(mask)
    if not m.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[k, :4])
    return CropBox(x + w / 2 - 0.5, y + h / 2 - 0.5, max(w, h, 8) * margin)


def frame_box(shape: tuple[int, ...]) -> CropBox:
    """The square holding the whole (H, W) frame: where the refiner looks when no mask is given."""
    h, w = int(shape[0]), int(shape[1])
    return CropBox(w / 2 - 0.5, h / 2 - 0.5, float(max(h, w)))


def crop(image: np.ndarray, box: CropBox, size: int, nearest: bool = False) -> np.ndarray:
    """The (size, size) crop of a 2-D image or mask (outside the image: 0)."""
    a = np.asarray(image)
    src = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    flags = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if box.side > size else cv2.INTER_LINEAR)
    return cv2.warpAffine(src, box.matrix(size), (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def uncrop(prob: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """A (size, size) probability map back onto the original (H, W) image (outside the crop: 0)."""
    p = np.asarray(prob, np.float32)
    return cv2.warpAffine(p, box.matrix(p.shape[0]), (int(shape[1]), int(shape[0])),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def refine_loop(image: np.ndarray, prob_of: Callable[[CropBox], np.ndarray], coarse: np.ndarray | None = None,
                passes: int | None = None, margin: float = MARGIN) -> np.ndarray | None:
    """The refined head probability (H, W): ``prob_of(box)`` (the refiner's probability in a crop,
    mapped back onto the image) around ``coarse``, ``passes`` times (default 1), each crop around
    the previous outline. Without ``coarse``: first a pass on the whole frame (the refiner finds the
    head itself), then 2 crop passes by default. None when there is no head to crop around."""
    if coarse is None:
        coarse = prob_of(frame_box(np.asarray(image).shape)) > 0.5
        passes = 2 if passes is None else passes
    prob = None
    for _ in range(max(1, passes or 1)):
        box = head_box(coarse, margin)
        if box is None:
            return prob
        prob = prob_of(box)
        coarse = prob > 0.5
    return prob
