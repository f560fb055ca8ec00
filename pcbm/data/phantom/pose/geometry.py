"""Probe poses and analytic sections: the probe's plane, an ellipsoid cut by it, a rod cut by it.

World coordinates are millimetres in the fetus's frame: ``X`` across the body, ``Y`` depth below
the skin (down, the beam's direction at no tilt), ``Z`` along the body (toward the head). The probe
sits on the skin at (``across``, 0, ``along``); ``rotation`` turns it about the beam (0: the image's
lateral axis is ``X``, a transverse section of the body) and ``tilt`` rocks it about its lateral
axis (the beam fans toward the head). A point at image offset ``(u, v)`` mm (``u`` to the right of
the centre beam, ``v`` depth below the skin) is ``origin + u * lateral + v * beam``.

Example:
    >>> import numpy as np
    >>> e = Ellipsoid(np.array([0.0, 50.0, 0.0]), np.eye(3), np.array([30.0, 20.0, 25.0]))
    >>> s = section_ellipse(e, Pose(along=0.0))  # the transverse plane through the centre
    >>> [round(float(x), 3) + 0.0 for x in (*s.center, *sorted(s.axes))]
    [0.0, 50.0, 20.0, 30.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: the pose dimensions a probe move changes (``depth`` is the scanner's depth setting, set per plane)
POSE_DIMS: tuple[str, ...] = ("along", "across", "tilt", "rotation")


@dataclass(frozen=True)
class Pose:
    """A probe pose: where the probe's plane cuts the fetus.

    Example:
        >>> Pose(along=3.0).moved("tilt", 4.0).tilt
        4.0
    """

    along: float = 0.0  # mm along the body axis, toward the head
    across: float = 0.0  # mm across the body
    tilt: float = 0.0  # degrees, rocking about the probe's lateral axis (beam fans toward the head)
    rotation: float = 0.0  # degrees, about the beam axis
    depth: float = 100.0  # mm shown by the sector (the scanner's depth setting)

    def __post_init__(self) -> None:
        if not self.depth > 0:
            raise ValueError(f"pose depth must be positive, got {self.depth}")

    def vector(self) -> np.ndarray:
        """(4,) along, across, tilt, rotation."""
        return np.array([self.along, self.across, self.tilt, self.rotation], float)

    def moved(self, dim: str, amount: float) -> Pose:
        """This pose with ``amount`` added to one of :data:`POSE_DIMS`."""
        values = {k: getattr(self, k) for k in (*POSE_DIMS, "depth")}
        values[dim] += float(amount)
        return Pose(**values)


@dataclass(frozen=True)
class Frame:
    """The probe's plane in world coordinates: origin on the skin, unit lateral and beam axes, normal."""

    origin: np.ndarray  # (3,)
    lateral: np.ndarray  # (3,) image u
    beam: np.ndarray  # (3,) image v
    normal: np.ndarray  # (3,) lateral x beam

    @property
    def basis(self) -> np.ndarray:
        """(3, 2): columns lateral and beam."""
        return np.stack([self.lateral, self.beam], 1)

    def to_world(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) image offsets in mm -> (..., 3) world points."""
        return self.origin + np.asarray(uv, float) @ self.basis.T

    def to_plane(self, p: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) image offsets (orthogonal projection onto the plane)."""
        return (np.asarray(p, float) - self.origin) @ self.basis


