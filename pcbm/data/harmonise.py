"""Harmonise an ultrasound frame: mask burned-in text, crop to the scan sector, resize.

The field of view of a frame is what the scanner imaged; everything else (patient name, dates,
settings, scale bars) is blacked out. It is found in two ways, combined when both are there:

* the **region** — ``SequenceOfUltrasoundRegions`` of the DICOM header, a rectangle (the
  sample's ``field_of_view`` as read by :func:`pcbm.data.dicom.read_dicom`);
* the **sector** — estimated from the pixels (:func:`estimate_sector`: the convex hull of the
  largest bright connected component after a morphological opening and closing; for a cine, from
  the maximum over its frames), searched inside the region when there is one.

The field of view is region ∩ sector: text in the corners of the region rectangle (outside the
fan) is masked, and so is text inside a region that covers the whole frame.
``meta["burned_in_masked"]`` says what actually blanked pixels: ``"region"``, ``"sector"``,
``"region+sector"`` or ``"none"`` (nothing found, or the field of view is the whole frame; a note
says so). Text drawn *inside* the scan sector is not removed.

Example:
    >>> import numpy as np
    >>> from pcbm.data.sample import Sample
    >>> img = np.zeros((64, 64), np.uint8); img[16:56, 8:56] = 120; img[2:6, 2:30] = 255  # text band
    >>> s = harmonise(Sample(image=img, id="x"))
    >>> s.meta["burned_in_masked"], s.image.shape, int(s.image.max())
    ('sector', (40, 48), 120)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pcbm.data.sample import Sample
from pcbm.errors import InputError

BRIGHT_THRESHOLD = 10  # gray level above which a pixel counts as "signal" for the sector estimate
MIN_SECTOR_FRACTION = 0.05  # a sector smaller than this fraction of the (region of the) image is not trusted
SECTOR_SOURCE = "estimated"


@dataclass(frozen=True)
class FieldOfView:
    """Where a frame's image is, and how it was found.

    Attributes:
        mask: bool (H, W), True inside; None when neither a region nor a sector was found.
        source: where it comes from ("dicom:SequenceOfUltrasoundRegions", "estimated",
            "estimated:cine", a region source + "+estimated", or "").
        masked: what masking with it blanks: "region", "sector", "region+sector" or "none".
    """

    mask: np.ndarray | None
    source: str
    masked: str


def estimate_sector(image: np.ndarray, threshold: int = BRIGHT_THRESHOLD) -> np.ndarray | None:
    """The scan sector as a bool mask: convex hull of the largest bright component after an opening
    and a closing.

    The opening (a disc about 1.5 % of the image wide) first removes thin strokes, so burned-in
    text and calipers that touch the sector do not join it; the closing then fills the dark gaps
    inside it. Text and scale markers apart from the sector are separate components and fall
    outside. Returns None when no component covers ``MIN_SECTOR_FRACTION`` of the image.
    """
    import cv2

    h, w = image.shape
    if h < 2 or w < 2:
        return None
    k = max(3, round(0.03 * max(h, w))) | 1
    k_open = max(3, round(0.015 * max(h, w))) | 1
    bright = (image > threshold).astype(np.uint8)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open)))
    closed = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if n < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_SECTOR_FRACTION * h * w:
        return None
    ys, xs = np.nonzero(labels == best)
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def sector_within(image: np.ndarray, region: np.ndarray | None) -> np.ndarray | None:
    """The sector estimated inside ``region`` (searched in the region's bounding box, zero outside
    the region), as a full-size mask; the whole image when ``region`` is None."""
    if region is None:
        return estimate_sector(image)
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.where(region[y0:y1, x0:x1], image[y0:y1, x0:x1], 0)
    sector = estimate_sector(crop)
    if sector is None:
        return None
    out = np.zeros(region.shape, bool)
    out[y0:y1, x0:x1] = sector & region[y0:y1, x0:x1]
    return out


def combine(image: np.ndarray, region: np.ndarray | None, region_source: str = "",
            sector_source: str = SECTOR_SOURCE) -> FieldOfView:
    """Field of view = ``region`` ∩ the sector estimated in ``image`` inside it (see module docstring)."""
    if region is not None and not region.any():
        region = None
    sector = sector_within(image, region)
    if region is None and sector is None:
        return FieldOfView(None, "", "none")
    if region is None:
        return FieldOfView(sector, sector_source, "none" if sector.all() else "sector")  # type: ignore[union-attr]
    parts = [] if region.all() else ["region"]
    if sector is None:
        return FieldOfView(region, region_source, "+".join(parts) or "none")
    if (region & ~sector).any():
        parts.append("sector")
    return FieldOfView(sector, f"{region_source}+{SECTOR_SOURCE}", "+".join(parts) or "none")


def field_of_view(sample: Sample) -> FieldOfView:
    """The field of view used to mask ``sample``: its ``field_of_view`` (the header's region) if it
    has one, intersected with the sector estimated from the image."""
    source = str(sample.meta.get("fov_source", "dicom")) if sample.field_of_view is not None else ""
    return combine(sample.image, sample.field_of_view, source)


def cine_field_of_view(samples: list[Sample]) -> FieldOfView:
    """One field of view for all frames of a cine (so they share one crop): the header's region,
    intersected with the sector estimated from the per-pixel maximum over the frames (which fills
    dark gaps)."""
    if not samples:
        return FieldOfView(None, "", "none")
    if len(samples) == 1:
        return field_of_view(samples[0])
    first = samples[0]
    region_source = str(first.meta.get("fov_source", "dicom")) if first.field_of_view is not None else ""
    peak = np.max(np.stack([s.image for s in samples]), axis=0)
    return combine(peak, first.field_of_view, region_source, sector_source=f"{SECTOR_SOURCE}:cine")


def harmonise(sample: Sample, size: int | None = None, mask: bool = True, crop: bool = True,
              fov: FieldOfView | None = None) -> Sample:
    """Mask outside the field of view to black, crop to its bounding box, optionally resize.

    Args:
        sample: a raw sample (e.g. from :func:`pcbm.data.dicom.read_dicom`).
        size: resize so that the long side is ``size`` pixels (aspect kept); None keeps the size.
        mask: black out pixels outside the field of view (burned-in text, scale bars).
        crop: crop to the field of view's bounding box.
        fov: the field of view to use instead of :func:`field_of_view` (e.g. one per cine).

    Returns:
        A new sample; its ``field_of_view`` is the (cropped) field of view, its pixel spacing is
        scaled with any resize, and ``meta`` gains ``fov_source``, ``crop`` ("x0,y0,x1,y1" in the
        original image, end exclusive), ``scale`` and ``burned_in_masked`` (see module docstring).

    Raises:
        InputError: ``size`` below 8, or ``fov`` not of the image's shape.
    """
    import cv2

    fov = field_of_view(sample) if fov is None else fov
    region = fov.mask
    image, masks = sample.image, dict(sample.masks)
    meta = dict(sample.meta)
    notes = list(meta.get("notes", []))
    prefix = f"{sample.id}: " if sample.id else ""
    h, w = image.shape
    if region is not None and region.shape != (h, w):
        raise InputError(f"{prefix}field of view of shape {region.shape} does not match the image {image.shape}")
    if region is not None and not region.any():
        region = None
    x0, y0, x1, y1 = 0, 0, w, h
    masked = fov.masked if (mask and region is not None) else "none"
    if region is None:
        notes.append(f"{prefix}no scan sector found; image kept whole and burned-in text NOT masked")
    else:
        if mask:
            image = np.where(region, image, 0).astype(np.uint8)
            if masked == "none":
                notes.append(f"{prefix}the scan sector covers the whole frame; burned-in text NOT masked")
        if crop:
            ys, xs = np.nonzero(region)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            image, region = image[y0:y1, x0:x1], region[y0:y1, x0:x1]
            masks = {k: m[y0:y1, x0:x1] for k, m in masks.items()}
    spacing, scale = sample.pixel_spacing_mm, 1.0
    if size is not None:
        if size < 8:
            raise InputError(f"size must be at least 8 pixels, got {size}")
        ch, cw = image.shape
        scale = size / max(ch, cw)
        new = (max(1, round(cw * scale)), max(1, round(ch * scale)))  # (W, H) for OpenCV
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        masks = {k: cv2.resize(m.astype(np.uint8), new, interpolation=cv2.INTER_NEAREST) > 0 for k, m in masks.items()}
        if region is not None:
            region = cv2.resize(region.astype(np.uint8), new, interpolation=cv2.INTER_NEAREST) > 0
        spacing = None if spacing is None else spacing / scale
    meta.update({"fov_source": fov.source if region is not None else "", "crop": f"{x0},{y0},{x1},{y1}",
                 "scale": round(scale, 6), "burned_in_masked": masked})
    if notes:
        meta["notes"] = notes
    return replace(sample, image=np.ascontiguousarray(image), masks=masks, pixel_spacing_mm=spacing,
                   field_of_view=region, meta=meta)
