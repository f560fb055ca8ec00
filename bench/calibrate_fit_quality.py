"""Calibrate the ellipse quality's tolerance on *training* subjects (never on the validation split).

    .venv/bin/python bench/calibrate_fit_quality.py --refiner runs/head_refiner_v1 [--n 240]

The head refiner's outlines of HC18 training-split heads (split seed 0) are good outlines of real
heads: a quality flag should almost never fire on them. For each tolerance (a share of the fitted
ellipse's semi-minor axis) this prints the share of those outlines whose points lie within it for
at least RELIABLE_MIN_QUALITY of their length; pcbm ships the smallest tolerance that passes 98 %
as measure.QUALITY_TOLERANCE_FRACTION. The validation split is then evaluated with it, untouched.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refiner", required=True)
    ap.add_argument("--data", default="hc18:../shared/data/hc18?split=train")
    ap.add_argument("--n", type=int, default=240)
    args = ap.parse_args()
    import cv2
    import torch

    from pcbm.concepts.measure import RELIABLE_MIN_QUALITY, _cut_neck, fit_ellipse_robust, radial_distance
    from pcbm.data import open_dataset
    from pcbm.models.head_refiner import load_refiner

    torch.set_num_threads(2)
    ds = open_dataset(args.data)
    refiner, _ = load_refiner(args.refiner)
    idx = np.random.default_rng(0).choice(len(ds), min(args.n, len(ds)), replace=False)
    grid = np.array([0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.10, 0.12])
    shares = []
    for k, i in enumerate(idx):
        s = ds[int(i)]
        prob = refiner.refine(s.image)
        if prob is None or not (prob > 0.5).any():
            continue
        m = prob > 0.5
        f = fit_ellipse_robust(m)
        cut, _ = _cut_neck(m)
        contours, _ = cv2.findContours(cut.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        pts = np.concatenate([c.reshape(-1, 2) for c in contours])
        h, w = m.shape
        pts = pts[(pts[:, 0] > 0) & (pts[:, 1] > 0) & (pts[:, 0] < w - 1) & (pts[:, 1] < h - 1)]
        d = np.abs(radial_distance(f.ellipse, pts)) / max(f.ellipse.semi_minor, 1e-6)
        shares.append([(d <= g).mean() for g in grid])
        if k % 40 == 0:
            print(f"{k}/{len(idx)}", flush=True)
    a = np.array(shares)
    passing = (a >= RELIABLE_MIN_QUALITY).mean(0)
    for g, p in zip(grid, passing, strict=True):
        print(f"tolerance {g:.2f} x semi-minor: {p:.1%} of {len(a)} training outlines reach {RELIABLE_MIN_QUALITY}")
    ok = grid[passing >= 0.98]
    print("chosen:", float(ok[0]) if len(ok) else None)


if __name__ == "__main__":
    main()
