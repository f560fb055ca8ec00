"""What the head refiner costs per request: Engine.predict with refine_head=True (``pcbm serve``'s
default, as ``pcbm predict``) vs "standard" (``--refine-head standard``, as ``pcbm live``), interleaved
frame by frame so both see the same machine load.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_refine_head.py --package PKG [--n 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pcbm.data import open_dataset
from pcbm.runtime import Engine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", required=True, help="a model package (pcbm export default --out PKG)")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    eng = Engine(a.package, threads=a.threads)
    for name in ("hc18:../shared/data/hc18?split=val", f"phantom:n={a.n},seed=123,style=mix"):
        ds = open_dataset(name)
        t: dict[object, list[float]] = {True: [], "standard": []}
        standard = 0
        for i in range(min(a.n, len(ds))):
            s = ds[i]
            for mode in t:
                w0 = time.perf_counter()
                p = eng.predict(s.image, s.pixel_spacing_mm, refine_head=mode)
                t[mode].append(time.perf_counter() - w0)
            standard += p.status == "standard"
        print(f"{name}: n={len(t[True])}, standard {standard}; " + "; ".join(
            f"refine_head={k!s}: median {np.median(v) * 1e3:.0f} ms, mean {np.mean(v) * 1e3:.0f} ms" for k, v in t.items()))


if __name__ == "__main__":
    main()
