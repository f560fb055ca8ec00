"""Fetal anatomy for the phantom: biometry by gestational age and the drawing of each structure.

Every drawer takes a :class:`~pcbm.data.phantom.canvas.Canvas` and a flat parameter dict (all
randomness is sampled beforehand into the dict, so a sweep can interpolate two dicts and draw
every frame in between). Sizes in the dicts are in image pixels.
"""

from __future__ import annotations

import math

import numpy as np

from pcbm.data.phantom.canvas import (
    BRAIN_T,
    BRIGHT,
    FAT,
    FLUID_T,
    LIVER,
    LONG_BONE,
    PLACENTA,
    SKULL,
    SOFT,
    VERTEBRA,
    Canvas,
    Tissue,
    rot,
)

# approximate 50th centiles (mm) at 20, 30 and 40 weeks (DESIGN.md; Hadlock-like)
_GA = (20.0, 30.0, 40.0)
_BIOMETRY = {
    "bpd": (48.0, 77.0, 95.0),
    "hc": (175.0, 280.0, 345.0),
    "ac": (150.0, 255.0, 350.0),
    "fl": (33.0, 57.0, 75.0),
    "tcd": (20.0, 33.0, 50.0),  # transverse cerebellar diameter ≈ GA in mm up to ~24 weeks
}


def biometry(name: str, ga_weeks: float) -> float:
    """Median size (mm) of ``bpd``, ``hc``, ``ac``, ``fl`` or ``tcd`` at a gestational age (linear, extrapolated)."""
    v = _BIOMETRY[name]
    if ga_weeks <= _GA[1]:
        return v[0] + (v[1] - v[0]) * (ga_weeks - _GA[0]) / 10.0
    return v[1] + (v[2] - v[1]) * (ga_weeks - _GA[1]) / 10.0


def head_axes_mm(ga_weeks: float) -> tuple[float, float]:
    """(OFD, BPD) in mm from the HC and BPD centiles (HC ≈ π (OFD + BPD) / 2)."""
    bpd = biometry("bpd", ga_weeks)
    return 2 * biometry("hc", ga_weeks) / math.pi - bpd, bpd


# --- maternal background ----------------------------------------------------------------------


def draw_background(cv: Canvas, p: dict, apex: tuple[float, float], r0: float, maternal: bool = False) -> None:
    """Maternal wall layers around the probe, amniotic fluid (or pelvic tissue), placenta, posterior wall."""
    if maternal:
        cv.layers[:] = Tissue(0.5)
    else:
        cv.layers[:] = Tissue(0.8)
        cv.circle(apex, r0 + cv.px(p["back_mm"]), FLUID_T)
        if p["placenta"]:
            rp = r0 + cv.px(p["wall_mm"] + p["placenta_mm"] / 2)
            cv.ellipse(apex, (rp, rp), 0, PLACENTA, thickness=cv.px(p["placenta_mm"]),
                       arc=(p["placenta_from"], p["placenta_to"]))
    wall = p["wall_mm"]
    # skin, fat, fascia, muscle, fascia, myometrium — drawn outside-in as filled discs
    layers = ((wall, Tissue(0.9)), (wall - 4, BRIGHT), (wall - 4.6, Tissue(0.5)), (wall * 0.45, BRIGHT),
              (wall * 0.45 - 0.6, FAT), (1.2, BRIGHT))
    for depth, t in layers:
        if depth > 0:
            cv.circle(apex, r0 + cv.px(depth), t)


# --- head ---------------------------------------------------------------------------------------


