"""Draw the section of a 3D fetus by a probe plane on a :class:`~pcbm.data.phantom.canvas.Canvas`.

Every structure is cut analytically (:mod:`pcbm.data.phantom.pose.geometry`) and drawn with the 2D
phantom's tissues and masks, back to front as the 2D drawers do. The midline echo (falx) is the
line where the head's midsagittal plane crosses the image; when the plane is rolled about the head's
long axis (an oblique, asymmetric section) it is drawn displaced and turned as the 2D phantom draws
an oblique head, by an amount that grows with the roll.
"""

from __future__ import annotations

import math

import numpy as np

from pcbm.data.phantom import anatomy
from pcbm.data.phantom.canvas import (
    BRAIN_T,
    BRIGHT,
    FAT,
    FLUID_T,
    LIVER,
    LONG_BONE,
    SKULL,
    SOFT,
    VERTEBRA,
    Canvas,
    Tissue,
)
from pcbm.data.phantom.pose.fetus import Fetus
from pcbm.data.phantom.pose.geometry import Ellipsoid, Frame, Section, plane_line, section_ellipse, section_rod
from pcbm.data.phantom.render import Geometry

#: falx displacement (fraction of the head's half-width) and turn (degrees) per radian / degree of roll
FALX_SHIFT_PER_RAD, FALX_TURN_PER_DEG = 0.6, 1.2


class _Px:
    """Image mm (u right of the centre beam, v below the skin) to canvas pixels."""

    def __init__(self, geom: Geometry, spacing: float):
        self.x0, self.y0, self.sp = geom.apex[0], float(geom.header_px), spacing

    def pt(self, uv: np.ndarray) -> np.ndarray:
        return np.array([self.x0 + uv[0] / self.sp, self.y0 + uv[1] / self.sp])

    def mm(self, v: float) -> float:
        return v / self.sp


def _ellipse(cv: Canvas, px: _Px, s: Section | None, t: Tissue, mask: str | None = None, grow_px: float = 0.0,
             thickness: float = -1) -> None:
    if s is None:
        return
    ax = s.axes / px.sp + grow_px
    if ax.min() <= 0.3:
        return
    cv.ellipse(px.pt(s.center), ax, s.angle, t, mask, thickness)


def _cut(e: Ellipsoid, fr: Frame) -> Section | None:
    return section_ellipse(e, fr)


def draw_trunk(cv: Canvas, fetus: Fetus, fr: Frame, px: _Px) -> None:
    """Body wall, liver or lungs, spine, kidneys, stomach, umbilical vein and heart, where cut."""
    trunk = fetus.ellipsoids["trunk"]
    s = _cut(trunk, fr)
    if s is None:
        return
    _ellipse(cv, px, s, Tissue(1.4), "abdomen")
    _ellipse(cv, px, _cut(trunk.grown(-1.2), fr), FAT)
    z = float(fr.to_world(s.center)[2] - trunk.center[2])
    inner = LIVER if z < 0.65 * fetus.trunk_radius else Tissue(1.1)  # lungs above the diaphragm
    _ellipse(cv, px, _cut(trunk.grown(-2.5), fr), inner)
    spine = section_rod(fetus.rods["spine"], fr, slab_mm=0.5)
    if spine is not None:
        a, b, _ = spine
        rv = px.mm(fetus.rods["spine"].radius) * 0.45
        if np.linalg.norm(b - a) < fetus.trunk_radius * 0.4:  # vertebra in cross-section
            c = px.pt((a + b) / 2)
            cv.circle(c, rv * 2.0, Tissue(0.6))
            for d in (np.array([0.0, -1.0]), np.array([1.1, 0.6]), np.array([-1.1, 0.6])):
                cv.circle(c + d * rv, rv * 0.7, VERTEBRA, mask="spine")
        else:  # the spine in long section: a row of vertebrae
            pa, pb = px.pt(a), px.pt(b)
            n = max(2, int(np.linalg.norm(pb - pa) / max(rv * 2.2, 2.0)))
            for t in np.linspace(0, 1, n):
                cv.circle(pa + t * (pb - pa), rv * 0.8, VERTEBRA, mask="spine")
    for k in ("kidney_l", "kidney_r"):
        ks = _cut(fetus.ellipsoids[k], fr)
        _ellipse(cv, px, ks, Tissue(0.35), "kidney")
        if ks is not None:
            _ellipse(cv, px, Section(ks.center, ks.axes * 0.4, ks.angle), Tissue(1.8))
    st = _cut(fetus.ellipsoids["stomach"], fr)
    _ellipse(cv, px, st, Tissue(1.4), grow_px=1.0)
    _ellipse(cv, px, st, FLUID_T, "stomach")
    uv = _cut(fetus.ellipsoids["umbilical_vein"], fr)
    _ellipse(cv, px, uv, Tissue(1.6), grow_px=1.0)
    _ellipse(cv, px, uv, FLUID_T, "umbilical_vein")
    heart = _cut(fetus.ellipsoids["heart"], fr)
    if heart is not None:
        _ellipse(cv, px, heart, Tissue(0.8), "heart")
        u = np.array([math.cos(math.radians(heart.angle)), math.sin(math.radians(heart.angle))])
        v = np.array([-u[1], u[0]])
        for su in (-1, 1):
            for sv in (-1, 1):
                c = heart.center + u * su * heart.axes[0] * 0.42 + v * sv * heart.axes[1] * 0.42
                _ellipse(cv, px, Section(c, heart.axes * np.array([0.36, 0.34]), heart.angle), Tissue(0.02))


