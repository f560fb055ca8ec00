"""Measurements from masks: ellipse fit (HC/BPD/OFD/AC), femur length and angle, magnification,
head symmetry, contact with the sector edge, image gain — and :func:`derive_properties`, which turns
a sample's masks into the ontology's property concepts by the rule each concept names (:data:`RULES`).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from pcbm.concepts import ontology  # read at call time: register_property_concept may extend it
from pcbm.concepts.ontology import PropertyConcept
from pcbm.errors import look_up

# --- thresholds inside the rules (each documented). The thresholds a property concept states —
# --- "a third of the image", "under 45 degrees" — are its rule's parameter, in the ontology. -------

#: A structure counts as visible when its mask has at least this many pixels.
VISIBLE_MIN_PIXELS = 1
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
    """A biometric measurement: value in ``unit`` ("mm", "px" or "deg"), with the fit's quality.

    An unreliable measurement (``reason`` set) keeps its ``value`` for inspection, but
    :meth:`to_dict` gives it as ``measured`` with ``value`` null, so nothing downstream reads it
    as a confident number.

    Example:
        >>> m = Measurement("hc", 171.04, "mm", 0.62, "the mask is in 3 pieces")
        >>> m.label, m.reliable, m.to_dict()["value"], m.to_dict()["measured"]
        ('HC', False, None, 171.04)
    """

    name: str
    value: float
    unit: str
    quality: float | None = None  # of the fitted ellipse (:class:`EllipseFit`); None: not an ellipse's
    reason: str | None = None  # why the value is unreliable; None: it is reliable

    @property
    def reliable(self) -> bool:
        return self.reason is None

    @property
    def label(self) -> str:
        """The ontology's label ("HC", "femur angle"); the name itself for a key it does not know."""
        return ontology.measurement_label(self.name)

    def to_dict(self) -> dict[str, object]:
        v = round(float(self.value), 2)
        return {"name": self.name, "label": self.label, "value": v if self.reliable else None, "measured": v,
                "unit": self.unit, "quality": self.quality, "reliable": self.reliable, "reason": self.reason}

    def __str__(self) -> str:
        if self.reason:
            return f"{self.label} unreliable (measured {self.value:.1f} {self.unit}: {self.reason})"
        return f"{self.label} {self.value:.1f} {self.unit}"


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


#: robust ellipse (:func:`fit_ellipse_robust`): a contour point is on the ellipse when its radial
#: distance is within this fraction of the semi-minor axis (and at least FIT_TOLERANCE_MIN_PX) ...
FIT_TOLERANCE_FRACTION = 0.03
FIT_TOLERANCE_MIN_PX = 1.5
#: ... and an outline point counts as on the ellipse for the quality score within this fraction of the
#: semi-minor axis: calibrated on HC18 *training* subjects (bench/calibrate_fit_quality.py: the
#: smallest tolerance at which 98 % of the head refiner's training outlines score reliable)
QUALITY_TOLERANCE_FRACTION = 0.06
#: ... the trimmed refit runs at most this many rounds ...
FIT_ROUNDS = 8
#: ... a neck narrower than this fraction of the equivalent radius joining two blobs is cut (a head
#: mask leaking into the body beside it) ...
NECK_FRACTION = 0.25
#: ... fragments at least this share of the largest one's area count as parts of the outline ...
FRAGMENT_MIN_SHARE = 0.05
#: ... and the measurement is reliable when its quality (the lower of the contour's share on the
#: ellipse and the mask/ellipse IoU) is at least this.
RELIABLE_MIN_QUALITY = 0.85


