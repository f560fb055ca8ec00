"""The phantom dataset: samples rendered on the fly, deterministic per (seed, index, style, size).

Example:
    >>> ds = PhantomDataset(n=16, seed=1, style="clinic", size=128)
    >>> s = ds[3]
    >>> s.plane, s.image.shape, s.source
    ('abdomen', (128, 128), 'phantom')
"""

from __future__ import annotations

import numpy as np

from pcbm.concepts.ontology import PLANE_NAMES, VISUAL_CONCEPT_NAMES, get_plane
from pcbm.data.base import SampleDataset
from pcbm.data.phantom.others import OTHER_MODES, screen_image
from pcbm.data.phantom.render import Geometry, draw_screen, geometry, render
from pcbm.data.phantom.scene import breakable, draw_scene, sample_scene
from pcbm.data.phantom.styles import STYLE_IDS, STYLE_NAMES, TRAIN_STYLES, random_style
from pcbm.data.sample import Sample
from pcbm.errors import InputError

#: style name that draws each sample's style from the training styles
MIX = "mix"
#: style name that draws a new scanner for each sample (:func:`~pcbm.data.phantom.styles.random_style`)
RANDOM = "random"
_MIX_ID = 97
_RANDOM_ID = 98
#: plane groups accepted by ``planes=`` besides single plane names
PLANE_GROUPS = {"head": ("trans_thalamic", "trans_ventricular", "trans_cerebellar")}
_ATTEMPTS = 6


def _derive(masks: dict[str, np.ndarray], image: np.ndarray, spacing: float, fov: np.ndarray) -> dict:
    from pcbm.concepts.measure import derive_properties

    return derive_properties(masks, image=image, pixel_spacing_mm=spacing, field_of_view=fov)