def probe_frame(pose: Pose) -> Frame:
    """The plane of a pose (see the module docstring for the axes)."""
    th, ph = math.radians(pose.rotation), math.radians(pose.tilt)
    lateral = np.array([math.cos(th), 0.0, math.sin(th)])
    n0 = np.array([-math.sin(th), 0.0, math.cos(th)])  # the normal at no tilt
    beam = math.cos(ph) * np.array([0.0, 1.0, 0.0]) + math.sin(ph) * n0
    normal = np.cross(lateral, beam)
    return Frame(np.array([pose.across, 0.0, pose.along]), lateral, beam, normal)


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid: centre (3,), rotation (3, 3) whose rows are its axes, semi-axes (3,) in mm."""

    center: np.ndarray
    axes_rows: np.ndarray
    semi: np.ndarray

    def grown(self, mm: float) -> Ellipsoid:
        """The same ellipsoid with every semi-axis ``mm`` longer (negative: shorter, at least 0.1 mm)."""
        return Ellipsoid(self.center, self.axes_rows, np.maximum(self.semi + mm, 0.1))

    def scaled(self, f: float) -> Ellipsoid:
        return Ellipsoid(self.center, self.axes_rows, self.semi * f)


@dataclass(frozen=True)
class Section:
    """An ellipse in the image plane: centre (2,) and semi-axes (2,) in mm, angle in degrees (image
    axes, u right and v down: the canvas's convention)."""

    center: np.ndarray
    axes: np.ndarray
    angle: float

    @property
    def area(self) -> float:
        return float(math.pi * self.axes[0] * self.axes[1])


def section_ellipse(e: Ellipsoid, pose: Pose | Frame) -> Section | None:
    """The ellipse where the plane cuts the ellipsoid, or None when it misses.

    With ``p = o + M w`` (``M`` the plane basis, ``w`` image mm) in ``(p - c)^T A (p - c) <= 1``:
    ``w^T Q w + 2 g^T w + q^T A q <= 1`` with ``Q = M^T A M``, ``g = M^T A q``, ``q = o - c``; the
    centre is ``-Q^-1 g`` and the right-hand side ``k = 1 - q^T A q + g^T Q^-1 g``.
    """
    fr = probe_frame(pose) if isinstance(pose, Pose) else pose
    a_mat = e.axes_rows.T @ np.diag(1.0 / e.semi**2) @ e.axes_rows  # (3, 3)
    m = fr.basis  # (3, 2)
    q = fr.origin - e.center
    qm = m.T @ a_mat @ m  # (2, 2)
    g = m.T @ a_mat @ q  # (2,)
    centre = -np.linalg.solve(qm, g)
    k = 1.0 - q @ a_mat @ q + g @ np.linalg.solve(qm, g)
    if k <= 1e-9:
        return None
    lam, vec = np.linalg.eigh(qm / k)  # ascending: the first is the long axis
    axes = 1.0 / np.sqrt(lam)
    angle = math.degrees(math.atan2(vec[1, 0], vec[0, 0]))
    return Section(centre, axes, angle)


@dataclass(frozen=True)
class Rod:
    """A bone as a rod: ends (3,) and radius in mm."""

    p: np.ndarray
    q: np.ndarray
    radius: float

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.q - self.p))


def section_rod(rod: Rod, pose: Pose | Frame, slab_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The part of a rod within its radius (plus half the slice thickness ``slab_mm``) of the plane,
    projected into the image: (start (2,), end (2,) in mm, width in mm), or None when it misses. A rod
    that crosses the plane steeply gives a short piece (a dot); one lying in it, its whole length."""
    fr = probe_frame(pose) if isinstance(pose, Pose) else pose
    reach = rod.radius + slab_mm
    s0, s1 = float(fr.normal @ (rod.p - fr.origin)), float(fr.normal @ (rod.q - fr.origin))
    if abs(s1 - s0) < 1e-9:
        if abs(s0) > reach:
            return None
        t0, t1 = 0.0, 1.0
    else:
        ta, tb = (-reach - s0) / (s1 - s0), (reach - s0) / (s1 - s0)
        t0, t1 = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
        if t0 >= t1:
            return None
    a, b = rod.p + t0 * (rod.q - rod.p), rod.p + t1 * (rod.q - rod.p)
    mid_dist = abs(s0 + 0.5 * (t0 + t1) * (s1 - s0))
    width = 2 * math.sqrt(max(reach**2 - mid_dist**2, 0.0)) * rod.radius / reach
    return fr.to_plane(a), fr.to_plane(b), max(width, 0.3 * rod.radius)


def plane_line(point: np.ndarray, normal: np.ndarray, fr: Frame) -> tuple[np.ndarray, np.ndarray] | None:
    """Where another plane (through ``point``, with ``normal``) crosses the image: a point (2,) and a
    unit direction (2,) in image mm, or None when the planes are parallel."""
    n2 = fr.basis.T @ normal  # the other plane's normal seen in the image: the line is w . n2 = c
    norm = float(np.linalg.norm(n2))
    if norm < 1e-6:
        return None
    c = float(normal @ (point - fr.origin))
    p0 = n2 * c / norm**2
    return p0, np.array([-n2[1], n2[0]]) / norm
