"""A 3D fetus for the probe-pose phantom: head with its inner structures, trunk, heart, spine, femur.

Sizes follow the gestational age (:func:`pcbm.data.phantom.anatomy.biometry`). Each part sits at
the depth where its standard plane, at the depth setting chosen for that plane, fills the sector as
the 2D phantom's standard scenes do (a head about 45 % of the sector, a femur about half its width).
All randomness is drawn here, so a (fetus, pose) pair renders deterministically.

Head frame: ``e1`` occipito-frontal (toward the face), ``e2`` left-right, ``e3`` cranial (= ``Z``).
The trans-thalamic plane is the head's ``e1``-``e2`` plane through its centre; the lateral ventricles'
atria lie a little cranial of it (the trans-ventricular level), the cerebellum caudal and posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pcbm.data.phantom import anatomy
from pcbm.data.phantom.pose.geometry import Ellipsoid, Rod
from pcbm.data.phantom.render import Geometry

#: relative levels (fractions of the head's cranial semi-axis c): the TV plane, the posterior fossa
TV_LEVEL, CEREBELLUM_LEVEL = 0.25, -0.35
#: the heart's level above the abdominal-circumference plane, in trunk radii
HEART_LEVEL = 1.1


@dataclass(frozen=True)
class Fetus:
    """One sampled fetus: named ellipsoids and rods in world mm, plus what drawing needs."""

    ga: float
    ellipsoids: dict[str, Ellipsoid]
    rods: dict[str, Rod]
    depths: dict[str, float]  # standard depth setting (mm) per plane group: head, abdomen, thorax, femur
    skull_mm: float
    trunk_radius: float
    gain_db: float
    background: dict = field(default_factory=dict)

    @property
    def head(self) -> Ellipsoid:
        return self.ellipsoids["head"]


def _rows(e1: np.ndarray, e3: np.ndarray) -> np.ndarray:
    e1 = e1 / np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2 / np.linalg.norm(e2), e3])


def _fit_depth(geom: Geometry, half: tuple[float, float], angle: float, frac: float, grow: float) -> tuple[float, float]:
    """(depth mm, centre depth as a fraction of it) at which an ellipse of semi-axes ``half`` (mm),
    at ``angle``, covers ``frac`` of the sector and fits inside it (grown by ``grow``) with a margin."""
    fov_px = float(geom.fov.sum())
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    margin = max(3.0, 0.025 * geom.size)
    sp = 1.0
    for _ in range(30):
        sp = math.sqrt(math.pi * half[0] * half[1] / (frac * fov_px))
        x = grow * (half[0] * np.cos(t) * ca - half[1] * np.sin(t) * sa) / sp
        y = grow * (half[0] * np.cos(t) * sa + half[1] * np.sin(t) * ca) / sp
        for vf in (0.55, 0.5, 0.6, 0.45, 0.65):
            cy = geom.header_px + vf * geom.depth_px
            if geom.inside(geom.apex[0] + x, cy + y, margin).all():
                return sp * geom.depth_px, vf
        frac *= 0.96
    return sp * geom.depth_px, 0.55


def _femur_depth(geom: Geometry, length: float, radius: float) -> tuple[float, float]:
    cols = np.nonzero(geom.fov.any(0))[0]
    width = float(cols[-1] - cols[0] + 1)
    margin = max(3.0, 0.025 * geom.size)
    frac = 0.56
    sp = 1.0
    for _ in range(30):
        sp = length / (frac * width)
        half = (length / 2 + 2 * radius) / sp
        for vf in (0.5, 0.6, 0.7, 0.4):
            cy = geom.header_px + vf * geom.depth_px
            if geom.inside(np.array([geom.apex[0] - half, geom.apex[0] + half]), np.array([cy, cy]), margin).all():
                return sp * geom.depth_px, vf
        frac *= 0.96
    return sp * geom.depth_px, 0.5


def _background(rng: np.random.Generator, geom: Geometry) -> dict:
    half = math.degrees(geom.half_angle)
    start = rng.uniform(90 - half - 20, 90 + half - 10)
    return {"wall_mm": float(rng.uniform(9, 20)), "back_mm": float(rng.uniform(120, 200)),
            "placenta": bool(rng.random() < 0.5), "placenta_mm": float(rng.uniform(14, 26)),
            "placenta_from": float(start), "placenta_to": float(start + rng.uniform(30, 60))}


def sample_fetus(geom: Geometry, rng: np.random.Generator, ga: float | None = None) -> Fetus:
    """Sample a fetus sized by gestational age ``ga`` (weeks; drawn in 20-36 when None)."""
    ga = float(rng.uniform(20.0, 36.0) if ga is None else ga)
    z3 = np.array([0.0, 0.0, 1.0])
    ell: dict[str, Ellipsoid] = {}
    # trunk: centre at the abdominal-circumference level z = 0
    r = anatomy.biometry("ac", ga) * float(rng.uniform(0.95, 1.05)) / (2 * math.pi)
    length = 2.2 * r
    psi = math.radians(rng.uniform(-50, 50))
    ant = np.array([math.sin(psi), -math.cos(psi), 0.0])  # anterior wall toward the probe, give or take
    side = float(rng.choice([-1.0, 1.0]))
    d_ab, vf_ab = _fit_depth(geom, (1.04 * r, 0.96 * r), 0.0, 0.45, 1.08)
    d_th, vf_th = _fit_depth(geom, (0.9 * r, 0.83 * r), 0.0, 0.42, 1.08)
    trunk_rows = _rows(ant, z3) * np.array([[1.0], [side], [1.0]])  # rows: anterior, left, cranial
    centre_t = np.array([0.0, vf_ab * d_ab, 0.0])
    ell["trunk"] = Ellipsoid(centre_t, trunk_rows, np.array([0.96 * r, 1.04 * r, length]))

    def local(rows: np.ndarray, centre: np.ndarray, scale: np.ndarray, pos: tuple[float, float, float]) -> np.ndarray:
        return centre + (np.asarray(pos) * scale) @ rows

    rs = np.array([r, r, r])
    ell["stomach"] = Ellipsoid(local(trunk_rows, centre_t, rs, (0.08, 0.36, 0.12)), trunk_rows, np.array([0.15, 0.24, 0.3]) * r)
    ell["umbilical_vein"] = Ellipsoid(local(trunk_rows, centre_t, rs, (0.32, -0.05, 0.0)), trunk_rows,
                                      np.array([0.09 * r, 0.2 * r, max(0.09 * r, 3.0)]))
    for s, name in ((-1, "kidney_r"), (1, "kidney_l")):
        ell[name] = Ellipsoid(local(trunk_rows, centre_t, rs, (-0.45, 0.36 * s, -0.5)), trunk_rows, np.array([0.13, 0.2, 0.25]) * r)
    hr = np.stack([math.cos(0.7) * trunk_rows[0] + math.sin(0.7) * trunk_rows[1],
                   -math.sin(0.7) * trunk_rows[0] + math.cos(0.7) * trunk_rows[1], z3])
    heart_c = local(trunk_rows, centre_t, rs, (0.12, 0.1, HEART_LEVEL))
    heart_c[1] = vf_th * d_th + (heart_c[1] - centre_t[1])  # the thorax at its own standard depth
    ell["heart"] = Ellipsoid(heart_c, hr, np.array([0.6, 0.5, 0.4]) * r)
    spine_p = local(trunk_rows, centre_t, rs, (-0.7, 0.0, 0.0))
    rods = {"spine": Rod(spine_p - z3 * length, spine_p + z3 * length * 1.2, 0.12 * r)}
    # femur: from the hip just below the trunk, pointing across the body
    fl = anatomy.biometry("fl", ga) * float(rng.uniform(0.95, 1.05))
    fr = max(1.2, 0.045 * fl)
    d_f, vf_f = _femur_depth(geom, fl, fr)
    beta, gamma = math.radians(rng.uniform(-25, 25)), math.radians(rng.uniform(-12, 12))
    fside = float(rng.choice([-1.0, 1.0]))
    fdir = np.array([fside * math.cos(gamma) * math.cos(beta), math.sin(gamma), math.cos(gamma) * math.sin(beta)])
    p0 = np.array([fside * 0.3 * r, 0.0, -length - 0.2 * r])
    p0[1] = vf_f * d_f - fdir[1] * fl / 2
    rods["femur"] = Rod(p0, p0 + fdir * fl, fr)
    ell["thigh"] = Ellipsoid(p0 + fdir * fl * 0.5, _rows(fdir, np.cross(fdir, z3) if abs(fdir[2]) < 0.99 else z3)[[0, 2, 1]],
                             np.array([0.72 * fl, 0.3 * fl, 0.3 * fl]))
    # head, above the neck; the occipito-frontal axis near horizontal on the screen
    ofd, bpd = anatomy.head_axes_mm(ga)
    jit = float(rng.uniform(0.95, 1.05))
    a, b = ofd / 2 * jit, bpd / 2 * jit
    c = 0.8 * a
    alpha = math.radians(rng.uniform(-20, 20))
    front = float(rng.choice([-1.0, 1.0]))
    e1 = front * np.array([math.cos(alpha), math.sin(alpha), 0.0])
    hrows = _rows(e1, z3)
    d_h, vf_h = _fit_depth(geom, (a, b), math.degrees(alpha), 0.45, 1.12)
    centre_h = np.array([0.0, vf_h * d_h, length + 0.3 * a + c])
    ell["head"] = Ellipsoid(centre_h, hrows, np.array([a, b, c]))
    hs = np.array([a, b, c])
    tcd = anatomy.biometry("tcd", ga) * float(rng.uniform(0.95, 1.05))
    ell["csp"] = Ellipsoid(local(hrows, centre_h, hs, (0.36, 0.0, 0.1)), hrows,
                           np.array([0.15 * a, max(1.75, 0.055 * bpd), 0.3 * c]))
    for s, tag in ((-1, "r"), (1, "l")):
        ell[f"thalamus_{tag}"] = Ellipsoid(local(hrows, centre_h, hs, (-0.02, 0.16 * s, 0.0)), hrows,
                                           np.array([0.17 * a, 0.13 * b, 0.1 * c]))
        ell[f"ventricle_{tag}"] = Ellipsoid(local(hrows, centre_h, hs, (-0.42, 0.36 * s, TV_LEVEL)), hrows,
                                            np.array([0.24 * a, 0.12 * b, 0.1 * c]))
        cb = local(hrows, centre_h, hs, (-0.55, 0.0, CEREBELLUM_LEVEL)) + hrows[1] * s * 0.24 * tcd
        ell[f"cerebellum_{tag}"] = Ellipsoid(cb, hrows, np.full(3, 0.25 * tcd))
    vermis = local(hrows, centre_h, hs, (-0.55, 0.0, CEREBELLUM_LEVEL))
    ell["vermis"] = Ellipsoid(vermis, hrows, np.full(3, 0.13 * tcd))
    ell["cisterna"] = Ellipsoid(vermis - hrows[0] * 0.3 * tcd, hrows, np.array([0.1, 0.35, 0.25]) * tcd)
    return Fetus(ga=ga, ellipsoids=ell, rods=rods,
                 depths={"head": d_h, "abdomen": d_ab, "thorax": d_th, "femur": d_f},
                 skull_mm=float(rng.uniform(1.8, 3.0)), trunk_radius=r, gain_db=float(rng.uniform(-2.5, 2.5)),
                 background=_background(rng, geom))