@dataclass(frozen=True)
class EllipseFit:
    """A robust ellipse and how far the mask agrees with it.

    ``on_ellipse``: share of the outline's points within tolerance of the ellipse; ``agreement``:
    IoU of the (cleaned) mask and the filled ellipse; ``quality`` the lower of the two.
    """

    ellipse: Ellipse
    on_ellipse: float
    agreement: float
    fragments: int  # components taken as parts of the outline
    cut_neck: bool  # a leak through a narrow neck was cut off

    @property
    def quality(self) -> float:
        return min(self.on_ellipse, self.agreement)

    @property
    def reliable(self) -> bool:
        return self.quality >= RELIABLE_MIN_QUALITY

    def reason(self) -> str | None:
        """Why the measurement is unreliable (None when it is reliable)."""
        if self.reliable:
            return None
        why = [f"only {self.on_ellipse:.0%} of the outline lies on the fitted ellipse"
               if self.on_ellipse < RELIABLE_MIN_QUALITY else "",
               f"mask and ellipse overlap {self.agreement:.0%} (IoU)" if self.agreement < RELIABLE_MIN_QUALITY else "",
               f"the mask is in {self.fragments} pieces" if self.fragments > 1 else "",
               "a leak into a neighbouring structure was cut off" if self.cut_neck else ""]
        return "; ".join(w for w in why if w) + f" (quality {self.quality:.2f} < {RELIABLE_MIN_QUALITY})"


def radial_distance(e: Ellipse, pts: np.ndarray) -> np.ndarray:
    """Signed distance (px, + outside) of points (N, 2) from the ellipse along the ray from its centre."""
    t = math.radians(e.angle_deg)
    d = pts.astype(np.float64) - (e.cx, e.cy)
    u = d[:, 0] * math.cos(t) + d[:, 1] * math.sin(t)
    v = -d[:, 0] * math.sin(t) + d[:, 1] * math.cos(t)
    r = np.sqrt((u / max(e.semi_major, 1e-6)) ** 2 + (v / max(e.semi_minor, 1e-6)) ** 2)
    norm = np.hypot(u, v)
    return np.where(r > 0, (r - 1.0) / np.maximum(r, 1e-9) * norm, -min(e.semi_major, e.semi_minor))


def _cv_ellipse(pts: np.ndarray) -> Ellipse:
    (cx, cy), (w, h), angle = cv2.fitEllipse(pts.astype(np.float32))
    a, b, ang = (w / 2, h / 2, angle) if w >= h else (h / 2, w / 2, angle + 90.0)
    return Ellipse(float(cx), float(cy), float(a), float(b), float(ang % 180.0))