def draw_head(cv: Canvas, p: dict) -> None:
    """Skull ellipse with falx, CSP, thalami, lateral ventricle and cerebellum as the flags say."""
    c = np.array([p["cx"], p["cy"]])
    a, b, ang, f = p["a"], p["b"], p["angle"], 1.0 if p["front"] >= 0 else -1.0
    u, v = rot(ang)
    skull = max(1.5, cv.px(p["skull_mm"]))
    if p.get("body", 0) > 0:  # the neck and trunk behind the head
        cv.ellipse(c - f * u * a * 1.55, (a * 0.9, b * 0.8), ang + p["body_tilt"], Tissue(0.8))
    cv.ellipse(c, (a + skull * 1.3, b + skull * 1.3), ang, SOFT)  # scalp
    cv.ellipse(c, (a, b), ang, SKULL, mask="head")
    cv.ellipse(c, (a - skull, b - skull), ang, BRAIN_T)
    for k in range(len(p["gyri"]) // 4):  # faint gyral echoes and sulci
        g = p["gyri"][4 * k : 4 * k + 4]
        gc = c + u * a * 0.6 * g[0] + v * b * 0.6 * g[1]
        cv.ellipse(gc, (a * 0.25, b * 0.12), ang + 40 * g[2], Tissue(0.55 + 0.3 * g[3]), thickness=1, arc=(0, 120))
    for s in (-1, 1):  # insula / Sylvian fissure
        cv.ellipse(c + s * v * b * 0.55, (a * 0.22, b * 0.12), ang, Tissue(0.9), thickness=1,
                   arc=(200, 340) if s < 0 else (20, 160))
    # midline: falx along the long axis (shifted and tilted when the plane is oblique)
    fu, fv = rot(ang + p["falx_tilt"])
    fc = c + v * b * p["falx_offset"]
    half = a - skull * 1.5
    cv.line(fc - fu * half, fc + fu * half, max(1.0, cv.px(0.7)), BRIGHT, mask="falx")
    cv.mask("falx")[:] &= cv.mask("head")
    if p["csp"]:
        cc = fc + f * fu * a * 0.36
        length, width = a * 0.3, max(3.0, cv.px(max(3.5, 0.11 * p["bpd_mm"])))
        cv.bar(cc - fu * length / 2, cc + fu * length / 2, width + 2, BRIGHT)
        cv.bar(cc - fu * length / 2, cc + fu * length / 2, width, FLUID_T, mask="csp")
    if p["thalamus"]:
        for s in (-1, 1):
            tc = fc - f * fu * a * 0.02 + s * fv * b * 0.16
            cv.ellipse(tc, (a * 0.17, b * 0.13), ang + s * f * 18, Tissue(0.1), mask="thalamus")
            cv.ellipse(tc, (a * 0.17, b * 0.13), ang + s * f * 18, Tissue(0.8), thickness=1)
    if p["ventricle"]:
        s = 1.0 if p["lv_side"] >= 0 else -1.0
        vc = fc - f * fu * a * 0.42 + s * fv * b * 0.36
        cv.ellipse(vc, (a * 0.24, b * 0.12), ang - s * f * 12, FLUID_T, mask="lateral_ventricle")
        cv.ellipse(vc + s * fv * b * 0.1, (a * 0.24, b * 0.1), ang - s * f * 12, BRIGHT, thickness=1, arc=(0, 180))
        cv.ellipse(vc - f * fu * a * 0.04, (a * 0.14, b * 0.07), ang - s * f * 12, Tissue(2.0))  # choroid plexus
    if p["cerebellum"]:
        tcd = cv.px(p["tcd_mm"])
        cc = fc - f * fu * a * 0.55
        cv.ellipse(cc - f * fu * tcd * 0.42, (tcd * 0.16, tcd * 0.4), ang, FLUID_T)  # cisterna magna
        for s in (-1, 1):
            cv.circle(cc + s * fv * tcd * 0.24, tcd * 0.25, Tissue(0.08), mask="cerebellum")
            cv.circle(cc + s * fv * tcd * 0.24, tcd * 0.25, BRIGHT, thickness=1)
        cv.ellipse(cc, (tcd * 0.13, tcd * 0.13), ang, Tissue(2.0), mask="cerebellum")  # vermis


# --- abdomen and thorax ----------------------------------------------------------------------------


def _trunk(cv: Canvas, p: dict, mask: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Body wall, ribs and spine of a transverse trunk section; returns centre, anterior and left units, radius."""
    c = np.array([p["cx"], p["cy"]])
    a, b, ang = p["a"], p["b"], p["angle"]
    ua, ub = rot(ang)
    ant = rot(p["anterior"])[0]  # direction from the centre to the anterior wall
    left = np.array([-ant[1], ant[0]]) * (1.0 if p["left"] >= 0 else -1.0)
    r = (a + b) / 2
    cv.ellipse(c, (a, b), ang, Tissue(1.4), mask=mask)
    cv.ellipse(c, (a - cv.px(1.2), b - cv.px(1.2)), ang, FAT)
    cv.ellipse(c, (a - cv.px(2.5), b - cv.px(2.5)), ang, LIVER if mask else Tissue(1.1))  # liver / lungs
    for s in (-1, 1):  # ribs: short bright arcs along the lateral walls, with shadows
        rc = c + s * left * r * 0.78 - ant * r * 0.15
        cv.ellipse(rc, (r * 0.16, cv.px(1.2)), math.degrees(math.atan2(ant[1], ant[0])), LONG_BONE)
    sp = c - ant * r * 0.7  # spine: vertebral body and two laminae
    rv = max(1.5, r * 0.07)
    cv.circle(sp, rv * 2.3, Tissue(0.6))
    for q in (sp + ant * rv, sp - ant * rv * 0.6 + left * rv * 1.3, sp - ant * rv * 0.6 - left * rv * 1.3):
        cv.circle(q, rv * 0.8, VERTEBRA, mask="spine")
    return c, ant, left, r


def draw_abdomen(cv: Canvas, p: dict) -> None:
    """Round abdomen with liver, stomach bubble, umbilical vein, spine and (when flagged) kidneys."""
    c, ant, left, r = _trunk(cv, p, "abdomen")
    if p["stomach"]:
        sc = c + left * r * 0.36 + ant * r * 0.08
        ang = math.degrees(math.atan2(ant[1], ant[0])) + 25
        cv.ellipse(sc, (r * 0.24 + 1, r * 0.15 + 1), ang, Tissue(1.4))
        cv.ellipse(sc, (r * 0.24, r * 0.15), ang, FLUID_T, mask="stomach")
    if p["uv"]:
        uc = c + ant * r * 0.32 - left * r * 0.05
        ang = math.degrees(math.atan2(left[1], left[0]))
        w = max(2.0, r * 0.08)
        cv.ellipse(uc, (r * 0.22, r * 0.12), ang, Tissue(1.6), thickness=w + 2, arc=(180, 330))
        cv.ellipse(uc, (r * 0.22, r * 0.12), ang, FLUID_T, mask="umbilical_vein", thickness=w, arc=(180, 330))
    if p["kidney"]:
        for s in (-1, 1):
            kc = c - ant * r * 0.45 + s * left * r * 0.36
            ang = math.degrees(math.atan2(ant[1], ant[0])) + s * 20
            cv.ellipse(kc, (r * 0.2, r * 0.13), ang, Tissue(0.35), mask="kidney")
            cv.ellipse(kc, (r * 0.08, r * 0.04), ang, Tissue(1.8))  # renal sinus


def draw_thorax(cv: Canvas, p: dict) -> None:
    """Thorax with lungs, spine, ribs and a four-chamber heart."""
    c, ant, left, r = _trunk(cv, p, None)
    hc = c + ant * r * 0.12 + left * r * 0.1
    ang = math.degrees(math.atan2(ant[1], ant[0])) + 40 * (1 if p["left"] >= 0 else -1)
    ha, hb = r * p["heart_a"], r * p["heart_b"]
    cv.ellipse(hc, (ha, hb), ang, Tissue(0.8), mask="heart")
    hu, hv = rot(ang)
    for su in (-1, 1):
        for sv in (-1, 1):
            cc = hc + hu * su * ha * 0.42 + hv * sv * hb * 0.42
            cv.ellipse(cc, (ha * 0.36, hb * 0.34), ang, Tissue(0.02))
    cv.circle(c - ant * r * 0.48 + left * r * 0.15, max(1.5, r * 0.06), FLUID_T)  # descending aorta


# --- femur ----------------------------------------------------------------------------------------


def draw_femur(cv: Canvas, p: dict) -> None:
    """Thigh soft tissue and the ossified femoral diaphysis with flared ends and cartilage caps."""
    c = np.array([p["cx"], p["cy"]])
    length, ang = p["length"], p["angle"]
    u, v = rot(ang)
    w = max(2.0, length * 0.09)
    cv.ellipse(c + v * length * 0.05, (length * 0.72, length * 0.3), ang + p["thigh_tilt"], Tissue(1.2))
    cv.ellipse(c + v * length * 0.05, (length * 0.7, length * 0.28), ang + p["thigh_tilt"], Tissue(0.75))
    for k in (-1, 1):  # muscle septa
        cv.line(c - u * length * 0.5 + v * k * length * 0.15, c + u * length * 0.5 + v * k * length * 0.13, 1,
                Tissue(1.4))
    e1, e2 = c - u * length / 2, c + u * length / 2
    for e, s in ((e1, -1), (e2, 1)):
        cv.ellipse(e + s * u * w * 1.1, (w * 1.1, w * 0.9), ang, Tissue(0.3))  # cartilage
    cv.bar(e1 + u * w * 0.5, e2 - u * w * 0.5, w, LONG_BONE, mask="femur")
    for e in (e1 + u * w * 0.5, e2 - u * w * 0.5):
        cv.ellipse(e, (w * 0.5, w * 0.65), ang, LONG_BONE, mask="femur")


# --- cervix and other -------------------------------------------------------------------------------


def draw_cervix(cv: Canvas, p: dict) -> None:
    """Maternal bladder (anechoic) and the cervix with its echogenic canal."""
    if p["bladder"]:
        bc = np.array([p["bx"], p["by"]])
        cv.ellipse(bc, (p["ba"] + 2, p["bb"] + 2), p["bangle"], Tissue(1.5))
        cv.ellipse(bc, (p["ba"], p["bb"]), p["bangle"], FLUID_T, mask="bladder")
    c = np.array([p["cx"], p["cy"]])
    u, v = rot(p["angle"])
    cv.ellipse(c, (p["ca"] + 1.5, p["cb"] + 1.5), p["angle"], Tissue(0.2))
    cv.ellipse(c, (p["ca"], p["cb"]), p["angle"], Tissue(1.6), mask="cervix")
    cv.ellipse(c, (p["ca"] * 0.85, p["cb"] * 0.35), p["angle"], Tissue(0.3))
    cv.line(c - u * p["ca"] * 0.85, c + u * p["ca"] * 0.85, 1, Tissue(2.2))


def draw_blobs(cv: Canvas, blobs: np.ndarray) -> None:
    """No standard structure: tissue blobs, cord loops and limb cross-sections in the fluid (rows of
    x, y, semi-axes, angle and kind in ``blobs``; the phantom's first "other" scenes)."""
    for k in range(len(blobs) // 6):
        x, y, ra, rb, ang, kind = blobs[6 * k : 6 * k + 6]
        if kind < 0.4:  # soft tissue (a limb or part of the trunk, cut off-plane)
            cv.ellipse((x, y), (ra, rb), ang, Tissue(0.6 + kind))
            if kind < 0.15:
                cv.circle((x, y), max(1.5, rb * 0.2), LONG_BONE)
        elif kind < 0.75:  # umbilical cord loop: vessels in cross-section
            cv.circle((x, y), rb * 0.6, Tissue(1.1))
            for s in (-1, 1):
                cv.circle((x + s * rb * 0.25, y), max(1.0, rb * 0.2), FLUID_T)
        else:  # a fluid-filled cut
            cv.ellipse((x, y), (ra, rb), ang, Tissue(0.9))
            cv.ellipse((x, y), (ra * 0.6, rb * 0.6), ang, FLUID_T)
