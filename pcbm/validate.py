"""Validators for numbers a user gives (flags, CSV cells, API fields): one rule each, one message.

Example:
    >>> pixel_spacing(0.12, "--pixel-spacing")
    0.12
    >>> pixel_spacing(float("nan"), "--pixel-spacing")
    Traceback (most recent call last):
    ...
    pcbm.errors.InputError: --pixel-spacing must be a finite number of mm per pixel in (0, 10], got nan
"""

from __future__ import annotations

import math
from typing import Any

from pcbm.errors import InputError

MAX_PIXEL_SPACING_MM = 10.0  # mm per pixel; ultrasound is 0.02-1 mm; larger is a unit mistake (cm, m)


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{where} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number, got {value!r}") from None


def is_pixel_spacing(v: float) -> bool:
    """Whether ``v`` (mm per pixel) is a usable pixel spacing: finite, > 0 and at most 10 mm."""
    return math.isfinite(v) and 0 < v <= MAX_PIXEL_SPACING_MM


def pixel_spacing(value: Any, where: str = "pixel spacing") -> float:
    """A pixel spacing in mm per pixel: finite, > 0 and at most 10 mm (else an InputError naming ``where``)."""
    v = _as_float(value, where)
    if not is_pixel_spacing(v):
        shown = f"{v:g}" if isinstance(value, float | int) else repr(value)
        raise InputError(f"{where} must be a finite number of mm per pixel in (0, {MAX_PIXEL_SPACING_MM:g}], got {shown}")
    return v


def finite(value: Any, where: str, positive: bool = False, nonnegative: bool = False,
           maximum: float | None = None) -> float:
    """A finite number (optionally > 0, >= 0 or <= ``maximum``), else an InputError naming ``where``.

    Example:
        >>> finite("2.5", "--weights", positive=True)
        2.5
    """
    v = _as_float(value, where)
    if not math.isfinite(v):
        raise InputError(f"{where} must be a finite number, got {value!r}")
    if positive and not v > 0:
        raise InputError(f"{where} must be a positive number, got {v:g}")
    if nonnegative and v < 0:
        raise InputError(f"{where} must not be negative, got {v:g}")
    if maximum is not None and v > maximum:
        raise InputError(f"{where} must be at most {maximum:g}, got {v:g}")
    return v