def _cut_neck(m: np.ndarray) -> tuple[np.ndarray, bool]:
    """The mask with a blob joined to its largest component through a narrow neck removed (the
    larger blob kept; other components untouched)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n < 2:
        return m, False
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    r = max(1, int(round(NECK_FRACTION * math.sqrt(stats[big, cv2.CC_STAT_AREA] / math.pi))))
    # the opening only sees the component's box grown by r + 1 (the same result as on the whole frame)
    x, y, w, h = (int(v) for v in stats[big, :4])
    y0, x0 = max(0, y - r - 1), max(0, x - r - 1)
    y1, x1 = min(m.shape[0], y + h + r + 1), min(m.shape[1], x + w + r + 1)
    comp = (labels[y0:y1, x0:x1] == big).astype(np.uint8)
    k, lab, st, _ = cv2.connectedComponentsWithStats(_dilate_disc(_erode_disc(comp, r), r), connectivity=8)
    if k <= 2:  # nothing, or one blob: no neck to cut
        return m, False
    areas = np.sort(st[1:, cv2.CC_STAT_AREA])
    if areas[-2] < FRAGMENT_MIN_SHARE * areas[-1]:
        return m, False
    head = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
    keep = np.zeros(m.shape, bool)
    keep[y0:y1, x0:x1] = _dilate_disc((lab == head).astype(np.uint8), r).astype(bool) & comp.astype(bool)
    return (m & (labels != big)) | keep, True


def _erode_disc(m: np.ndarray, r: int) -> np.ndarray:
    """Erosion of a {0, 1} uint8 map by the Euclidean disc of radius ``r``: the pixels farther than
    ``r`` from the background (an exact distance transform, whose cost does not grow with ``r``;
    ``cv2.morphologyEx`` with an elliptical kernel took ~45 ms per HC18 head, this ~2 ms)."""
    return (cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > r).astype(np.uint8)


def _dilate_disc(m: np.ndarray, r: int) -> np.ndarray:
    """Dilation of a {0, 1} uint8 map by the Euclidean disc of radius ``r`` (see :func:`_erode_disc`)."""
    if not m.any():
        return m
    return (cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= r).astype(np.uint8)


def fit_ellipse_robust(mask: np.ndarray, name: str = "head") -> EllipseFit:
    """An ellipse that survives bad masks, with a quality score (for biometry from predicted masks).

    A blob joined to the structure through a narrow neck (a head mask leaking into the body) is cut
    off; fragments of a broken mask (each at least FRAGMENT_MIN_SHARE of the largest) all give
    outline points; the ellipse is refitted to the outline points within tolerance of the previous
    fit (an outlier-rejecting fit, so a dent or a bump does not pull it). On a clean mask it is the
    ellipse of :func:`fit_ellipse`.

    Raises:
        ValueError: ``empty mask: 'head'`` when the mask has no pixel.

    Example:
        >>> import cv2, numpy as np
        >>> m = np.zeros((200, 200), np.uint8); _ = cv2.ellipse(m, (100, 100), (60, 40), 0, 0, 360, 1, -1)
        >>> m[60:100, 95:105] = 0  # a deep dent: the ellipse holds, the outline is flagged
        >>> f = fit_ellipse_robust(m)
        >>> round(f.ellipse.semi_major), round(f.ellipse.semi_minor), f.reliable
        (60, 40, False)
    """
    m = _nonempty(mask, name)
    m, cut = _cut_neck(m)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    biggest = max(cv2.contourArea(c) for c in contours)
    parts = [c for c in contours if cv2.contourArea(c) >= FRAGMENT_MIN_SHARE * biggest] or [max(contours, key=cv2.contourArea)]
    pts = np.concatenate([c.reshape(-1, 2) for c in parts])
    h, w = m.shape
    inside = (pts[:, 0] > 0) & (pts[:, 1] > 0) & (pts[:, 0] < w - 1) & (pts[:, 1] < h - 1)
    pts = pts[inside] if inside.sum() >= 5 else pts  # where the image cuts the mask is not its outline
    if len(pts) < 5:
        e = fit_ellipse(m, name)
        return EllipseFit(e, 1.0, 1.0, len(parts), cut)
    e = _cv_ellipse(pts)
    keep = np.ones(len(pts), bool)
    for _ in range(FIT_ROUNDS):
        tol = max(FIT_TOLERANCE_MIN_PX, FIT_TOLERANCE_FRACTION * e.semi_minor)
        d = radial_distance(e, pts)
        new = np.abs(d) <= max(tol, 2.5 * 1.4826 * float(np.median(np.abs(d[keep] - np.median(d[keep])))))
        if new.sum() < 5 or np.array_equal(new, keep):
            break
        keep = new
        e = _cv_ellipse(pts[keep])
    tol = max(FIT_TOLERANCE_MIN_PX, QUALITY_TOLERANCE_FRACTION * e.semi_minor)
    on = float(np.mean(np.abs(radial_distance(e, pts)) <= tol))
    filled = np.zeros(m.shape, np.uint8)
    cv2.drawContours(filled, parts, -1, 1, -1)
    ell = np.zeros(m.shape, np.uint8)
    cv2.ellipse(ell, ((e.cx, e.cy), (2 * e.semi_major, 2 * e.semi_minor), e.angle_deg), 1, -1)
    inter, union = float((filled & ell).sum()), float((filled | ell).sum())
    return EllipseFit(e, on, inter / union if union else 0.0, len(parts), cut)


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


def measure(
    masks: Mapping[str, np.ndarray],
    pixel_spacing_mm: float | None = None,
    field_of_view: np.ndarray | None = None,
) -> dict[str, Measurement]:
    """Biometry for reports: the length of every continuous property concept (HC, BPD, OFD, AC, FL),
    keyed by its name without the unit (``hc``), and a rod's angle (``femur_angle``, degrees).

    Only structures present (non-empty) in ``masks`` are measured; lengths are in mm when
    ``pixel_spacing_mm`` is given, in px otherwise. ``field_of_view`` is accepted for symmetry with
    :func:`derive_properties` and is not needed for these lengths.

    Example:
        >>> import cv2, numpy as np
        >>> m = np.zeros((100, 100), np.uint8); _ = cv2.circle(m, (50, 50), 30, 1, -1)
        >>> str(measure({"head": m})["bpd"])
        'BPD 59.0 px'
    """
    scale, unit = (float(pixel_spacing_mm), "mm") if pixel_spacing_mm else (1.0, "px")
    concepts = [ontology.get_property_concept(n) for n in ontology.CONTINUOUS_PROPERTIES]
    given = {str(c.structure): masks.get(str(c.structure)) for c in concepts}
    shown = {k: as_bool_mask(m) for k, m in given.items() if m is not None and _visible(m)}
    ctx = _Context(shown, dict.fromkeys(shown, True), None, pixel_spacing_mm, robust=True)
    out: dict[str, Measurement] = {}
    for c in concepts:
        if c.structure not in shown:
            continue
        length, *angle = c.measurement_keys
        value = LENGTHS[str(c.length)](ctx, c.structure) * scale
        fit = ctx.fits.get(str(c.structure))
        out[length] = Measurement(length, value, unit, round(fit.quality, 3) if fit else None,
                                  fit.reason() if fit else None)
        for key in angle:  # a rod's angle to the horizontal
            out[key] = Measurement(key, ctx.segment(c.structure).angle_deg, "deg")
    return out


def biometry_structures(plane: str) -> tuple[str, ...]:
    """The structures :func:`biometry` reads on ``plane`` (``("head",)`` on the head planes): a caller
    short of time maps only these back to the original size."""
    p = ontology.get_plane(plane)
    keys = ontology.measurement_keys(plane) if p.measurements else (ontology.measurement_keys() if not p.known else ())
    return tuple(sorted({ontology.measurement_structure(k) for k in keys}))


def biometry(masks: Mapping[str, np.ndarray], plane: str, pixel_spacing_mm: float | None = None,
             ) -> tuple[list[Measurement], list[str]]:
    """The biometry a plane calls for, from its structures' masks, in ontology order, and notes on
    what could not be measured. A plane with measurements gets those; a plane not in the ontology's
    known set ("other") gets every measurement of the structures found; a known plane without
    measurements gets none. The one place ``predict``, the report and the API take biometry from.

    Example:
        >>> import cv2, numpy as np
        >>> m = np.zeros((100, 100), np.uint8); _ = cv2.ellipse(m, (50, 50), (30, 20), 0, 0, 360, 1, -1)
        >>> rows, notes = biometry({"head": m}, "trans_thalamic", pixel_spacing_mm=0.5)
        >>> [(r.name, round(r.value), r.reliable) for r in rows], notes
        ([('hc', 79, True), ('bpd', 20, True), ('ofd', 30, True)], [])
    """
    p = ontology.get_plane(plane)
    order = ontology.measurement_keys()
    keys = ontology.measurement_keys(plane) if p.measurements else (order if not p.known else ())
    rows: list[Measurement] = []
    notes: list[str] = []
    for s in biometry_structures(plane):
        m = masks.get(s)
        if m is None or not as_bool_mask(m).any():
            continue
        try:
            found = measure({s: m}, pixel_spacing_mm=pixel_spacing_mm)
        except ValueError as e:  # a degenerate mask: say so rather than guess
            notes.append(f"could not measure {s}: {e}")
            continue
        rows += [found[k] for k in keys if k in found]
    return sorted(rows, key=lambda r: order.index(r.name)), notes


def _visible(mask: np.ndarray) -> bool:
    return int(as_bool_mask(mask).sum()) >= VISIBLE_MIN_PIXELS


def derive_properties(
    masks: Mapping[str, np.ndarray],
    image: np.ndarray | None = None,
    pixel_spacing_mm: float | None = None,
    field_of_view: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Every property concept that the given masks (and image) determine, each by its rule.

    A property appears only when all the visual concepts it is ``derived_from`` are keys of
    ``masks`` (labelled); one derived from no structure (``gain_adequate``) appears only when
    ``image`` is given. Binary values are 0.0 / 1.0. A labelled but empty mask means the structure
    is absent: its ``*_visible`` and the binary properties resting on it are 0, its measurements
    None. Continuous values (hc_mm, …) are in mm, or None when ``pixel_spacing_mm`` is unknown.

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
    ctx = _Context(bool_masks, present, fov, pixel_spacing_mm, image)
    out: dict[str, float | None] = {}
    for concept in ontology.PROPERTY_CONCEPTS:
        labelled = all(v in bool_masks for v in concept.derived_from) if concept.derived_from else image is not None
        if labelled:
            out[concept.name] = ctx.value(concept)
    return out


class _Context:
    """Lazily computed geometry shared by the properties of one sample."""

    def __init__(self, masks: dict[str, np.ndarray], present: dict[str, bool], fov: np.ndarray | None,
                 spacing: float | None, image: np.ndarray | None = None, robust: bool = False):
        self.masks, self.present, self.fov, self.spacing, self.image = masks, present, fov, spacing, image
        self.robust = robust  # predicted masks: the outlier-rejecting fit, with its quality in .fits
        self._ellipses: dict[str, Ellipse] = {}
        self._segments: dict[str, Segment] = {}
        self.fits: dict[str, EllipseFit] = {}

    def ellipse(self, name: str) -> Ellipse:
        if name not in self._ellipses:
            if self.robust:
                self.fits[name] = fit_ellipse_robust(self.masks[name], name)
                self._ellipses[name] = self.fits[name].ellipse
            else:  # reference masks (labels): the plain fit, as HC18's reference ellipses
                self._ellipses[name] = fit_ellipse(self.masks[name], name)
        return self._ellipses[name]

    def segment(self, name: str) -> Segment:
        if name not in self._segments:
            self._segments[name] = femur_segment(self.masks[name], name)
        return self._segments[name]

    def mm(self, px: float) -> float | None:
        return float(px * self.spacing) if self.spacing else None

    def value(self, concept: PropertyConcept) -> float | None:
        structure = concept.structure
        if structure is not None and not self.present[structure]:
            return 0.0 if concept.binary else None  # absent: not visible, no criterion about it holds, no length
        return look_up(concept.rule.name, RULES, "property rule")(self, concept)


# --- the rules: how a property concept is derived (its ontology entry names the rule) ---------------

#: A rule: (the sample's geometry, the concept) -> the property's value. It runs only when the
#: concept's structure is present (absent: 0, or None for a length).
RuleFunction = Callable[[_Context, PropertyConcept], "float | None"]
RULES: dict[str, RuleFunction] = {}
#: Lengths in px of a present structure, by the ontology's ``length`` of a continuous concept.
LENGTHS: dict[str, Callable[[_Context, str], float]] = {
    "perimeter": lambda ctx, s: ctx.ellipse(s).perimeter,  # of the fitted ellipse (HC, AC)
    "minor": lambda ctx, s: 2 * ctx.ellipse(s).semi_minor,  # the fitted ellipse's minor axis (BPD)
    "major": lambda ctx, s: 2 * ctx.ellipse(s).semi_major,  # its major axis (OFD)
    "rod": lambda ctx, s: ctx.segment(s).length,  # end to end along the principal axis (FL)
}


def rule(name: str) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule implementation under ``name`` (the ``Rule.name`` ontology entries use)."""

    def register(fn: RuleFunction) -> RuleFunction:
        RULES[name] = fn
        return fn

    return register


