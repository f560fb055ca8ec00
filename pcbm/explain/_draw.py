"""Drawing helpers for reports: mask overlays, heatmaps and PNG encoding (numpy/OpenCV)."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import cv2
import numpy as np

from pcbm.concepts import VISUAL_CONCEPTS


def overlay_masks(image: np.ndarray, masks: Mapping[str, np.ndarray], alpha: float = 0.35,
                  threshold: float = 0.5) -> np.ndarray:
    """The grayscale image as RGB with each mask filled and outlined in its concept's colour.

    Args:
        image: (H, W) uint8.
        masks: visual concept name -> (H, W) probabilities or bools at the image's size.
    """
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    thick = max(1, round(max(image.shape) / 300))
    for concept in VISUAL_CONCEPTS:  # ontology order: big outlines first, small structures on top
        m = masks.get(concept.name)
        if m is None:
            continue
        on = np.asarray(m, np.float32) > threshold
        if not on.any():
            continue
        color = np.array(concept.color, np.float32)
        rgb[on] = (1 - alpha) * rgb[on] + alpha * color
        contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, contours, -1, tuple(float(c) for c in concept.color), thick)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A [0, 1] heatmap (any size, resized to the image) blended over the image (inferno-like map)."""
    h = cv2.resize(np.asarray(heat, np.float32), image.shape[::-1], interpolation=cv2.INTER_LINEAR)
    h = np.clip(h, 0, 1)
    colored = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].astype(np.float32)
    base = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    a = alpha * h[..., None] ** 0.5  # faint where attribution is faint
    return np.clip((1 - a) * base + a * colored, 0, 255).astype(np.uint8)


def fit_width(rgb: np.ndarray, max_side: int = 720) -> np.ndarray:
    """Downscale so the long side is at most ``max_side`` (keeps reports small)."""
    s = max(rgb.shape[:2])
    if s <= max_side:
        return rgb
    f = max_side / s
    return cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W) gray or (H, W, 3) RGB uint8 array as PNG."""
    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,…`` URI, for self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
