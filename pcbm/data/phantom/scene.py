"""Scenes per plane: sample the anatomy's parameters (standard, or breaking one criterion) and draw them.

A scene is a flat parameter dict (``plane``, ``broken``, ``ga``, ``spacing_mm``, ``gain_db``, the
background and the plane's anatomy, sizes in pixels) plus ``intended``: the binary properties the
scene was built to have. :func:`draw_scene` turns the dict into a :class:`Canvas` deterministically.

Example:
    >>> import numpy as np
    >>> from pcbm.data.phantom.render import geometry
    >>> g = geometry("default", 128)
    >>> p = sample_scene("trans_cerebellar", None, g, np.random.default_rng(0))
    >>> p["intended"]["cerebellum_visible"], bool(draw_scene(p, g).mask("cerebellum").any())
    (1.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pcbm.concepts.ontology import PLANE_NAMES, get_plane
from pcbm.data.phantom import anatomy, others
from pcbm.data.phantom.canvas import Canvas, ellipse_points
from pcbm.data.phantom.render import Geometry
from pcbm.errors import InputError

HEAD_PLANES = ("trans_thalamic", "trans_ventricular", "trans_cerebellar")
#: criteria a plane needs to be that plane at all: never broken. Without them the scene would be
#: 'other' (femur, heart, cervix) or could not be told from a sibling plane by its properties alone
#: (a TT without thalami, a TV without ventricles and a TC without cerebellum all reduce to "CSP only").
_DEFINING = {
    "femur_visible", "heart_visible", "cervix_visible",
    "thalamus_visible", "lateral_ventricle_visible",
}
_DEFINING_FOR = {"trans_cerebellar": {"cerebellum_visible"}}


def breakable(plane: str) -> tuple[str, ...]:
    """The criteria (property names) a non-standard scene of ``plane`` may break, one at a time."""
    if plane == "other":
        return ()
    keep = _DEFINING | _DEFINING_FOR.get(plane, set())
    return tuple(c.property for c in get_plane(plane).criteria if c.property not in keep)


def _frac_range(broken: str | None, prop: str, ok: tuple[float, float], bad: tuple[float, float]) -> tuple[float, float]:
    return bad if broken == prop else ok


def _place(geom: Geometry, rng: np.random.Generator, outline: Callable[[np.ndarray], np.ndarray],
           accept: Callable[[np.ndarray, np.ndarray], bool], tries: int = 40) -> np.ndarray | None:
    """A random centre whose outline points pass ``accept(points, inside_flags)``; None if none found."""
    s = geom.size
    for _ in range(tries):
        c = np.array([rng.uniform(0.1 * s, 0.9 * s), rng.uniform(geom.header_px + 0.1 * s, 0.95 * s)])
        pts = outline(c)
        if accept(pts, pts):
            return c
    # rare: scan a grid of centres in random order before giving up
    xs, ys = np.meshgrid(np.linspace(0.05 * s, 0.95 * s, 19), np.linspace(geom.header_px + 0.05 * s, 0.97 * s, 19))
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    for c in grid[rng.permutation(len(grid))]:
        pts = outline(c)
        if accept(pts, pts):
            return c
    return None


def _place_fit(geom: Geometry, rng: np.random.Generator, offsets: np.ndarray, margin: float,
               tries: int = 64) -> np.ndarray | None:
    """A random centre such that every ``centre + offsets`` point lies inside the sector (vectorised)."""
    s = geom.size
    cand = np.stack([rng.uniform(0.1 * s, 0.9 * s, tries), rng.uniform(geom.header_px + 0.1 * s, 0.95 * s, tries)], 1)
    xs, ys = np.meshgrid(np.linspace(0.05 * s, 0.95 * s, 19), np.linspace(geom.header_px + 0.05 * s, 0.97 * s, 19))
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    for batch in (cand, grid[rng.permutation(len(grid))]):
        pts = batch[:, None, :] + offsets[None]
        ok = geom.inside(pts[..., 0], pts[..., 1], margin).all(1)
        if ok.any():
            return batch[int(np.argmax(ok))]
    return None


def _margin(geom: Geometry) -> float:
    return max(3.0, 0.025 * geom.size)


def _cut(geom: Geometry, centre_of: Callable[[np.ndarray], np.ndarray], u: np.ndarray, a: float,
         out_range: tuple[float, float]) -> Callable[[np.ndarray, np.ndarray], bool]:
    """Accept outlines cut by the sector edge at one end of the long axis only (so the cut stays
    symmetric about the midline), with a fraction of outline points in ``out_range`` outside and
    the core (the last 8 points) well inside."""

    def ok(pts: np.ndarray, _: np.ndarray) -> bool:
        outer, inner = pts[:-8], pts[-8:]
        out = ~geom.inside(outer[:, 0], outer[:, 1], -1.0)
        if not (out_range[0] <= out.mean() <= out_range[1]):
            return False
        proj = (outer[out] - centre_of(pts)) @ u
        one_end = bool((proj > 0.55 * a).all() or (proj < -0.55 * a).all())
        return one_end and bool(geom.inside(inner[:, 0], inner[:, 1], 3.0).all())

    return ok


def _background(geom: Geometry, rng: np.random.Generator) -> dict:
    mid = 90.0
    half = math.degrees(geom.half_angle)
    start = rng.uniform(mid - half - 20, mid + half - 10)
    return {
        "wall_mm": float(rng.uniform(9, 22)),
        "back_mm": float(rng.uniform(60, 150)),
        "placenta": bool(rng.random() < 0.6),
        "placenta_mm": float(rng.uniform(14, 30)),
        "placenta_from": float(start),
        "placenta_to": float(start + rng.uniform(30, 70)),
    }


def _ga(rng: np.random.Generator) -> float:
    return float(rng.uniform(18.0, 40.0))


# --- per plane ------------------------------------------------------------------------------------


def _head(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator) -> dict:
    ga = _ga(rng)
    ofd_mm, bpd_mm = anatomy.head_axes_mm(ga)
    jitter = rng.uniform(0.94, 1.06)
    ofd_mm, bpd_mm = ofd_mm * jitter, bpd_mm * jitter * rng.uniform(0.96, 1.04)
    ratio = bpd_mm / ofd_mm
    fov_area = float(geom.fov.sum())
    cut = broken == "head_complete"
    lo, hi = (0.5, 0.6) if cut else _frac_range(broken, "head_magnified", (0.42, 0.56), (0.08, 0.2))
    frac = rng.uniform(lo, hi)
    if cut:  # leave through the bottom (head upright) or a side (long axis across the edge)
        side = rng.random() < 0.4
        theta = math.degrees(geom.half_angle)
        angle = float(rng.choice([-1, 1]) * theta + rng.uniform(-4, 4) if side else 90 + rng.uniform(-6, 6))
    else:
        angle = float(rng.uniform(-30, 30) + (90 if rng.random() < 0.15 else 0))
    u = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    c = None
    for _ in range(12):
        a = math.sqrt(frac * fov_area / (math.pi * ratio))
        b = a * ratio

        def outline(cc: np.ndarray, a: float = a, b: float = b, angle: float = angle) -> np.ndarray:
            if cut:
                return np.concatenate([ellipse_points(cc, (a, b), angle, 40),
                                       ellipse_points(cc, (a * 0.7, b * 0.6), angle, 7), cc[None]])
            return ellipse_points(cc, (a * 1.06, b * 1.08), angle, 40)

        if cut:
            c = _place(geom, rng, outline, _cut(geom, lambda pts: pts[-1], u, a, (0.15, 0.33)), tries=80)
        else:
            c = _place_fit(geom, rng, outline(np.zeros(2)), _margin(geom))
        if c is not None:
            break
        if not cut:
            frac *= 0.95
            if broken != "head_magnified" and frac < 0.37:
                frac = 0.37
                angle = float(rng.uniform(-10, 10))
    if c is None:  # give up on the exact placement: centre of the sector (the caller's check catches it)
        c = np.array([geom.size / 2, geom.header_px + geom.depth_px * 0.55])
    spacing = ofd_mm / (2 * a)
    oblique = broken == "head_symmetric"
    p = {
        "cx": float(c[0]), "cy": float(c[1]), "a": float(a), "b": float(b), "angle": angle,
        "front": float(rng.choice([-1.0, 1.0])), "skull_mm": float(rng.uniform(1.8, 3.0)),
        "bpd_mm": float(bpd_mm), "tcd_mm": anatomy.biometry("tcd", ga) * float(rng.uniform(0.93, 1.07)),
        "falx_offset": float(rng.choice([-1, 1]) * rng.uniform(0.22, 0.32)) if oblique else 0.0,
        "falx_tilt": float(rng.choice([-1, 1]) * rng.uniform(20, 30)) if oblique else 0.0,
        "csp": broken != "csp_visible",
        "thalamus": plane == "trans_thalamic" and broken != "thalamus_visible",
        "ventricle": plane == "trans_ventricular" and broken != "lateral_ventricle_visible",
        "cerebellum": (plane == "trans_cerebellar") != (broken == "cerebellum_visible"),
        "lv_side": float(rng.choice([-1.0, 1.0])),
        "gyri": rng.uniform(-1, 1, 4 * int(rng.integers(2, 6))),
        "body": float(rng.random() < 0.5), "body_tilt": float(rng.uniform(-30, 30)),
    }
    intended = {
        "head_visible": 1.0, "head_complete": float(not cut), "head_magnified": float(broken != "head_magnified"),
        "csp_visible": float(p["csp"]), "thalamus_visible": float(p["thalamus"]),
        "lateral_ventricle_visible": float(p["ventricle"]), "cerebellum_visible": float(p["cerebellum"]),
    }
    intended["head_symmetric"] = float(not oblique)
    return {**p, "ga": ga, "spacing_mm": spacing, "intended": intended}


def _trunk(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator) -> dict:
    ga = _ga(rng)
    abdomen = plane == "abdomen"
    circ_mm = anatomy.biometry("ac", ga) * rng.uniform(0.94, 1.06) * (1.0 if abdomen else 0.85)
    ratio = rng.uniform(0.55, 0.68) if broken == "abdomen_round" else rng.uniform(0.86, 0.98)
    prop = "abdomen_magnified" if abdomen else "heart_magnified"
    lo, hi = _frac_range(broken, prop, (0.42, 0.55), (0.1, 0.2) if abdomen else (0.12, 0.2))
    frac = rng.uniform(lo, hi)
    angle = float(rng.uniform(0, 180))
    fov_area = float(geom.fov.sum())
    c = None
    for _ in range(12):
        a = math.sqrt(frac * fov_area / (math.pi * ratio))
        b = a * ratio
        c = _place_fit(geom, rng, ellipse_points((0.0, 0.0), (a, b), angle, 40), _margin(geom))
        if c is not None:
            break
        frac = max(frac * 0.95, 0.37 if broken != prop else 0.0)
    if c is None:
        c = np.array([geom.size / 2, geom.header_px + geom.depth_px * 0.55])
    h = 1 - ((a - b) / (a + b)) ** 2
    spacing = circ_mm / (math.pi * (a + b) * (1 + 3 * (1 - h) / (10 + math.sqrt(4 - 3 * (1 - h)))))
    # the anterior wall points up (± 80°): the spine lies low and its shadow misses the organs
    p = {
        "cx": float(c[0]), "cy": float(c[1]), "a": float(a), "b": float(b), "angle": angle,
        "anterior": float(rng.uniform(-170, -10)), "left": float(rng.choice([-1.0, 1.0])),
        "stomach": abdomen and broken != "stomach_visible", "uv": abdomen and broken != "umbilical_vein_visible",
        "kidney": abdomen and broken == "kidney_visible",
        "heart_a": float(rng.uniform(0.6, 0.66)), "heart_b": float(rng.uniform(0.5, 0.55)),
    }
    if abdomen:
        intended = {"abdomen_visible": 1.0, "abdomen_round": float(broken != "abdomen_round"),
                    "abdomen_magnified": float(broken != "abdomen_magnified"), "stomach_visible": float(p["stomach"]),
                    "umbilical_vein_visible": float(p["uv"]), "kidney_visible": float(p["kidney"]),
                    "spine_visible": 1.0}
    else:
        intended = {"heart_visible": 1.0, "heart_magnified": float(broken != "heart_magnified"), "spine_visible": 1.0}
    return {**p, "ga": ga, "spacing_mm": spacing, "intended": intended}


def _femur(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator) -> dict:
    ga = _ga(rng)
    fl_mm = anatomy.biometry("fl", ga) * rng.uniform(0.94, 1.06)
    cols = np.nonzero(geom.fov.any(0))[0]
    width = float(cols[-1] - cols[0] + 1)
    lo, hi = _frac_range(broken, "femur_magnified", (0.48, 0.66), (0.14, 0.24))
    if broken == "femur_ends_visible":
        lo = 0.55
    steep = broken == "femur_horizontal"
    c = None
    for _ in range(12):
        length = rng.uniform(lo, hi) * width
        angle = float(rng.choice([-1, 1]) * (rng.uniform(58, 85) if steep else rng.uniform(0, 25)))
        u = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        if broken == "femur_ends_visible":
            def ok(pts: np.ndarray, _: np.ndarray, length: float = length) -> bool:
                ins = geom.inside(pts[1:, 0], pts[1:, 1], 1.0)
                return bool(ins.all() and not geom.inside(*pts[0], -1.0))

            def outline(cc: np.ndarray, length: float = length, u: np.ndarray = u) -> np.ndarray:
                # first point (10% in from one end) outside, the rest inside: 80-90% of the bone stays in view
                return np.stack([cc - u * length * 0.4, cc, cc + u * length * 0.56, cc - u * length * 0.3])
        else:
            def outline(cc: np.ndarray, length: float = length, u: np.ndarray = u) -> np.ndarray:
                v = np.array([-u[1], u[0]])
                ends = [cc - u * length * 0.56, cc + u * length * 0.56]
                return np.stack([*ends, *(e + v * length * 0.07 for e in ends), *(e - v * length * 0.07 for e in ends)])
        if broken == "femur_ends_visible":
            c = _place(geom, rng, outline, ok, tries=60)
        else:
            c = _place_fit(geom, rng, outline(np.zeros(2)), _margin(geom))
        if c is not None:
            break
    if c is None:
        c = np.array([geom.size / 2, geom.header_px + geom.depth_px * 0.5])
    p = {"cx": float(c[0]), "cy": float(c[1]), "length": float(length), "angle": angle,
         "thigh_tilt": float(rng.uniform(-8, 8))}
    intended = {"femur_visible": 1.0, "femur_ends_visible": float(broken != "femur_ends_visible"),
                "femur_horizontal": float(not steep), "femur_magnified": float(broken != "femur_magnified")}
    return {**p, "ga": ga, "spacing_mm": fl_mm / length, "intended": intended}


def _cervix(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    spacing = rng.uniform(70, 130) / geom.depth_px
    cx = s / 2 + rng.uniform(-0.12, 0.12) * s
    p = {
        "bladder": broken != "bladder_visible",
        "bx": float(cx + rng.uniform(-0.05, 0.05) * s), "by": float(geom.header_px + geom.depth_px * rng.uniform(0.22, 0.3)),
        "ba": float(rng.uniform(0.2, 0.3) * s), "bb": float(rng.uniform(0.1, 0.14) * s), "bangle": float(rng.uniform(-15, 15)),
        "cx": float(cx + rng.uniform(-0.08, 0.08) * s), "cy": float(geom.header_px + geom.depth_px * rng.uniform(0.58, 0.7)),
        "ca": float(rng.uniform(30, 42) / spacing), "cb": float(rng.uniform(11, 16) / spacing),
        "angle": float(rng.uniform(-35, 35)),
        "ga": _ga(rng), "spacing_mm": float(spacing),
    }
    p["intended"] = {"cervix_visible": 1.0, "bladder_visible": float(p["bladder"])}
    return p


def _other(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator, mode: str = "blobs") -> dict:
    p = others.sample_other(geom, rng, mode)
    p.update({"ga": _ga(rng), "spacing_mm": float(rng.uniform(60, 160) / geom.depth_px)})
    return p


_SAMPLERS: dict[str, Callable[[str, str | None, Geometry, np.random.Generator], dict]] = {
    **{p: _head for p in HEAD_PLANES},
    "abdomen": _trunk, "thorax": _trunk, "femur": _femur, "cervix": _cervix, "other": _other,
}
_DRAWERS = {
    **{p: anatomy.draw_head for p in HEAD_PLANES},
    "abdomen": anatomy.draw_abdomen, "thorax": anatomy.draw_thorax, "femur": anatomy.draw_femur,
    "cervix": anatomy.draw_cervix, "other": others.draw_other,
}


def sample_scene(plane: str, broken: str | None, geom: Geometry, rng: np.random.Generator, other: str = "blobs") -> dict:
    """Sample the parameters of one scene of ``plane`` breaking criterion ``broken`` (None: standard).

    ``other``: what an "other" scene is — ``rich`` (vessels, organs, placenta, limbs, spine,
    profile, kidney, probe in air, text screens: :mod:`pcbm.data.phantom.others`) or ``blobs``.

    Raises:
        ValueError: for an unknown plane or a criterion the plane cannot break.
    """
    if plane not in PLANE_NAMES:
        raise InputError(f"unknown plane {plane!r}; choose one of {', '.join(PLANE_NAMES)}")
    if broken is not None and broken not in breakable(plane):
        raise InputError(f"plane {plane!r} cannot break {broken!r}; choose one of {', '.join(breakable(plane)) or 'none'}")
    if other not in others.OTHER_MODES:
        raise InputError(f"unknown phantom option other={other!r}; choose one of {', '.join(others.OTHER_MODES)}")
    p = _other(plane, broken, geom, rng, other) if plane == "other" else _SAMPLERS[plane](plane, broken, geom, rng)
    p.update(_background(geom, rng))
    p["plane"], p["broken"] = plane, broken
    dr = geom.style.dynamic_range_db
    if broken == "gain_adequate":  # too dark or too bright, yet the anatomy still shows (see render_scene)
        low = bool(rng.random() < 0.5)
        p["gain_db"] = float((-0.3 if low else 0.7) * dr)
        p["gain_target"] = ("mean", float(rng.uniform(5.5, 8.0))) if low else ("saturated", float(rng.uniform(0.16, 0.35)))
    else:
        p["gain_db"] = float(rng.uniform(-2.5, 2.5))
    if plane != "other":
        p["intended"]["gain_adequate"] = float(broken != "gain_adequate")
    return p


def draw_scene(p: dict, geom: Geometry) -> Canvas:
    """Draw a scene's layers and masks (deterministic: all randomness is in ``p``); masks are cut to the sector."""
    cv = Canvas(geom.size, p["spacing_mm"])
    if p.get("kind") not in others.BARE:  # the probe in air, a screen of text: nothing behind them
        anatomy.draw_background(cv, p, geom.apex, geom.r0, maternal=p["plane"] == "cervix")
    _DRAWERS[p["plane"]](cv, p)
    cv.masks &= geom.fov[None].view(np.uint8)
    return cv