def _param(concept: PropertyConcept) -> float:
    if concept.rule.param is None:
        raise ValueError(f"property concept {concept.name!r}: rule {concept.rule.name!r} needs a parameter")
    return concept.rule.param


@rule("visible")
def _visible_rule(ctx: _Context, concept: PropertyConcept) -> float:
    """The structure has a pixel (at least VISIBLE_MIN_PIXELS)."""
    return 1.0


@rule("complete")
def _complete(ctx: _Context, concept: PropertyConcept) -> float:
    """The structure keeps BORDER_MARGIN_PX clear of the field-of-view edge."""
    return float(not touches_border(ctx.masks[str(concept.structure)], ctx.fov))


@rule("magnified")
def _magnified(ctx: _Context, concept: PropertyConcept) -> float:
    """The structure's area is at least ``param`` of the field-of-view area."""
    return float(area_fraction(ctx.masks[str(concept.structure)], ctx.fov) >= _param(concept))


@rule("spans")
def _spans(ctx: _Context, concept: PropertyConcept) -> float:
    """The structure's rod length is at least ``param`` of the field-of-view width."""
    s = str(concept.structure)
    width = fov_width(ctx.fov, ctx.masks[s].shape)
    return float(width > 0 and ctx.segment(s).length >= _param(concept) * width)


