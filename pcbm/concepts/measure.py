"""Measurements from masks: ellipse fit (HC/BPD/OFD/AC), femur length and angle, magnification,
head symmetry, contact with the sector edge, image gain — and :func:`derive_properties`, which turns
a sample's masks into the ontology's property concepts.

numpy and OpenCV only (no torch), so the phantom, the loaders, the checks and the model's
post-processing all label properties with the same code.

Conventions: masks are (H, W) arrays, True (or > 0, or > 0.5 for floats) inside the structure;
image coordinates are x to the right, y down; angles are in degrees. An empty mask given to a
measurement function raises ``ValueError("empty mask: 'head'")``; :func:`derive_properties`
turns absence into ``*_visible = 0`` and measurements ``None`` — never a silent 0 mm.

Example:
    >>> import cv2, numpy as np
    >>> m = np.zeros((200, 300), np.uint8)
    >>> _ = cv2.ellipse(m, (150, 100), (80, 50), 0, 0, 360, 1, -1)
    >>> round(fit_ellipse(m).semi_major)
    80
    >>> p = derive_properties({"head": m}, pixel_spacing_mm=0.5)
    >>> p["head_visible"], p["head_complete"], round(p["bpd_mm"])
    (1.0, 1.0, 50)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from pcbm.concepts.ontology import PROPERTY_CONCEPTS, PropertyConcept

# --- thresholds (each documented; they implement the ontology's `isuog` wording) -------------------

#: A structure counts as visible when its mask has at least this many pixels.
VISIBLE_MIN_PIXELS = 1
#: head/abdomen "magnified": mask area >= this fraction of the field-of-view area ("at least a third").
MAGNIFIED_AREA_FRACTION = 1 / 3
#: heart "magnified": mask area >= this fraction of the field-of-view area ("at least a tenth").
HEART_MAGNIFIED_AREA_FRACTION = 0.10
#: femur "magnified": femur length >= this fraction of the field-of-view width ("a third of the width").
FEMUR_MAGNIFIED_LENGTH_FRACTION = 1 / 3
#: femur "horizontal": angle to the horizontal strictly under this many degrees (ISUOG: < 45°, ideally < 30°).
FEMUR_HORIZONTAL_MAX_DEG = 45.0
#: abdomen "round": fitted ellipse minor/major axis ratio at least this.
ROUND_MIN_AXIS_RATIO = 0.8
#: head "symmetric": the falx line splits the head into halves whose areas differ by at most this
#: fraction of the head area, |A1 - A2| / (A1 + A2) <= 0.1 (a 45/55 split at worst) ...
SYMMETRY_MAX_AREA_IMBALANCE = 0.10
#: ... and the falx runs along the head's long (occipito-frontal) axis within this many degrees
#: (not checked when the head is nearly round, minor/major > SYMMETRY_ROUND_RATIO).
SYMMETRY_MAX_FALX_ANGLE_DEG = 15.0
SYMMETRY_ROUND_RATIO = 0.95
#: "complete" / "ends visible": the structure keeps at least this many pixels away from the
#: field-of-view edge (the image border counts as an edge).
BORDER_MARGIN_PX = 2
#: gain: mean intensity inside the field of view must lie within [GAIN_MIN_MEAN, GAIN_MAX_MEAN] ...
GAIN_MIN_MEAN = 10.0
GAIN_MAX_MEAN = 180.0
#: ... and at most this fraction of field-of-view pixels may be saturated (>= GAIN_SATURATION_LEVEL).
GAIN_MAX_SATURATED_FRACTION = 0.10
GAIN_SATURATION_LEVEL = 250


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in pixel coordinates: centre, semi-axes (major >= minor), angle of the major axis.

    ``angle_deg`` is measured from the +x axis towards +y (clockwise on screen), in [0, 180).
    """

    cx: float
    cy: float
    semi_major: float
    semi_minor: float
    angle_deg: float

    @property
    def perimeter(self) -> float:
        """Circumference by Ramanujan's second approximation (relative error < 1e-9 for HC shapes)."""
        return ellipse_perimeter(self.semi_major, self.semi_minor)

    @property
    def axis_ratio(self) -> float:
        """minor / major, 1.0 for a circle."""
        return self.semi_minor / self.semi_major if self.semi_major > 0 else 1.0


