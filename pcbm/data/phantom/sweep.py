"""Sweep mode: a video of the probe moving through the planes, from near-standard to standard views.

Each plane gets a segment: a few frames in transit (plane "other"), then the probe glides from an
oblique, off-centre, partly wrong view to the standard one (parameters interpolated smoothly;
structures appear half-way), then dwells on the standard view. The speckle stays coherent within
a segment, as on a real scanner. Every frame carries measured ground truth like any phantom sample.

Example:
    >>> frames = sweep(24, seed=0, size=96)
    >>> len(frames), frames[0].meta["segment"]
    (24, 0)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pcbm.concepts.ontology import get_plane
from pcbm.data.phantom.dataset import render_scene
from pcbm.data.phantom.render import Geometry, geometry
from pcbm.data.phantom.scene import sample_scene
from pcbm.data.phantom.styles import STYLE_IDS
from pcbm.data.sample import Sample
from pcbm.errors import InputError

SWEEP_PLANES = ("trans_ventricular", "trans_thalamic", "trans_cerebellar", "abdomen", "femur", "thorax", "cervix")
_TRANSIT, _APPROACH = 0.12, 0.58  # fractions of a segment: in transit, approaching; the rest dwells


def _start_from(end: dict, geom: Geometry, rng: np.random.Generator) -> dict:
    """A near-standard view leading to ``end``: moved, rotated, zoomed out, oblique, structures missing."""
    p = dict(end)
    s = geom.size
    p["cx"] = float(np.clip(end["cx"] + rng.uniform(-0.12, 0.12) * s, 0.2 * s, 0.8 * s))
    p["cy"] = float(np.clip(end["cy"] + rng.uniform(-0.08, 0.08) * s, geom.header_px + 0.3 * s, 0.8 * s))
    plane = end["plane"]
    if "a" in end:
        zoom = rng.uniform(0.6, 0.8)
        p["a"], p["b"], p["spacing_mm"] = end["a"] * zoom, end["b"] * zoom, end["spacing_mm"] / zoom
        p["angle"] = end["angle"] + rng.uniform(-20, 20)
    if plane in ("trans_thalamic", "trans_ventricular", "trans_cerebellar"):
        p["falx_offset"] = float(rng.choice([-1, 1]) * 0.28)
        p["falx_tilt"] = float(rng.choice([-1, 1]) * 25)
        p["csp"] = False
    elif plane == "abdomen":
        p["uv"], p["kidney"] = False, True
    elif plane == "femur":
        p["angle"] = float(np.sign(end["angle"] or 1) * 65)
        p["length"] = end["length"] * 0.7
        p["spacing_mm"] = end["spacing_mm"] / 0.7
    elif plane == "cervix":
        p["bladder"] = False
    return p


def _lerp(a: dict, b: dict, t: float) -> dict:
    """Interpolate two scene dicts: numbers and arrays linearly, anything else switches at t = 0.5."""
    out = {}
    for k, va in a.items():
        vb = b[k]
        if isinstance(va, bool) or not isinstance(va, float | int | np.ndarray):
            out[k] = va if t < 0.5 else vb
        else:
            out[k] = va + (vb - va) * t
    return out


def iter_sweep(n_frames: int = 240, seed: int = 0, style: str = "default", size: int = 256) -> Iterator[Sample]:
    """Yield the frames of a sweep (see :func:`sweep`)."""
    geom = geometry(style, int(size))
    rng = np.random.default_rng([int(seed), 7_000_003, STYLE_IDS[style], int(size)])
    bounds = np.linspace(0, n_frames, len(SWEEP_PLANES) + 1).round().astype(int)
    for k, plane in enumerate(SWEEP_PLANES):
        n = int(bounds[k + 1] - bounds[k])
        end = sample_scene(plane, None, geom, rng)
        start = _start_from(end, geom, rng)
        transit = sample_scene("other", None, geom, rng)
        seg_noise = rng.standard_normal((geom.nd, geom.nb, 2), dtype=np.float32)
        for i in range(n):
            t = i / max(n - 1, 1)
            if t < _TRANSIT:
                params, phase = transit, "transit"
            elif t < _TRANSIT + _APPROACH:
                x = (t - _TRANSIT) / _APPROACH
                params, phase = _lerp(start, end, x * x * (3 - 2 * x)), "approach"
            else:
                params, phase = end, "dwell"
            noise = 0.9 * seg_noise + 0.436 * rng.standard_normal(seg_noise.shape, dtype=np.float32)
            img, masks, props = render_scene(params, geom, rng, noise=noise)
            frame_plane = params["plane"]
            standard, failed = get_plane(frame_plane).check(props)
            index = int(bounds[k]) + i
            yield Sample(
                image=img, pixel_spacing_mm=float(params["spacing_mm"]), masks=masks, properties=props,
                plane=frame_plane, standard=bool(standard), id=f"sweep-{seed}-{index:05d}", subject=f"sweep-{seed}",
                source="phantom", field_of_view=geom.fov.copy(),
                meta={"style": style, "segment": k, "target_plane": plane, "phase": phase, "frame": index,
                      "broken": failed[0].property if failed and frame_plane != "other" else None,
                      "gestational_age_weeks": round(float(params["ga"]), 2)},
            )


def sweep(n_frames: int = 240, seed: int = 0, style: str = "default", size: int = 256) -> list[Sample]:
    """Render a sweep of ``n_frames`` frames through the seven known planes (plus transit frames).

    Args:
        n_frames: number of frames in all.
        seed: sweep seed (the same seed gives the same video).
        style: scanner style name.
        size: frame side in pixels.

    Returns:
        Samples in time order, each with masks, measured properties, plane and standard flag;
        ``meta`` names the segment, its target plane and phase (transit, approach, dwell).
    """
    if n_frames < 1:
        raise InputError(f"n_frames must be at least 1, got {n_frames}")
    if style not in STYLE_IDS:
        raise InputError(f"unknown style {style!r}; choose one of {', '.join(STYLE_IDS)}")
    return list(iter_sweep(n_frames, seed, style, size))
