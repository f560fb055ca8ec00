"""Image preprocessing shared by training and inference (numpy/OpenCV only, no torch).

An image of any size is *letterboxed* into the model's square input: scaled so that its long side
is ``size`` pixels (aspect ratio kept, so a round skull stays round), centred, and padded with
black, which reads as "outside the scan sector". :class:`Letterbox` remembers the geometry so that
predicted masks can be mapped back onto the original image for measurements in mm.

Example:
    >>> import numpy as np
    >>> x, box = letterbox(np.full((540, 800), 128, np.uint8), 160)
    >>> x.shape, x.dtype, box.scale, box.content_shape
    ((160, 160), dtype('float32'), 0.2, (108, 160))
    >>> box.mm_per_model_px(0.1)  # mm covered by one model pixel
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Where an original (H, W) image sits inside the model's (size, size) input.

    Attributes:
        size: side of the square model input.
        original_shape: (H, W) of the original image.
        scale: model pixels per original pixel (size / max(H, W)).
        top, left: offset of the content inside the square, in model pixels.
        content_shape: (h, w) of the scaled content, in model pixels.
    """

    size: int
    original_shape: tuple[int, int]
    scale: float
    top: int
    left: int
    content_shape: tuple[int, int]

    @property
    def long_side(self) -> int:
        """Long side of the original image in pixels (continuous properties are normalised by it)."""
        return max(self.original_shape)

    def mm_per_model_px(self, pixel_spacing_mm: float) -> float:
        return pixel_spacing_mm / self.scale


def make_letterbox(shape: tuple[int, int], size: int) -> Letterbox:
    """The letterbox geometry of an image of ``shape`` in a ``size`` × ``size`` input."""
    if size < 8:
        raise ValueError(f"input size must be at least 8, got {size}")
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"image has an empty shape {shape}")
    scale = size / max(h, w)
    ch, cw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    return Letterbox(size, (h, w), scale, (size - ch) // 2, (size - cw) // 2, (ch, cw))


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Turn a grayscale uint8 image of any size into the model input: float32 (size, size) in [0, 1].

    Raises:
        ValueError: for an image that is not 2-D uint8.
    """
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"image must be a 2-D uint8 array, got shape {img.shape} dtype {img.dtype}")
    box = make_letterbox(img.shape, size)
    out = np.zeros((size, size), np.float32)
    out[box.top : box.top + box.content_shape[0], box.left : box.left + box.content_shape[1]] = _resize(
        img.astype(np.float32) / 255.0, box.content_shape, shrink=box.scale < 1
    )
    return out, box


def letterbox_mask(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map a (H, W) mask (bool / 0-255 / probabilities) into the model frame as float32 in [0, 1]."""
    m = np.asarray(mask)
    if m.shape != box.original_shape:
        raise ValueError(f"mask has shape {m.shape}, image has {box.original_shape}")
    m = (m > 0).astype(np.float32) if m.dtype == bool or np.issubdtype(m.dtype, np.integer) else m.astype(np.float32)
    out = np.zeros((box.size, box.size), np.float32)
    out[box.top : box.top + box.content_shape[0], box.left : box.left + box.content_shape[1]] = _resize(
        m, box.content_shape, shrink=box.scale < 1
    )
    return out


def unletterbox(prob: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map model-frame maps (size, size) or (C, size, size) back to the original (H, W) / (C, H, W).

    Probabilities are resized bilinearly, so thresholding at 0.5 afterwards gives a smooth outline
    at the original resolution (what HC is measured on).
    """
    p = np.asarray(prob, np.float32)
    squeeze = p.ndim == 2
    if squeeze:
        p = p[None]
    if p.shape[-2:] != (box.size, box.size):
        raise ValueError(f"expected maps of size {box.size}, got {p.shape[-2:]}")
    crop = p[:, box.top : box.top + box.content_shape[0], box.left : box.left + box.content_shape[1]]
    out = np.stack([cv2.resize(c, box.original_shape[::-1], interpolation=cv2.INTER_LINEAR) for c in crop])
    return out[0] if squeeze else out


def _resize(a: np.ndarray, shape: tuple[int, int], shrink: bool) -> np.ndarray:
    if a.shape == tuple(shape):
        return a
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
