"""Scanner styles: presets of speckle size, gain, dynamic range, depth and sector shape.

Each style stands for one make of scanner and probe. Training uses the ``TRAIN_STYLES``; the
``heldout`` style is kept back for domain-shift tests (a different speckle size, a wider sector,
a harsher dynamic range and a different screen layout). :func:`random_style` draws a new scanner
for every scene (domain randomisation): each setting uniform over the training styles' range,
widened by half that range on either side.

Example:
    >>> get_style("clinic").sector_deg
    70.0
    >>> "heldout" in STYLE_NAMES and "heldout" not in TRAIN_STYLES
    True
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from pcbm.errors import look_up


@dataclass(frozen=True)
class ScannerStyle:
    """Rendering preset of one (fictional) scanner."""

    name: str
    sector_deg: float  # full opening angle of the curvilinear sector
    apex_frac: float  # probe radius (distance from the virtual apex to the skin line) / image size
    beams_per_px: float  # polar beam count per image pixel (fewer beams = coarser lateral speckle)
    samples_per_px: float  # polar depth samples per image pixel
    psf_axial: float  # axial point-spread sigma, in polar samples
    psf_lateral: float  # lateral point-spread sigma, in beams
    gain_db: float  # overall gain added before log compression
    dynamic_range_db: float  # span of the displayed log-compressed range
    attenuation_db: float  # net brightness loss from the skin line to the deepest sample (after TGC)
    haze: float  # near-field clutter / reverberation strength
    texture: float  # strength of the coarse tissue heterogeneity
    header: str  # fake make/model printed in the screen text band
    scale_bar_left: bool = True  # grey scale bar on the left (else on the right)


_S = ScannerStyle
STYLES: dict[str, ScannerStyle] = {
    s.name: s
    for s in (
        _S("default", 70.0, 0.22, 0.55, 0.80, 1.0, 1.1, 0.0, 52.0, 6.0, 0.35, 0.35, "PCBM-US  C5-1  OB"),
        _S("clinic", 70.0, 0.30, 0.45, 0.75, 1.3, 1.4, 2.0, 48.0, 8.0, 0.25, 0.45, "ACME V8  AB2-7  OB/GYN"),
        _S("portable", 60.0, 0.15, 0.45, 0.65, 1.4, 1.4, 1.0, 46.0, 9.0, 0.45, 0.30, "PocketScan  C3  FETAL"),
        _S("highres", 76.0, 0.26, 0.70, 0.95, 0.8, 0.9, 1.0, 58.0, 5.0, 0.20, 0.40, "Lumen E10  C2-9  OB2"),
        _S("heldout", 90.0, 0.10, 0.42, 0.62, 1.5, 1.7, 5.0, 42.0, 10.0, 0.55, 0.55, "Heldout XR  HC-4  OB", False),
    )
}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)
TRAIN_STYLES: tuple[str, ...] = ("default", "clinic", "portable", "highres")
STYLE_IDS: dict[str, int] = {name: i for i, name in enumerate(STYLE_NAMES)}


def get_style(name: str) -> ScannerStyle:
    """Look a style up by name.

    Raises:
        KeyError: naming the unknown style, the closest known one and the choices.
    """
    return look_up(name if isinstance(name, str) else repr(name), STYLES, "phantom style")


#: settings :func:`random_style` leaves alone (text and layout are drawn from the training styles)
_NOT_NUMERIC = ("name", "header", "scale_bar_left")
#: physical floors of the randomised settings
_FLOOR = {"sector_deg": 40.0, "apex_frac": 0.05, "beams_per_px": 0.25, "samples_per_px": 0.4, "psf_axial": 0.5,
          "psf_lateral": 0.5, "dynamic_range_db": 30.0, "attenuation_db": 0.0, "haze": 0.0, "texture": 0.0}


def random_style_ranges(widen: float = 0.5) -> dict[str, tuple[float, float]]:
    """Per numeric setting, the (low, high) :func:`random_style` draws from.

    The training styles' min..max, widened by ``widen`` times that span on either side, floored
    at physical limits. The held-out style is never consulted.
    """
    out = {}
    train = [STYLES[n] for n in TRAIN_STYLES]
    for f in fields(ScannerStyle):
        if f.name in _NOT_NUMERIC:
            continue
        vals = [float(getattr(s, f.name)) for s in train]
        lo, hi = min(vals), max(vals)
        span = hi - lo
        out[f.name] = (max(lo - widen * span, _FLOOR.get(f.name, -np.inf)), hi + widen * span)
    return out


_RANGES = random_style_ranges()


def random_style(rng: np.random.Generator) -> ScannerStyle:
    """A new scanner: every numeric setting uniform over :func:`random_style_ranges`, header and
    scale-bar side taken from a random training style.

    Example:
        >>> s = random_style(np.random.default_rng(0))
        >>> s.name, 52.0 <= s.sector_deg <= 84.0
        ('random', True)
    """
    base = STYLES[TRAIN_STYLES[int(rng.integers(len(TRAIN_STYLES)))]]
    values = {k: round(float(rng.uniform(lo, hi)), 3) for k, (lo, hi) in _RANGES.items()}
    return replace(base, name="random", scale_bar_left=bool(rng.random() < 0.5), **values)