@dataclass(frozen=True)
class Measurement:
    """A biometric measurement for reports: value in ``unit`` ("mm", "px" or "deg")."""

    name: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.1f} {self.unit}"


def ellipse_perimeter(a: float, b: float) -> float:
    """Perimeter of an ellipse with semi-axes ``a`` and ``b`` (Ramanujan II)."""
    if a + b <= 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def as_bool_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as bool: bool kept, floats thresholded at 0.5 (probabilities), integers at > 0."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    if m.dtype == bool:
        return m
    if np.issubdtype(m.dtype, np.floating):
        return m > 0.5
    return m > 0


def _nonempty(mask: np.ndarray, name: str) -> np.ndarray:
    m = as_bool_mask(mask)
    if not m.any():
        raise ValueError(f"empty mask: {name!r}")
    return m


def _outer_points(m: np.ndarray) -> np.ndarray:
    """Points (N, 2) of the outer contour of the largest connected component."""
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea).reshape(-1, 2)


def fit_ellipse(mask: np.ndarray, name: str = "head") -> Ellipse:
    """Fit an ellipse to the outer contour of a (filled) mask, as HC18's reference ellipses.

    Uses ``cv2.fitEllipse`` on the largest component's outer contour; masks too small for a
    contour fit (fewer than 5 contour points) fall back to second moments.

    Raises:
        ValueError: ``empty mask: 'head'`` when the mask has no pixel.
    """
    m = _nonempty(mask, name)
    pts = _outer_points(m)
    if len(pts) >= 5:
        (cx, cy), (w, h), angle = cv2.fitEllipse(pts.astype(np.float32))
        if w >= h:
            a, b, ang = w / 2, h / 2, angle
        else:
            a, b, ang = h / 2, w / 2, angle + 90.0
        return Ellipse(float(cx), float(cy), float(a), float(b), float(ang % 180.0))
    ys, xs = np.nonzero(m)
    centre, axis, sd_major, sd_minor = _principal_axis(xs, ys)
    # a filled ellipse has variance a^2/4 along each axis; +0.5 px for the pixels' own extent
    return Ellipse(centre[0], centre[1], 2 * sd_major + 0.5, 2 * sd_minor + 0.5, _axis_angle(axis))


def _principal_axis(xs: np.ndarray, ys: np.ndarray) -> tuple[tuple[float, float], np.ndarray, float, float]:
    pts = np.stack([xs, ys], 1).astype(np.float64)
    centre = pts.mean(0)
    cov = np.cov((pts - centre).T) if len(pts) > 1 else np.zeros((2, 2))
    evals, evecs = np.linalg.eigh(cov)  # ascending
    evals = np.clip(evals, 0, None)
    return (float(centre[0]), float(centre[1])), evecs[:, 1], float(math.sqrt(evals[1])), float(math.sqrt(evals[0]))


def _axis_angle(axis: np.ndarray) -> float:
    return float(math.degrees(math.atan2(axis[1], axis[0])) % 180.0)


@dataclass(frozen=True)
class Segment:
    """A long structure's principal extent: length (px), angle to the horizontal (0..90 deg), end points."""

    length: float
    angle_deg: float
    end1: tuple[float, float]
    end2: tuple[float, float]


