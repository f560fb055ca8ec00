"""The one sample type every dataset yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    """An image and whatever ground truth is known about it.

    Anything a dataset does not label is absent (``None`` or a missing key), never a made-up
    default: losses and metrics skip what a sample lacks.

    Attributes:
        image: grayscale uint8 array (H, W), any size.
        pixel_spacing_mm: mm per pixel, or None when unknown (measurements are then in px).
        masks: visual concept name -> bool array (H, W). Only *labelled* concepts appear; an
            all-False mask means "labelled and absent".
        mask_boxes: visual concept name -> bool array (H, W) of a *box drawn around* the structure
            (Alzubaidi's CSP and ventricle): the structure lies inside and touches its sides, but
            which pixels inside are the structure is unknown. Training gives such a concept a box
            loss, never a pixel loss; a concept has a mask or a box, not both.
        properties: property concept name -> value (0/1 for binary, a number for continuous).
            Only labelled properties appear; None means "not applicable" (e.g. hc_mm with no head).
        plane: plane name, or None when unlabelled.
        standard: standard-plane flag, or None when unlabelled.
        id: identifier unique within its dataset (usually the file stem).
        subject: subject/patient identifier used for splits.
        source: dataset name ("phantom", "hc18", …).
        field_of_view: bool array (H, W), True inside the scan sector, or None when unknown
            (then the image border stands in for the sector edge in completeness checks).
        meta: anything else (broken criterion, style, file path, notes on conversion).

    Example:
        >>> import numpy as np
        >>> s = Sample(image=np.zeros((4, 4), np.uint8), id="x")
        >>> s.has_masks
        False
    """

    image: np.ndarray
    pixel_spacing_mm: float | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    properties: dict[str, float | None] = field(default_factory=dict)
    plane: str | None = None
    standard: bool | None = None
    id: str = ""
    subject: str = ""
    source: str = ""
    field_of_view: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    mask_boxes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray) or self.image.ndim != 2 or self.image.dtype != np.uint8:
            got = getattr(self.image, "shape", type(self.image))
            dtype = getattr(self.image, "dtype", "")
            raise TypeError(f"sample {self.id!r}: image must be a 2-D uint8 array, got {got} {dtype}")
        for name, m in (*self.masks.items(), *self.mask_boxes.items()):
            if m.shape != self.image.shape:
                raise ValueError(
                    f"sample {self.id!r}: mask {name!r} has shape {m.shape}, image has {self.image.shape}"
                )
        both = sorted(set(self.masks) & set(self.mask_boxes))
        if both:
            raise ValueError(f"sample {self.id!r}: {', '.join(both)} given as a mask and as a box; give one")
        if not self.subject:
            self.subject = self.id

    @property
    def has_masks(self) -> bool:
        return bool(self.masks)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape  # type: ignore[return-value]