@rule("round")
def _round(ctx: _Context, concept: PropertyConcept) -> float:
    """The fitted ellipse's minor/major axis ratio is at least ``param``."""
    return float(ctx.ellipse(str(concept.structure)).axis_ratio >= _param(concept))


@rule("horizontal")
def _horizontal(ctx: _Context, concept: PropertyConcept) -> float:
    """The rod's angle to the horizontal is under ``param`` degrees."""
    return float(ctx.segment(str(concept.structure)).angle_deg < _param(concept))


@rule("symmetric")
def _symmetric(ctx: _Context, concept: PropertyConcept) -> float:
    """The line of the second structure (the falx) splits the first into equal halves along its long axis."""
    structure, midline = concept.derived_from[:2]
    if not ctx.present[midline]:
        return 0.0
    return float(head_symmetry(ctx.masks[structure], ctx.masks[midline]).symmetric)


@rule("gain")
def _gain(ctx: _Context, concept: PropertyConcept) -> float:
    """The image inside the field of view is neither too dark nor saturated (see :class:`Gain`)."""
    if ctx.image is None:
        raise ValueError(f"property concept {concept.name!r}: rule 'gain' needs the image")
    return float(image_gain(ctx.image, ctx.fov).adequate)


@rule("length")
def _length(ctx: _Context, concept: PropertyConcept) -> float | None:
    """The concept's ``length`` of its structure in mm; None without a pixel spacing."""
    if not ctx.spacing:
        return None
    return ctx.mm(LENGTHS[str(concept.length)](ctx, str(concept.structure)))


def register_property_concept(concept: PropertyConcept) -> PropertyConcept:
    """Add a property concept after the built-in ones (a plug-in's, or a test's): every layer — the
    labels derived from masks, the model's property head, the reports — then handles it.

    It must run before anything above the ontology (``pcbm.data``, ``pcbm.models``, ``pcbm.explain``,
    …) is imported, since those bind the concept lists at import.

    Raises:
        RuntimeError: such a module is imported already.
        ValueError: the name is taken, a structure or the family is unknown, or no rule implements it.
    """
    if concept.rule.name not in RULES or (concept.length is not None and concept.length not in LENGTHS):
        raise ValueError(f"property concept {concept.name!r}: no rule implements {concept.rule} "
                         f"(length {concept.length}); rules: {', '.join(RULES)}; lengths: {', '.join(LENGTHS)}")
    return ontology._add_property_concept(concept)
