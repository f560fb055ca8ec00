"""Validators for numbers a user gives (flags, CSV cells, API fields): one rule each, one message.

Example:
    >>> pixel_spacing(0.12, "--pixel-spacing")
    0.12
    >>> pixel_spacing(float("nan"), "--pixel-spacing")
    Traceback (most recent call last):
    ...
    pcbm.errors.InputError: --pixel-spacing must be a finite number of mm per pixel in [0.01, 10], got nan
    >>> pixel_spacing(1e-300, "--pixel-spacing")
    Traceback (most recent call last):
    ...
    pcbm.errors.InputError: --pixel-spacing must be a finite number of mm per pixel in [0.01, 10], got 1e-300

The plausible pixel spacing is one range, [MIN_PIXEL_SPACING_MM, MAX_PIXEL_SPACING_MM] = [0.01, 10] mm,
checked here for every entry point (flags, CSV cells, API fields, DICOM headers, ``Engine.predict``,
``pcbm live``). Why these bounds:

* 0.01 mm (10 µm): the finest fetal and obstetric probes (up to ~20 MHz) resolve ~0.1 mm and scanners
  store 0.03-1 mm per pixel; a spacing below 10 µm is a unit mistake (µm or m typed as mm) or a broken
  header, and it turns every length into 0.0 mm that still looks "reliable".
* 10 mm: a whole 30 cm field of view shown in the 32 pixels of the smallest image the tools take is
  ~9.4 mm per pixel (the phantom at ``size=32`` reaches ~9 mm); more than that is a unit mistake (cm
  or m typed as mm).
"""

from __future__ import annotations

import math
from typing import Any

from pcbm.errors import InputError

MIN_PIXEL_SPACING_MM = 0.01  # mm per pixel; scanners store 0.03-1 mm; smaller is a unit mistake (um, m)
MAX_PIXEL_SPACING_MM = 10.0  # mm per pixel; 30 cm shown in 32 px is ~9.4 mm; larger is a unit mistake (cm, m)
SPACING_RANGE = f"[{MIN_PIXEL_SPACING_MM:g}, {MAX_PIXEL_SPACING_MM:g}]"  # for messages


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{where} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number, got {value!r}") from None


def is_pixel_spacing(v: float) -> bool:
    """Whether ``v`` (mm per pixel) is a plausible pixel spacing: finite and in [0.01, 10] mm (see the
    module docstring for why)."""
    return math.isfinite(v) and MIN_PIXEL_SPACING_MM <= v <= MAX_PIXEL_SPACING_MM


def pixel_spacing(value: Any, where: str = "pixel spacing") -> float:
    """A pixel spacing in mm per pixel: finite and in [0.01, 10] mm (else an InputError naming ``where``)."""
    v = _as_float(value, where)
    if not is_pixel_spacing(v):
        shown = f"{v:g}" if isinstance(value, float | int) else repr(value)
        raise InputError(f"{where} must be a finite number of mm per pixel in {SPACING_RANGE}, got {shown}")
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