def femur_segment(mask: np.ndarray, name: str = "femur") -> Segment:
    """End-to-end extent of the largest component along its principal axis.

    Length is the spread of the pixel centres along the principal axis plus one pixel (the pixels'
    own extent), so a bar drawn from p to q measures |q - p| (+ its cap). The angle to the
    horizontal is folded into [0, 90] degrees.

    Raises:
        ValueError: ``empty mask: 'femur'`` when the mask has no pixel.
    """
    m = _largest_component(_nonempty(mask, name))
    ys, xs = np.nonzero(m)
    centre, axis, _, _ = _principal_axis(xs, ys)
    proj = (xs - centre[0]) * axis[0] + (ys - centre[1]) * axis[1]
    lo, hi = float(proj.min()), float(proj.max())
    angle = _axis_angle(axis)
    angle = min(angle, 180.0 - angle)
    end1 = (centre[0] + lo * axis[0], centre[1] + lo * axis[1])
    end2 = (centre[0] + hi * axis[0], centre[1] + hi * axis[1])
    return Segment(hi - lo + 1.0, angle, end1, end2)


def _largest_component(m: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fov(field_of_view: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if field_of_view is None:
        return np.ones(shape[:2], bool)
    fov = as_bool_mask(field_of_view)
    if fov.shape != tuple(shape[:2]):
        raise ValueError(f"field_of_view has shape {fov.shape}, masks have {tuple(shape[:2])}")
    return fov


def area_fraction(mask: np.ndarray, field_of_view: np.ndarray | None = None) -> float:
    """Mask area / field-of-view area (the whole image when no field of view is given)."""
    m = as_bool_mask(mask)
    fov = _fov(field_of_view, m.shape)
    total = int(fov.sum())
    return float((m & fov).sum()) / total if total else 0.0


def fov_width(field_of_view: np.ndarray | None, shape: tuple[int, ...]) -> float:
    """Horizontal extent (px) of the field of view (the image width when none is given)."""
    fov = _fov(field_of_view, shape)
    cols = np.nonzero(fov.any(0))[0]
    return float(cols[-1] - cols[0] + 1) if len(cols) else 0.0


def touches_border(mask: np.ndarray, field_of_view: np.ndarray | None = None, margin: int = BORDER_MARGIN_PX) -> bool:
    """Whether the structure comes within ``margin`` pixels of the field-of-view edge or the image border."""
    m = as_bool_mask(mask)
    fov = _fov(field_of_view, m.shape).astype(np.uint8)
    k = 2 * max(int(margin), 0) + 1
    inner = cv2.erode(fov, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return bool((m & (inner == 0)).any())


@dataclass(frozen=True)
class Symmetry:
    """How the falx line splits the head: area imbalance |A1-A2|/(A1+A2) and angle to the long axis."""

    imbalance: float
    falx_angle_deg: float  # angle between the falx line and the head ellipse's major axis, 0..90
    round_head: bool  # True when the head is nearly round (the angle is then not meaningful)

    @property
    def symmetric(self) -> bool:
        angle_ok = self.round_head or self.falx_angle_deg <= SYMMETRY_MAX_FALX_ANGLE_DEG
        return self.imbalance <= SYMMETRY_MAX_AREA_IMBALANCE and angle_ok


def head_symmetry(head: np.ndarray, falx: np.ndarray) -> Symmetry:
    """Split the head mask by the line fitted to the falx mask.

    Raises:
        ValueError: for an empty head or falx mask.
    """
    h = _nonempty(head, "head")
    f = _nonempty(falx, "falx")
    fy, fx = np.nonzero(f)
    if len(fx) >= 2:
        _, axis, _, _ = _principal_axis(fx, fy)
    else:  # a single pixel: take the head's long axis through it
        e = fit_ellipse(h)
        axis = np.array([math.cos(math.radians(e.angle_deg)), math.sin(math.radians(e.angle_deg))])
    x0, y0 = float(fx.mean()), float(fy.mean())
    hy, hx = np.nonzero(h)
    side = (hx - x0) * axis[1] - (hy - y0) * axis[0]
    n1, n2 = int((side > 0).sum()), int((side < 0).sum())
    imbalance = abs(n1 - n2) / max(n1 + n2, 1)
    e = fit_ellipse(h)
    diff = abs(_axis_angle(axis) - e.angle_deg) % 180.0
    return Symmetry(imbalance, min(diff, 180.0 - diff), e.axis_ratio > SYMMETRY_ROUND_RATIO)


@dataclass(frozen=True)
class Gain:
    """Intensity statistics inside the field of view."""

    mean: float
    p99: float
    saturated_fraction: float

    @property
    def adequate(self) -> bool:
        return (GAIN_MIN_MEAN <= self.mean <= GAIN_MAX_MEAN) and self.saturated_fraction <= GAIN_MAX_SATURATED_FRACTION


def image_gain(image: np.ndarray, field_of_view: np.ndarray | None = None) -> Gain:
    """Mean, 99th percentile and saturated fraction of the image inside the field of view."""
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D grayscale, got shape {img.shape}")
    vals = img[_fov(field_of_view, img.shape)]
    if vals.size == 0:
        raise ValueError("empty field of view")
    return Gain(float(vals.mean()), float(np.percentile(vals, 99)), float((vals >= GAIN_SATURATION_LEVEL).mean()))


# --- the public entry points --------------------------------------------------------------------

_CIRCUMFERENCES = {"head": ("hc", "bpd", "ofd"), "abdomen": ("ac",)}


def measure(
    masks: Mapping[str, np.ndarray],
    pixel_spacing_mm: float | None = None,
    field_of_view: np.ndarray | None = None,
) -> dict[str, Measurement]:
    """Biometry for reports: HC, BPD, OFD (head), AC (abdomen), FL and femur angle (femur).

    Only structures present (non-empty) in ``masks`` are measured; lengths are in mm when
    ``pixel_spacing_mm`` is given, in px otherwise. ``field_of_view`` is accepted for symmetry with
    :func:`derive_properties` and is not needed for these lengths.

    Example:
        >>> import cv2, numpy as np
        >>> m = np.zeros((100, 100), np.uint8); _ = cv2.circle(m, (50, 50), 30, 1, -1)
        >>> str(measure({"head": m})["bpd"])
        'bpd = 59.0 px'
    """
    scale, unit = (float(pixel_spacing_mm), "mm") if pixel_spacing_mm else (1.0, "px")
    out: dict[str, Measurement] = {}
    for name in ("head", "abdomen"):
        m = masks.get(name)
        if m is None or not _visible(m):
            continue
        e = fit_ellipse(m, name)
        values = {"hc": e.perimeter, "bpd": 2 * e.semi_minor, "ofd": 2 * e.semi_major, "ac": e.perimeter}
        for key in _CIRCUMFERENCES[name]:
            out[key] = Measurement(key, values[key] * scale, unit)
    fm = masks.get("femur")
    if fm is not None and _visible(fm):
        seg = femur_segment(fm)
        out["fl"] = Measurement("fl", seg.length * scale, unit)
        out["femur_angle"] = Measurement("femur_angle", seg.angle_deg, "deg")
    return out


def _visible(mask: np.ndarray) -> bool:
    return int(as_bool_mask(mask).sum()) >= VISIBLE_MIN_PIXELS


def derive_properties(
    masks: Mapping[str, np.ndarray],
    image: np.ndarray | None = None,
    pixel_spacing_mm: float | None = None,
    field_of_view: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Every property concept that the given masks (and image) determine.

    A property appears only when all the visual concepts it is ``derived_from`` are keys of
    ``masks`` (labelled); ``gain_adequate`` appears only when ``image`` is given. Binary values are
    0.0 / 1.0. A labelled but empty mask means the structure is absent: its ``*_visible`` and the
    binary properties depending on it are 0, its measurements None. Continuous values (hc_mm, …)
    are in mm, or None when ``pixel_spacing_mm`` is unknown.

    Args:
        masks: visual concept name -> (H, W) mask (bool, 0/255, or probabilities).
        image: (H, W) grayscale uint8 image, for ``gain_adequate``.
        pixel_spacing_mm: mm per pixel, or None when unknown.
        field_of_view: (H, W) bool, True inside the scan sector; None = the whole image.

    Returns:
        property name -> value, in the ontology's order.
    """
    bool_masks = {k: as_bool_mask(v) for k, v in masks.items()}
    shape = next(iter(bool_masks.values())).shape if bool_masks else (image.shape if image is not None else None)
    fov = _fov(field_of_view, shape) if shape is not None else None
    present = {k: int(v.sum()) >= VISIBLE_MIN_PIXELS for k, v in bool_masks.items()}
    ctx = _Context(bool_masks, present, fov, pixel_spacing_mm)
    out: dict[str, float | None] = {}
    for concept in PROPERTY_CONCEPTS:
        if concept.name == "gain_adequate":
            if image is not None:
                out[concept.name] = float(image_gain(image, fov).adequate)
            continue
        if not concept.derived_from or not all(v in bool_masks for v in concept.derived_from):
            continue
        out[concept.name] = ctx.value(concept)
    return out


_MEASUREMENTS = ("hc_mm", "bpd_mm", "ofd_mm", "ac_mm", "fl_mm")


class _Context:
    """Lazily computed geometry shared by the properties of one sample."""

    def __init__(self, masks: dict[str, np.ndarray], present: dict[str, bool], fov: np.ndarray | None,
                 spacing: float | None):
        self.masks, self.present, self.fov, self.spacing = masks, present, fov, spacing
        self._ellipses: dict[str, Ellipse] = {}
        self._femur: Segment | None = None

    def ellipse(self, name: str) -> Ellipse:
        if name not in self._ellipses:
            self._ellipses[name] = fit_ellipse(self.masks[name], name)
        return self._ellipses[name]

    def femur(self) -> Segment:
        if self._femur is None:
            self._femur = femur_segment(self.masks["femur"])
        return self._femur

    def mm(self, px: float) -> float | None:
        return float(px * self.spacing) if self.spacing else None

    def value(self, concept: PropertyConcept) -> float | None:
        prop, structure = concept.name, concept.derived_from[0]
        if prop in _MEASUREMENTS:
            return self._measurement(prop, structure)
        if not self.present[structure]:
            return 0.0  # absent: not visible, and no criterion about it can hold
        if prop == f"{structure}_visible":
            return 1.0
        return self._binary(prop, structure)

    def _measurement(self, prop: str, structure: str) -> float | None:
        if not self.present[structure] or not self.spacing:
            return None
        if structure == "femur":
            return self.mm(self.femur().length)
        e = self.ellipse(structure)
        px = {"hc_mm": e.perimeter, "ac_mm": e.perimeter, "bpd_mm": 2 * e.semi_minor, "ofd_mm": 2 * e.semi_major}[prop]
        return self.mm(px)

    def _binary(self, prop: str, structure: str) -> float:
        m = self.masks[structure]
        if prop in ("head_complete", "femur_ends_visible"):
            return float(not touches_border(m, self.fov))
        if prop in ("head_magnified", "abdomen_magnified"):
            return float(area_fraction(m, self.fov) >= MAGNIFIED_AREA_FRACTION)
        if prop == "heart_magnified":
            return float(area_fraction(m, self.fov) >= HEART_MAGNIFIED_AREA_FRACTION)
        if prop == "abdomen_round":
            return float(self.ellipse("abdomen").axis_ratio >= ROUND_MIN_AXIS_RATIO)
        if prop == "head_symmetric":
            if not self.present["falx"]:
                return 0.0
            return float(head_symmetry(m, self.masks["falx"]).symmetric)
        if prop == "femur_horizontal":
            return float(self.femur().angle_deg < FEMUR_HORIZONTAL_MAX_DEG)
        if prop == "femur_magnified":
            width = fov_width(self.fov, m.shape)
            return float(width > 0 and self.femur().length >= FEMUR_MAGNIFIED_LENGTH_FRACTION * width)
        raise KeyError(f"no rule to derive property {prop!r} from masks")  # a new ontology entry needs one
