"""What real "other" frames are: the scenes a sonographer passes through between standard planes.

FETAL_PLANES_DB's and SonoNet's "other" frames are vessels, maternal organs, placenta, limbs,
the spine in long section, the facial profile, kidneys, the probe in air and screens of text — not
the tissue blobs the phantom drew before (kept as kind ``blobs``). Each kind is a sampler (all
randomness drawn into a flat dict, sizes in pixels) and a drawer on the scene's
:class:`~pcbm.data.phantom.canvas.Canvas`. Structures that are visual concepts keep their masks
(the spine's vertebrae, a kidney), so the decision must learn that a spine or a kidney alone is not
a plane. Textured regions (parenchyma, placenta) are drawn as many small patches of varying
echogenicity, so they do not read as flat shapes.

Example:
    >>> import numpy as np
    >>> from pcbm.data.phantom.render import geometry
    >>> g = geometry("default", 128)
    >>> p = sample_other(g, np.random.default_rng(0), kind="spine")
    >>> p["kind"], p["intended"]
    ('spine', {})
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from pcbm.data.phantom.canvas import BRIGHT, FLUID_T, LONG_BONE, PLACENTA, SOFT, VERTEBRA, Canvas, Tissue, rot
from pcbm.data.phantom.render import Geometry

#: kinds of "other" scene, with their share of the draws (``other=rich``)
KINDS: dict[str, float] = {
    "blobs": 0.12, "vessel": 0.12, "organ": 0.12, "placenta": 0.1, "limb": 0.12, "spine": 0.1, "profile": 0.1,
    "kidney": 0.08, "air": 0.07, "screen": 0.07,
}
#: kinds drawn on an empty screen (no maternal wall or amniotic fluid behind them)
BARE = ("air", "screen")
#: ``other=`` option of the phantom: ``rich`` draws every kind above, ``blobs`` the old scenes only
OTHER_MODES = ("rich", "blobs")


def _in_sector(geom: Geometry, rng: np.random.Generator, lo: float = 0.25, hi: float = 0.8) -> tuple[float, float]:
    s = geom.size
    return float(rng.uniform(0.3, 0.7) * s), float(geom.header_px + rng.uniform(lo, hi) * geom.depth_px)


def _path(rng: np.random.Generator, c: tuple[float, float], length: float, angle: float, n: int = 5,
          bend: float = 0.25) -> np.ndarray:
    """(n, 2) points of a gently curving path of ``length`` px through ``c``."""
    u, v = rot(angle)
    t = np.linspace(-0.5, 0.5, n)
    wiggle = np.cumsum(rng.normal(0, bend, n))
    wiggle -= wiggle.mean()
    return np.asarray(c) + length * (t[:, None] * u + 0.25 * wiggle[:, None] * v)


def _patches(rng: np.random.Generator, c: tuple[float, float], axes: tuple[float, float], angle: float, n: int,
             echo: float, spread: float) -> np.ndarray:
    """Texture patches inside an ellipse: rows of (x, y, radius, echo)."""
    u, v = rot(angle)
    r = np.sqrt(rng.uniform(0, 1, n))
    th = rng.uniform(0, 2 * math.pi, n)
    xy = np.asarray(c) + (r * np.cos(th))[:, None] * axes[0] * u + (r * np.sin(th))[:, None] * axes[1] * v
    rad = rng.uniform(0.04, 0.12, n) * min(axes)
    e = echo * np.exp(rng.normal(0, spread, n))
    return np.column_stack([xy, rad, e])


def _sample_blobs(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    blobs = []
    for _ in range(int(rng.integers(1, 6))):
        rb = rng.uniform(0.04, 0.14) * s
        blobs += [rng.uniform(0.15, 0.85) * s, geom.header_px + rng.uniform(0.25, 0.9) * geom.depth_px,
                  rb * rng.uniform(1.0, 2.5), rb, rng.uniform(0, 180), rng.random()]
    return {"blobs": np.array(blobs)}


def _sample_vessel(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    k = int(rng.integers(1, 4))
    paths = [_path(rng, _in_sector(geom, rng), s * rng.uniform(0.6, 1.1), rng.uniform(-30, 30), bend=0.15)
             for _ in range(k)]
    return {"paths": np.stack(paths), "widths": rng.uniform(0.025, 0.08, k) * s, "tissue": float(rng.uniform(0.7, 1.2)),
            "texture": _patches(rng, (s / 2, geom.header_px + geom.depth_px / 2), (s / 2, geom.depth_px / 2), 0, 60,
                                1.0, 0.35)}


def _sample_organ(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    c = _in_sector(geom, rng, 0.4, 0.65)
    axes = (float(rng.uniform(0.3, 0.5) * s), float(rng.uniform(0.2, 0.35) * s))
    ang = float(rng.uniform(-40, 40))
    echo = float(rng.uniform(0.45, 0.9))
    return {"c": np.array(c), "axes": np.array(axes), "angle": ang, "echo": echo, "tissue": float(rng.uniform(0.8, 1.2)),
            "texture": _patches(rng, c, axes, ang, 90, echo, 0.3),
            "vessels": _patches(rng, c, (axes[0] * 0.8, axes[1] * 0.8), ang, int(rng.integers(3, 10)), 0.0, 0.0)}


def _sample_placenta(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    y = geom.header_px + rng.uniform(0.2, 0.55) * geom.depth_px
    thick = rng.uniform(0.15, 0.35) * geom.depth_px
    ang = float(rng.uniform(-25, 25))
    c = (s / 2 + rng.uniform(-0.1, 0.1) * s, y + thick / 2)
    return {"c": np.array(c), "axes": np.array([s * 0.9, thick / 2]), "angle": ang,
            "texture": _patches(rng, c, (s * 0.8, thick / 2), ang, 120, 1.4, 0.35),
            "lakes": _patches(rng, c, (s * 0.6, thick * 0.35), ang, int(rng.integers(2, 7)), 0.0, 0.0)}


def _sample_limb(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    c = _in_sector(geom, rng, 0.3, 0.7)
    length = float(rng.uniform(0.35, 0.6) * s)
    return {"c": np.array(c), "length": length, "angle": float(rng.uniform(-60, 60)),
            "bones": int(rng.choice([2, 2, 5])),  # forearm / lower leg, or a hand's fingers
            "gap": float(rng.uniform(0.05, 0.09) * s), "width": float(rng.uniform(0.012, 0.025) * s),
            "soft": float(rng.uniform(0.9, 1.3))}


def _sample_spine(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    c = _in_sector(geom, rng, 0.35, 0.65)
    return {"path": _path(rng, c, s * rng.uniform(0.7, 1.0), rng.uniform(-20, 20), n=14, bend=0.05),
            "gap": float(rng.uniform(0.04, 0.07) * s), "dot": float(rng.uniform(0.012, 0.02) * s),
            "taper": float(rng.uniform(0.3, 0.7)), "coronal": bool(rng.random() < 0.4)}


def _sample_profile(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    c = _in_sector(geom, rng, 0.35, 0.6)
    return {"c": np.array(c), "r": float(rng.uniform(0.18, 0.3) * s), "angle": float(rng.uniform(-30, 30)),
            "facing": float(rng.choice([-1.0, 1.0])), "bumps": rng.uniform(0.7, 1.3, 4)}


def _sample_kidney(geom: Geometry, rng: np.random.Generator) -> dict:
    s = geom.size
    c = _in_sector(geom, rng, 0.35, 0.65)
    return {"c": np.array(c), "axes": np.array([rng.uniform(0.12, 0.22) * s, rng.uniform(0.06, 0.1) * s]),
            "angle": float(rng.uniform(-45, 45)), "tissue": float(rng.uniform(0.8, 1.1)),
            "texture": _patches(rng, (s / 2, geom.header_px + geom.depth_px / 2), (s / 2, geom.depth_px / 2), 0, 50,
                                1.0, 0.3)}


def _sample_air(geom: Geometry, rng: np.random.Generator) -> dict:
    return {"apex": np.array(geom.apex, float), "r0": float(geom.r0), "step": float(rng.uniform(0.04, 0.09) * geom.depth_px),
            "n": int(rng.integers(3, 8)), "echo": float(rng.uniform(1.0, 2.5))}


def _sample_screen(geom: Geometry, rng: np.random.Generator) -> dict:
    return {"lines": int(rng.integers(6, 16)), "boxes": int(rng.integers(0, 4)), "text_seed": int(rng.integers(1 << 30)),
            "grey": float(rng.uniform(140, 255))}


_SAMPLERS: dict[str, Callable[[Geometry, np.random.Generator], dict]] = {
    "blobs": _sample_blobs, "vessel": _sample_vessel, "organ": _sample_organ, "placenta": _sample_placenta,
    "limb": _sample_limb, "spine": _sample_spine, "profile": _sample_profile, "kidney": _sample_kidney,
    "air": _sample_air, "screen": _sample_screen,
}


def sample_other(geom: Geometry, rng: np.random.Generator, mode: str = "rich", kind: str | None = None) -> dict:
    """Parameters of one "other" scene: ``kind`` if given, else drawn by :data:`KINDS` (``mode="rich"``)
    or the old blobs (``mode="blobs"``, the same random stream as before this module existed)."""
    if kind is None:
        if mode == "blobs":
            kind = "blobs"
        else:
            names = list(KINDS)
            w = np.array([KINDS[n] for n in names])
            kind = names[int(rng.choice(len(names), p=w / w.sum()))]
    p = _SAMPLERS[kind](geom, rng)
    p["kind"] = kind
    p["intended"] = {}
    return p


# --- drawing ----------------------------------------------------------------------------------------


def _draw_patches(cv: Canvas, rows: np.ndarray, t: Callable[[float], Tissue]) -> None:
    for x, y, r, e in rows:
        cv.circle((x, y), max(1.0, r), t(e))


def _draw_blobs(cv: Canvas, p: dict) -> None:
    from pcbm.data.phantom.anatomy import draw_blobs

    draw_blobs(cv, p["blobs"])


def _tissue_field(cv: Canvas, p: dict) -> None:
    """The whole view in soft tissue with a patchy texture (adult or maternal scans have no fluid around)."""
    cv.layers[:] = Tissue(p["tissue"])
    _draw_patches(cv, p["texture"], lambda e: Tissue(p["tissue"] * e))


def _draw_vessel(cv: Canvas, p: dict) -> None:
    _tissue_field(cv, p)
    for path, w in zip(p["paths"], p["widths"], strict=True):
        for a, b in zip(path[:-1], path[1:], strict=True):
            cv.line(a, b, w + max(2.0, w * 0.3), BRIGHT)
        for a, b in zip(path[:-1], path[1:], strict=True):
            cv.line(a, b, w, FLUID_T)


def _draw_organ(cv: Canvas, p: dict) -> None:
    _tissue_field(cv, p)
    c, ax, ang = p["c"], p["axes"], p["angle"]
    cv.ellipse(c, ax + 2, ang, BRIGHT)  # capsule
    cv.ellipse(c, ax, ang, Tissue(p["echo"]))
    _draw_patches(cv, p["texture"], lambda e: Tissue(e))
    _draw_patches(cv, p["vessels"], lambda e: FLUID_T)


def _draw_placenta(cv: Canvas, p: dict) -> None:
    c, ax, ang = p["c"], p["axes"], p["angle"]
    cv.ellipse(c, ax, ang, PLACENTA)
    _draw_patches(cv, p["texture"], lambda e: Tissue(e))
    _draw_patches(cv, p["lakes"], lambda e: FLUID_T)
    u, v = rot(ang)
    base = np.asarray(c) + v * ax[1]
    cv.line(base - u * ax[0], base + u * ax[0], 2, BRIGHT)  # basal plate


def _draw_limb(cv: Canvas, p: dict) -> None:
    c, L, ang = np.asarray(p["c"]), p["length"], p["angle"]
    u, v = rot(ang)
    k = p["bones"]
    cv.ellipse(c, (L * 0.62, p["gap"] * (k + 1) * 0.6 + p["width"] * 3), ang, Tissue(p["soft"]))
    for i in range(k):
        off = (i - (k - 1) / 2) * p["gap"] * (0.6 if k > 2 else 1.0)
        if k > 2:  # fingers fan out from the palm
            d = rot(ang + (i - (k - 1) / 2) * 9)[0]
            a = c - u * L * 0.15 + v * off
            cv.bar(a, a + d * L * 0.45, p["width"], LONG_BONE)
        else:
            a = c + v * off
            cv.bar(a - u * L * 0.45, a + u * L * 0.45 * (0.9 if i else 1.0), p["width"], LONG_BONE)


def _draw_spine(cv: Canvas, p: dict) -> None:
    path = p["path"]
    d = path[-1] - path[0]
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
    cv.poly(np.concatenate([path + n * p["gap"] * 1.6, (path - n * p["gap"] * 1.6)[::-1]]), SOFT)  # the back
    for i, q in enumerate(path):
        half = p["gap"] * (1 - p["taper"] * i / (len(path) - 1)) / 2  # the rows converge toward the sacrum
        rows = (-half, half) if p["coronal"] else (-half, half * 0.4)
        for off in rows:
            cv.circle(q + n * off, p["dot"], VERTEBRA, mask="spine")


def _draw_profile(cv: Canvas, p: dict) -> None:
    c, r, ang, f = np.asarray(p["c"]), p["r"], p["angle"], p["facing"]
    u, v = rot(ang)
    cv.circle(c, r, Tissue(0.9))  # the head, cut off-axis
    b = p["bumps"]
    # forehead → nasal bridge → nose tip → upper lip → lower lip → chin, along the face side
    prof = [(-1.0, 0.95), (-0.35, 1.0 * b[0]), (-0.1, 1.25 * b[1]), (0.2, 1.05), (0.38, 1.12 * b[2]),
            (0.55, 1.02), (0.72, 1.1 * b[3]), (1.0, 0.8)]
    pts = np.array([c + u * r * a + v * f * r * h for a, h in prof])
    cv.poly(np.concatenate([pts, [c + u * r, c - u * r]]), Tissue(0.9))
    for a, b2 in zip(pts[:-1], pts[1:], strict=True):
        cv.line(a, b2, max(1.5, r * 0.04), BRIGHT)  # skin line
    cv.bar(pts[1] - v * f * r * 0.1, pts[2] - v * f * r * 0.12, max(1.5, r * 0.05), LONG_BONE)  # nasal bone


def _draw_kidney(cv: Canvas, p: dict) -> None:
    _tissue_field(cv, p)
    c, ax, ang = p["c"], p["axes"], p["angle"]
    cv.ellipse(c, ax + 1.5, ang, BRIGHT)
    cv.ellipse(c, ax, ang, Tissue(0.45), mask="kidney")  # cortex
    cv.ellipse(c, ax * np.array([0.6, 0.4]), ang, Tissue(0.15))  # pyramids / pelvis
    cv.ellipse(c, ax * np.array([0.55, 0.18]), ang, BRIGHT)  # central sinus echo


def _draw_air(cv: Canvas, p: dict) -> None:
    a, r0 = p["apex"], p["r0"]
    for k in range(p["n"]):  # reverberation of the probe face, fading with depth
        cv.circle(a, r0 + (k + 1) * p["step"], Tissue(p["echo"] * 0.7 ** k), thickness=max(1.0, p["step"] * 0.25))


def _draw_screen(cv: Canvas, p: dict) -> None:
    """Nothing to scan: :func:`screen_image` draws the text after rendering."""


_DRAWERS: dict[str, Callable[[Canvas, dict], None]] = {
    "blobs": _draw_blobs, "vessel": _draw_vessel, "organ": _draw_organ, "placenta": _draw_placenta,
    "limb": _draw_limb, "spine": _draw_spine, "profile": _draw_profile, "kidney": _draw_kidney,
    "air": _draw_air, "screen": _draw_screen,
}


def draw_other(cv: Canvas, p: dict) -> None:
    """Draw an "other" scene of any kind (scenes from before this module are blobs)."""
    _DRAWERS[p.get("kind", "blobs")](cv, p)


_WORDS = ("PATIENT", "EXAM", "OB", "2ND TRIM", "MEASURE", "REPORT", "BPD", "HC", "AC", "FL", "EFW", "GA", "mm",
          "PRESET", "PROBE", "C1-5", "FREQ", "MHz", "DEPTH", "GAIN", "TGC", "SAVE", "ARCHIVE", "PRINT", "CINE", "END")


def screen_image(img: np.ndarray, p: dict) -> None:
    """A screen of text in place of the scan (a menu, a worksheet): text lines and boxes on black."""
    rng = np.random.default_rng(p["text_seed"])
    h, w = img.shape
    img[:] = 0
    scale = w / 700
    y = int(h * 0.08)
    for _ in range(p["lines"]):
        x = int(rng.uniform(0.02, 0.3) * w)
        words = " ".join(str(rng.choice(_WORDS)) + (f" {rng.uniform(1, 400):.1f}" if rng.random() < 0.4 else "")
                         for _ in range(int(rng.integers(1, 5))))
        cv2.putText(img, words, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, int(p["grey"] * rng.uniform(0.6, 1)), 1)
        y += int(h / (p["lines"] + 2))
    for _ in range(p["boxes"]):
        x0, y0 = int(rng.uniform(0.05, 0.6) * w), int(rng.uniform(0.1, 0.7) * h)
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.uniform(0.15, 0.35) * w), y0 + int(rng.uniform(0.08, 0.2) * h)),
                      int(p["grey"] * 0.7), 1)
