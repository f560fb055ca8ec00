"""B-mode rendering: polar grid, Rayleigh speckle, point-spread blur, shadows, log compression, scan conversion.

The scene is drawn in image (Cartesian) coordinates as three layers — echogenicity, bone and
attenuation per mm — and sampled onto the probe's polar grid (depth × beam). There the image is
formed as a scanner would: scatterers (a complex Gaussian field weighted by the echogenicity) are
blurred by a point-spread function short along the beam and wider across it, the envelope is
taken, bone reflects specularly where the beam meets it head-on and shadows everything behind
it, depth attenuation and gain apply, and the result is log-compressed to the display's dynamic
range. Scan conversion back to the curvilinear sector (``cv2.remap``) widens the lateral speckle
with depth for free. Remap grids are cached per (named style, size).

Example:
    >>> import numpy as np
    >>> g = geometry("default", 128)
    >>> layers = np.zeros((128, 128, 3), np.float32); layers[..., 0] = 1.0
    >>> img = render(layers, g, np.random.default_rng(0), depth_mm=100.0)
    >>> img.shape, img.dtype, bool(img[~g.fov].max() == 0 or True)
    ((128, 128), dtype('uint8'), True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from pcbm.data.phantom.styles import ScannerStyle, get_style

# echogenicity in units of mid-grey soft tissue (= 1.0)
FLUID = 0.004
BRAIN = 0.22
TISSUE = 1.0
BONE = 60.0  # bright specular bone (scaled by the incidence angle)


@dataclass(frozen=True)
class Geometry:
    """Sector geometry of one (style, size): the polar grid and the remap tables."""

    style: ScannerStyle
    size: int
    apex: tuple[float, float]  # (x, y) of the virtual apex, image px (y may be negative)
    r0: float  # radius of the skin line, px
    depth_px: float  # radial extent of the sector, px
    half_angle: float  # radians
    nd: int  # depth samples of the polar grid
    nb: int  # beams of the polar grid
    header_px: int  # height of the text band at the top
    to_polar: tuple[np.ndarray, np.ndarray]  # remap tables: polar grid -> image coordinates
    to_image: tuple[np.ndarray, np.ndarray]  # remap tables: image -> polar grid coordinates
    fov: np.ndarray  # bool (size, size), True inside the sector
    depth_frac: np.ndarray  # float32 (nd, 1): depth of each sample, 0 at the skin, 1 at the bottom

    def polar_of(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(radius px, angle rad) of image points; angle 0 points straight down."""
        dx, dy = np.asarray(x, float) - self.apex[0], np.asarray(y, float) - self.apex[1]
        return np.hypot(dx, dy), np.arctan2(dx, dy)

    def inside(self, x: np.ndarray | float, y: np.ndarray | float, margin_px: float = 0.0) -> np.ndarray:
        """Whether image points lie inside the sector (and the image), at least ``margin_px`` from its edge."""
        r, a = self.polar_of(x, y)
        x, y = np.asarray(x, float), np.asarray(y, float)
        ok = (r >= self.r0 + margin_px) & (r <= self.r0 + self.depth_px - margin_px)
        ok &= np.abs(a) * r <= self.half_angle * r - margin_px
        ok &= (x >= margin_px) & (x <= self.size - 1 - margin_px) & (y >= margin_px) & (y <= self.size - 1 - margin_px)
        return ok


def geometry(style: str | ScannerStyle, size: int) -> Geometry:
    """The sector geometry and remap tables of a style (name or preset) at an image size.

    Named styles are cached; a one-off preset (:func:`~pcbm.data.phantom.styles.random_style`, a
    new one per scene) is built each time, so it never evicts the named styles' tables.
    """
    if isinstance(style, ScannerStyle):
        return _build_geometry(style, int(size))
    return _named_geometry(style, int(size))


@functools.lru_cache(maxsize=32)
def _named_geometry(style: str, size: int) -> Geometry:
    return _build_geometry(get_style(style), size)


def _build_geometry(st: ScannerStyle, size: int) -> Geometry:
    s = int(size)
    header = max(6, round(0.075 * s))
    r0 = st.apex_frac * s
    depth_px = s - header - max(2, round(0.01 * s))
    half = math.radians(st.sector_deg) / 2
    apex = (s / 2 - 0.5, header - r0)
    nd = max(16, round(st.samples_per_px * depth_px))
    nb = max(16, round(st.beams_per_px * 2 * half * (r0 + depth_px / 2)))
    # polar grid -> image coordinates (to sample the scene onto the polar grid)
    r = r0 + depth_px * np.arange(nd, dtype=np.float32)[:, None] / (nd - 1)
    a = -half + 2 * half * np.arange(nb, dtype=np.float32)[None, :] / (nb - 1)
    px = (apex[0] + r * np.sin(a)).astype(np.float32)
    py = (apex[1] + r * np.cos(a)).astype(np.float32)
    to_polar = cv2.convertMaps(px, py, cv2.CV_16SC2)
    # image -> polar coordinates (scan conversion)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    rr = np.hypot(xx - apex[0], yy - apex[1])
    aa = np.arctan2(xx - apex[0], yy - apex[1])
    mi = ((rr - r0) / depth_px * (nd - 1)).astype(np.float32)
    mj = ((aa + half) / (2 * half) * (nb - 1)).astype(np.float32)
    fov = (mi >= 0) & (mi <= nd - 1) & (mj >= 0) & (mj <= nb - 1)
    mi[~fov], mj[~fov] = -10.0, -10.0  # sample the constant border: black outside the sector
    to_image = cv2.convertMaps(mj, mi, cv2.CV_16SC2)
    depth_frac = (np.arange(nd, dtype=np.float32) / (nd - 1))[:, None]
    for arr in (fov, depth_frac, *to_polar, *to_image):
        arr.setflags(write=False)
    return Geometry(st, s, apex, r0, depth_px, half, nd, nb, header, to_polar, to_image, fov, depth_frac)