def parse_planes(planes: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """Planes named by ``planes=`` ("+"-separated plane names or groups such as "head"); None = all.

    Raises:
        InputError: naming an unknown plane or group and the choices.
    """
    if planes is None or planes == "" or planes == "all":
        return PLANE_NAMES
    items = planes.split("+") if isinstance(planes, str) else list(planes)
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        group = PLANE_GROUPS.get(item, (item,))
        for p in group:
            if p not in PLANE_NAMES:
                raise InputError(f"unknown plane {item!r} in planes={planes!r}; choose from "
                                 f"{', '.join((*PLANE_NAMES, *PLANE_GROUPS))}, joined by '+'")
            if p not in out:
                out.append(p)
    return tuple(out)


def plan(seed: int, index: int, standard_fraction: float, rng: np.random.Generator,
         planes: tuple[str, ...] = PLANE_NAMES) -> tuple[str, str | None]:
    """(plane, broken criterion or None) of sample ``index``: planes cycle, standardness is drawn."""
    plane = planes[index % len(planes)]
    if plane == "other" or rng.random() < standard_fraction:
        return plane, None
    options = breakable(plane)
    return plane, str(options[int(rng.integers(len(options)))])


_GAIN_TOLERANCE = {"mean": 1.0, "saturated": 0.04}


def _render_at_gain_target(layers: np.ndarray, geom: Geometry, rng: np.random.Generator, depth_mm: float,
                           params: dict, noise: np.ndarray | None) -> tuple[float, np.ndarray]:
    """Render a gain-broken scene at the gain whose image hits ``params["gain_target"]``.

    The target is a field-of-view mean (too dark: a few grey levels, yet bone and the brightest
    echoes still show) or a saturated fraction (too bright: tissue washed out, fluid still dark),
    both well clear of :mod:`pcbm.concepts.measure`'s gain thresholds. The gain is found by
    bisection over re-renders of the same speckle, so the anatomy is as visible as that gain allows
    and no more. Returns (gain_db, image).
    """
    from pcbm.concepts.measure import image_gain

    kind, target = params["gain_target"]
    dr = geom.style.dynamic_range_db
    lo, hi = (-0.8 * dr, 0.0) if kind == "mean" else (0.0, 1.2 * dr)
    seed = int(rng.integers(2**63))
    gain, img = float(params["gain_db"]), None
    for _ in range(8):
        img = render(layers, geom, np.random.default_rng(seed), depth_mm=depth_mm, gain_db=gain, noise=noise)
        g = image_gain(img, geom.fov)
        value = g.mean if kind == "mean" else g.saturated_fraction
        if abs(value - target) <= _GAIN_TOLERANCE[kind]:
            break
        if value > target:
            hi = gain
        else:
            lo = gain
        gain = 0.5 * (lo + hi)
    return gain, img


def render_scene(params: dict, geom: Geometry, rng: np.random.Generator,
                 noise: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Draw and render one scene; returns (image, masks, measured properties)."""
    cv = draw_scene(params, geom)
    spacing = cv.spacing_mm
    if "gain_target" in params:
        params["gain_db"], img = _render_at_gain_target(cv.layers, geom, rng, spacing * geom.depth_px, params, noise)
    else:
        img = render(cv.layers, geom, rng, depth_mm=spacing * geom.depth_px, gain_db=params["gain_db"], noise=noise)
    ga = params["ga"]
    lines = (geom.style.header, f"GA {int(ga)}w{int((ga % 1) * 7)}d  D {spacing * geom.depth_px / 10:.1f}cm  G{50 + params['gain_db']:.0f}")
    if params.get("kind") == "screen":  # a menu or worksheet on the screen instead of a scan
        screen_image(img, params)
    else:
        draw_screen(img, geom, spacing, lines)
    bool_masks = cv.masks.view(bool)
    masks = {name: bool_masks[i] for i, name in enumerate(VISUAL_CONCEPT_NAMES)}
    return img, masks, _derive(masks, img, spacing, geom.fov)


def make_sample(seed: int, index: int, style: str = "default", size: int = 256, standard_fraction: float = 0.5,
                plane: str | None = None, broken: str | None = None,
                planes: tuple[str, ...] = PLANE_NAMES, other: str = "rich") -> Sample:
    """Render sample ``index`` of the phantom (or a given plane / broken criterion, for tests and figures).

    ``other`` chooses what "other" scenes are (``rich`` or the old ``blobs``); the other planes'
    scenes are the same either way.

    The scene is re-drawn (up to a few times, from the same seeded stream) until the measured
    properties agree with what it intended, so the ground truth is honest; the rare leftover
    disagreement is named in ``meta["mismatch"]``.
    """
    style_id = {MIX: _MIX_ID, RANDOM: _RANDOM_ID}.get(style) or STYLE_IDS[style]
    key = [int(seed), int(index), style_id, int(size)]
    if tuple(planes) != PLANE_NAMES:  # a plane subset is its own stream; the full set keeps the old one
        key.append(sum((PLANE_NAMES.index(p) + 1) << (4 * i) for i, p in enumerate(planes)))
    rng = np.random.default_rng(key)
    if plane is None:
        plane, broken = plan(seed, index, standard_fraction, rng, tuple(planes))
    if style == RANDOM:
        preset = random_style(rng)
        name, geom = RANDOM, geometry(preset, int(size))
    else:
        name = str(TRAIN_STYLES[int(rng.integers(len(TRAIN_STYLES)))]) if style == MIX else style
        geom = geometry(name, int(size))
    mismatch: list[str] = []
    for _ in range(_ATTEMPTS):
        params = sample_scene(plane, broken, geom, rng, other)
        img, masks, props = render_scene(params, geom, rng)
        mismatch = [k for k, v in params["intended"].items() if props.get(k) != v]
        if not mismatch:
            break
    standard, _ = get_plane(plane).check(props)
    meta = {"style": name, "broken": broken, "gestational_age_weeks": round(params["ga"], 2),
            "intended": params["intended"]}
    if plane == "other":
        meta["other_kind"] = params["kind"]
    if mismatch:
        meta["mismatch"] = mismatch
    return Sample(
        image=img, pixel_spacing_mm=float(params["spacing_mm"]), masks=masks, properties=props, plane=plane,
        standard=bool(standard), id=f"phantom-{seed}-{index}", subject=f"phantom-{seed}-{index}", source="phantom",
        field_of_view=geom.fov.copy(), meta=meta,
    )


class PhantomDataset(SampleDataset):
    """Procedural B-mode phantom: ``n`` samples rendered on the fly (no disk).

    Args:
        n: number of samples.
        seed: dataset seed; (seed, index, style, size) fixes a sample.
        style: a scanner style name, "mix" (each sample one of the training styles) or "random"
            (each sample a new scanner, see :func:`~pcbm.data.phantom.styles.random_style`).
        size: image side in pixels.
        standard_fraction: fraction of standard scenes among the known planes.
        planes: only these planes, cycled ("+"-separated names or groups, e.g. "head" or
            "abdomen+femur"); default all.
        other: what "other" scenes are: ``rich`` (vessels, maternal organs, placenta, limbs, spine,
            profile, kidney, probe in air, text screens) or ``blobs`` (the tissue blobs of the
            phantom's first version, to reproduce older figures).
    """

    name = "phantom"

    def __init__(self, n: int = 1000, seed: int = 0, style: str = "default", size: int = 256,
                 standard_fraction: float = 0.5, planes: str | tuple[str, ...] | None = None, other: str = "rich"):
        if style not in (MIX, RANDOM) and style not in STYLE_NAMES:
            raise InputError(f"unknown phantom style {style!r}; choose one of {', '.join((*STYLE_NAMES, MIX, RANDOM))}")
        if int(n) < 1 or int(size) < 32:
            raise InputError(f"phantom needs n >= 1 and size >= 32, got n={n}, size={size}")
        if not 0.0 <= float(standard_fraction) <= 1.0:
            raise InputError(f"standard_fraction must be in [0, 1], got {standard_fraction}")
        self.n, self.seed, self.style, self.size = int(n), int(seed), style, int(size)
        self.standard_fraction = float(standard_fraction)
        self.planes = parse_planes(planes)
        if other not in OTHER_MODES:
            raise InputError(f"unknown phantom option other={other!r}; choose one of {', '.join(OTHER_MODES)}")
        self.other = other

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not -self.n <= index < self.n:
            raise IndexError(f"phantom index {index} out of range for n={self.n}")
        index %= self.n
        return make_sample(self.seed, index, self.style, self.size, self.standard_fraction, planes=self.planes,
                           other=self.other)

    def subject_of(self, index: int) -> str:
        return f"phantom-{self.seed}-{index}"
