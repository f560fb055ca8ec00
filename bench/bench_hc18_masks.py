"""HC18 masks against the recorded HC: how far the filled outlines' ellipse lies outside the line's centre.

    .venv/bin/python bench/bench_hc18_masks.py [--root ../shared/data/hc18] [--plot bench/hc18_mask_bias.png]

The half line width (px) is fitted on the even-numbered subjects (the mean bias of the centre-line
masks made zero, by bisection) and checked on the odd-numbered ones; pcbm.data.hc18 ships the
fitted value as ANNOTATION_HALF_LINE_PX. Prints mask-minus-recorded HC (mm) for the filled masks
and for the centre-line masks on both halves, and draws the two distributions.
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np


def _bias(samples: list, half_line: float | None) -> np.ndarray:
    from pcbm.concepts.measure import fit_ellipse
    from pcbm.data.hc18 import centre_line_mask

    out = []
    for s in samples:
        m = s.masks["head"] if half_line is None else centre_line_mask(s.masks["head"], half_line)
        out.append(fit_ellipse(m).perimeter * s.pixel_spacing_mm - s.properties["hc_mm"])
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "hc18"))
    ap.add_argument("--plot", default=None, help="write a histogram of the biases here (PNG)")
    args = ap.parse_args()
    from pcbm.data import open_dataset
    from pcbm.data.hc18 import ANNOTATION_HALF_LINE_PX

    ds = open_dataset(f"hc18:{args.root}?mask=filled")
    samples = [ds[i] for i in range(len(ds))]
    halves = {k: [s for s in samples if int(s.subject) % 2 == k] for k in (0, 1)}
    lo, hi = 0.0, 2.0
    for _ in range(14):  # bisection on the even subjects' mean bias (it falls as the ellipse shrinks)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _bias(halves[0], mid).mean() > 0 else (lo, mid)
    fitted = round((lo + hi) / 2, 2)
    print(f"{datetime.date.today()} {platform.machine()} {len(samples)} images, root {args.root}")
    print(f"half line width fitted on even subjects: {fitted:.2f} px (shipped: {ANNOTATION_HALF_LINE_PX:.2f})")
    rows = {}
    for name, k in (("even (fit)", 0), ("odd (check)", 1)):
        filled, centre = _bias(halves[k], None), _bias(halves[k], ANNOTATION_HALF_LINE_PX)
        rows[name] = (filled, centre)
        print(f"{name:12s} n={len(filled):3d}  filled: mean {filled.mean():+.3f} median {np.median(filled):+.3f} "
              f"MAE {np.abs(filled).mean():.3f} mm | centre line: mean {centre.mean():+.3f} median "
              f"{np.median(centre):+.3f} MAE {np.abs(centre).mean():.3f} p95 |e| {np.percentile(np.abs(centre), 95):.3f} mm")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        filled, centre = (np.concatenate([rows[r][i] for r in rows]) for i in (0, 1))
        bins = np.linspace(min(filled.min(), centre.min()), max(filled.max(), centre.max()), 50)
        ax.hist(filled, bins, alpha=0.6, label=f"filled outline (mean {filled.mean():+.2f} mm)")
        ax.hist(centre, bins, alpha=0.6, label=f"centre line (mean {centre.mean():+.2f} mm)")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("mask HC − recorded HC (mm), HC18 shared subset")
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