def render(
    layers: np.ndarray,
    geom: Geometry,
    rng: np.random.Generator,
    depth_mm: float,
    gain_db: float = 0.0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Form the B-mode image of a scene.

    Args:
        layers: float32 (size, size, 3): echogenicity, bone (0..1) and attenuation per mm.
        geom: the sector geometry from :func:`geometry`.
        rng: random generator for the speckle and tissue texture.
        depth_mm: depth shown by the sector (sets the attenuation per polar sample).
        gain_db: gain added to the style's own (negative = darker).
        noise: optional complex scatterer field (nd, nb, 2) to reuse (sweeps, for coherent speckle).

    Returns:
        uint8 (size, size) image, black outside the sector (no screen text yet).
    """
    st = geom.style
    nd, nb = geom.nd, geom.nb
    pol = cv2.remap(layers, *geom.to_polar, cv2.INTER_LINEAR)  # (nd, nb, 3)
    echo, bone, att = pol[..., 0], pol[..., 1], pol[..., 2]
    # coarse tissue heterogeneity (multiplicative, log-normal)
    coarse = rng.standard_normal((6, 5), dtype=np.float32)
    tex = cv2.resize(coarse, (nb, nd), interpolation=cv2.INTER_CUBIC)
    echo = echo * np.exp(st.texture * tex)
    # specular bone: bright where the beam meets the bone surface head-on
    if bone.any():
        b = cv2.GaussianBlur(bone, (0, 0), 1.0)
        gi = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3)
        gj = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3) * (nd / geom.depth_px) / (nb / (2 * geom.half_angle * (geom.r0 + geom.depth_px / 2)))
        spec = gi * gi / (gi * gi + 0.6 * gj * gj + 1e-4)
        echo = echo + BONE * bone * (0.04 + 0.96 * spec * spec)
    # scatterers: complex Gaussian weighted by the amplitude, blurred by the PSF, envelope
    if noise is None:
        noise = rng.standard_normal((nd, nb, 2), dtype=np.float32)
    z = noise * np.sqrt(echo)[..., None]
    z = cv2.GaussianBlur(z, (0, 0), sigmaX=st.psf_lateral, sigmaY=st.psf_axial)
    inten = z[..., 0] ** 2 + z[..., 1] ** 2
    inten *= 2 * math.pi * st.psf_lateral * st.psf_axial  # mean intensity = echogenicity after the blur
    inten = cv2.GaussianBlur(inten, (0, 0), sigmaX=0.7, sigmaY=0.5)  # the scanner's speckle reduction
    # acoustic shadow: transmission through everything above, per beam
    mm_per_sample = depth_mm / nd
    shadow = np.cumsum(att, axis=0) * mm_per_sample
    trans = np.exp(-shadow)
    # depth attenuation (after TGC) and near-field haze
    df = geom.depth_frac
    gain_curve = np.power(10.0, (-st.attenuation_db * df + gain_db + st.gain_db) / 10.0).astype(np.float32)
    haze = (st.haze * np.exp(-df / 0.06)).astype(np.float32)
    inten = inten * trans * gain_curve + haze * gain_curve + 1e-4
    # log compression to the dynamic range: tissue (0 dB) sits at ~40% of the display
    dr = st.dynamic_range_db
    top = 0.6 * dr
    db = 10.0 * np.log10(inten)
    pol8 = np.clip((db - (top - dr)) * (255.0 / dr), 0, 255).astype(np.uint8)
    return cv2.remap(pol8, *geom.to_image, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def draw_screen(img: np.ndarray, geom: Geometry, spacing_mm: float, lines: tuple[str, str]) -> None:
    """Add the scanner's screen furniture in place: header text, depth marks and a grey bar (outside the sector)."""
    s = geom.size
    sector = img.copy()
    scale = s / 900
    thick = 1
    cv2.putText(img, lines[0], (3, max(5, round(geom.header_px * 0.45))), cv2.FONT_HERSHEY_SIMPLEX, scale, 200, thick)
    cv2.putText(img, lines[1], (3, max(8, round(geom.header_px * 0.9))), cv2.FONT_HERSHEY_SIMPLEX, scale, 160, thick)
    x_bar = 1 if geom.style.scale_bar_left else s - 4
    y0 = geom.header_px + 2
    bar_h = max(8, s // 3)
    img[y0 : y0 + bar_h, x_bar : x_bar + 3] = np.linspace(255, 0, bar_h, dtype=np.float32).astype(np.uint8)[:, None]
    # depth marks every 10 mm on the side opposite the bar
    x_tick = s - 4 if geom.style.scale_bar_left else 1
    step = 10.0 / spacing_mm
    if step >= 3:
        ys = geom.header_px + np.arange(0, geom.depth_px, step)
        for k, y in enumerate(ys):
            w = 3 if k % 5 == 0 else 2
            img[int(y), x_tick : x_tick + w] = 220
    np.copyto(img, sector, where=geom.fov)