def draw_femur(cv: Canvas, fetus: Fetus, fr: Frame, px: _Px) -> None:
    """Thigh soft tissue and the femoral diaphysis (bone, masked ``femur``) where the plane meets it."""
    thigh = fetus.ellipsoids["thigh"]
    _ellipse(cv, px, _cut(thigh, fr), Tissue(1.2))
    _ellipse(cv, px, _cut(thigh.grown(-1.0), fr), Tissue(0.75))
    cut = section_rod(fetus.rods["femur"], fr, slab_mm=0.5)
    if cut is None:
        return
    a, b, width = cut
    pa, pb, w = px.pt(a), px.pt(b), max(1.5, px.mm(width))
    if np.linalg.norm(pb - pa) < 1.0:
        cv.circle((pa + pb) / 2, w / 2, LONG_BONE, mask="femur")
        return
    cv.bar(pa, pb, w, LONG_BONE, mask="femur")


def _falx(cv: Canvas, fetus: Fetus, fr: Frame, px: _Px, brain: Section) -> None:
    head = fetus.head
    e2 = head.axes_rows[1]  # the midsagittal plane's normal
    line = plane_line(head.center, e2, fr)
    if line is None:
        return
    p0, d = line
    roll = math.asin(float(np.clip(fr.normal @ e2, -1, 1)))
    shift = float(np.clip(FALX_SHIFT_PER_RAD * roll, -0.35, 0.35))
    turn = float(np.clip(FALX_TURN_PER_DEG * math.degrees(roll), -35, 35))
    # the point of the line nearest the section's centre, then the oblique displacement and turn
    c = p0 + d * float((brain.center - p0) @ d)
    nrm = np.array([-d[1], d[0]])
    c = c + nrm * shift * float(brain.axes.min())
    t = math.radians(turn)
    d = np.array([d[0] * math.cos(t) - d[1] * math.sin(t), d[0] * math.sin(t) + d[1] * math.cos(t)])
    half = float(brain.axes.max())
    cv.line(px.pt(c - d * half), px.pt(c + d * half), max(1.0, px.mm(0.7)), BRIGHT, mask="falx")
    cv.mask("falx")[:] &= cv.mask("head")


def draw_head(cv: Canvas, fetus: Fetus, fr: Frame, px: _Px) -> None:
    """Scalp, skull (masked ``head``), brain, falx, CSP, thalami, the far lateral ventricle, cerebellum."""
    head = fetus.head
    s = _cut(head, fr)
    if s is None:
        return
    sk = fetus.skull_mm
    _ellipse(cv, px, _cut(head.grown(1.3 * sk), fr), SOFT)
    _ellipse(cv, px, s, SKULL, "head")
    brain = _cut(head.grown(-sk), fr)
    if brain is None:
        return
    _ellipse(cv, px, brain, BRAIN_T)
    _falx(cv, fetus, fr, px, brain)
    e = fetus.ellipsoids
    csp = _cut(e["csp"], fr)
    _ellipse(cv, px, csp, BRIGHT, grow_px=1.0)
    _ellipse(cv, px, csp, FLUID_T, "csp")
    for tag in ("l", "r"):
        th = _cut(e[f"thalamus_{tag}"], fr)
        _ellipse(cv, px, th, Tissue(0.1), "thalamus")
        _ellipse(cv, px, th, Tissue(0.8), thickness=1)
    vents = [v for v in (_cut(e["ventricle_l"], fr), _cut(e["ventricle_r"], fr)) if v is not None]
    if vents:  # the far (deeper) one: the near one hides in the near-field reverberation
        v = max(vents, key=lambda x: x.center[1])
        _ellipse(cv, px, v, FLUID_T, "lateral_ventricle")
        _ellipse(cv, px, Section(v.center, v.axes * np.array([0.55, 0.5]), v.angle), Tissue(2.0))
    _ellipse(cv, px, _cut(e["cisterna"], fr), FLUID_T)
    for tag in ("l", "r"):
        cb = _cut(e[f"cerebellum_{tag}"], fr)
        _ellipse(cv, px, cb, Tissue(0.08), "cerebellum")
        _ellipse(cv, px, cb, BRIGHT, thickness=1)
    _ellipse(cv, px, _cut(e["vermis"], fr), Tissue(2.0), "cerebellum")


def draw_section(fetus: Fetus, fr: Frame, geom: Geometry, spacing: float) -> Canvas:
    """The canvas of one section: maternal background, then trunk, femur and head where cut."""
    cv = Canvas(geom.size, spacing)
    anatomy.draw_background(cv, fetus.background, geom.apex, geom.r0)
    px = _Px(geom, spacing)
    draw_trunk(cv, fetus, fr, px)
    draw_femur(cv, fetus, fr, px)
    draw_head(cv, fetus, fr, px)
    cv.masks &= geom.fov[None].view(np.uint8)
    return cv
