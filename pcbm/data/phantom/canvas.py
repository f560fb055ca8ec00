"""Drawing primitives for phantom scenes: tissue layers and concept masks drawn together.

A :class:`Canvas` holds the three render layers (echogenicity, bone, attenuation per mm) and one
uint8 mask per visual concept, all in image pixels. Shapes take centres and sizes in pixels
(floats; drawn with sub-pixel precision) and a :class:`Tissue`.

Example:
    >>> c = Canvas(64, spacing_mm=0.5)
    >>> c.ellipse((32, 32), (10, 8), 0, SOFT, mask="head")
    >>> int(c.mask("head").sum()) > 200
    True
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import cv2
import numpy as np

from pcbm.concepts.ontology import VISUAL_CONCEPT_NAMES

_SHIFT = 4
_ONE = 1 << _SHIFT
_IDX = {n: i for i, n in enumerate(VISUAL_CONCEPT_NAMES)}


class Tissue(NamedTuple):
    """Echogenicity (soft tissue = 1), bone (0..1) and attenuation per mm relative to soft tissue."""

    echo: float
    bone: float = 0.0
    atten: float = 0.0


FLUID_T = Tissue(0.004, 0.0, -0.012)  # anechoic, with posterior enhancement
BRAIN_T = Tissue(0.3)
SOFT = Tissue(1.0)
LIVER = Tissue(0.75)
FAT = Tissue(0.6)
BRIGHT = Tissue(2.2)  # echogenic interfaces (falx, fascia, walls)
PLACENTA = Tissue(1.5)
SKULL = Tissue(1.2, 1.0, 0.28)
LONG_BONE = Tissue(1.8, 1.0, 0.9)
VERTEBRA = Tissue(1.8, 1.0, 0.7)


class Canvas:
    """Render layers and concept masks of one scene, in image pixels."""

    def __init__(self, size: int, spacing_mm: float, background: Tissue = FLUID_T):
        self.size = int(size)
        self.spacing_mm = float(spacing_mm)
        self.layers = np.empty((self.size, self.size, 3), np.float32)
        self.layers[:] = background
        self.masks = np.zeros((len(VISUAL_CONCEPT_NAMES), self.size, self.size), np.uint8)

    def px(self, mm: float) -> float:
        """Millimetres to pixels."""
        return mm / self.spacing_mm

    def mask(self, name: str) -> np.ndarray:
        return self.masks[_IDX[name]]

    def ellipse(self, c, axes, angle_deg: float, t: Tissue, mask: str | None = None, thickness: float = -1,
                arc: tuple[float, float] = (0, 360)) -> None:
        """A filled ellipse (or its outline / an arc when ``thickness`` > 0); centre and semi-axes in px."""
        cc = (round(c[0] * _ONE), round(c[1] * _ONE))
        ax = (max(0, round(axes[0] * _ONE)), max(0, round(axes[1] * _ONE)))
        th = -1 if thickness < 0 else max(1, round(thickness))
        cv2.ellipse(self.layers, cc, ax, angle_deg, arc[0], arc[1], t, th, cv2.LINE_8, _SHIFT)
        if mask:
            cv2.ellipse(self.mask(mask), cc, ax, angle_deg, arc[0], arc[1], 1, th, cv2.LINE_8, _SHIFT)

    def circle(self, c, r: float, t: Tissue, mask: str | None = None, thickness: float = -1) -> None:
        self.ellipse(c, (r, r), 0, t, mask, thickness)

    def poly(self, pts: np.ndarray, t: Tissue, mask: str | None = None) -> None:
        """A filled polygon; ``pts`` (N, 2) in px."""
        p = np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)[None]
        cv2.fillPoly(self.layers, p, t, cv2.LINE_8, _SHIFT)
        if mask:
            cv2.fillPoly(self.mask(mask), p, 1, cv2.LINE_8, _SHIFT)

    def line(self, p, q, width: float, t: Tissue, mask: str | None = None) -> None:
        """A line of ``width`` px (at least 1) from p to q."""
        a = (round(p[0] * _ONE), round(p[1] * _ONE))
        b = (round(q[0] * _ONE), round(q[1] * _ONE))
        w = max(1, round(width))
        cv2.line(self.layers, a, b, t, w, cv2.LINE_8, _SHIFT)
        if mask:
            cv2.line(self.mask(mask), a, b, 1, w, cv2.LINE_8, _SHIFT)

    def bar(self, p, q, width: float, t: Tissue, mask: str | None = None) -> None:
        """A filled rectangle of ``width`` px around the segment p-q (for bones and boxes)."""
        p, q = np.asarray(p, float), np.asarray(q, float)
        d = q - p
        n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * width / 2
        self.poly(np.stack([p + n, q + n, q - n, p - n]), t, mask)


def rot(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (u along the angle, v perpendicular, clockwise on screen) of an angle in degrees."""
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])


def ellipse_points(c, axes, angle_deg: float, n: int = 32) -> np.ndarray:
    """(n, 2) points on an ellipse outline, in px."""
    cos_t, sin_t = _unit_circle(n)
    u, v = rot(angle_deg)
    x = c[0] + axes[0] * u[0] * cos_t + axes[1] * v[0] * sin_t
    y = c[1] + axes[0] * u[1] * cos_t + axes[1] * v[1] * sin_t
    return np.stack([x, y], 1)


@functools.lru_cache(maxsize=16)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)
