"""Phantom generation speed on one core: time N renders (with derive_properties) at a given size.

    .venv/bin/python bench/bench_phantom.py [--n 2000] [--size 256] [--style default] [--write]

With --write, the figure goes into bench/RESULTS.md under '## Phantom' (replacing that section).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--style", default="default")
    ap.add_argument("--write", action="store_true", help="write the figure into bench/RESULTS.md")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    from pcbm.data.phantom import PhantomDataset

    ds = PhantomDataset(n=args.n, seed=0, style=args.style, size=args.size)
    ds[0]  # warm the remap-table cache
    t0, c0 = time.perf_counter(), time.process_time()
    mismatches = Counter()
    for i in range(args.n):
        s = ds[i]
        mismatches.update(s.meta.get("mismatch", []))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    line = (f"{args.n} images at {args.size}×{args.size} (style {args.style}, incl. derive_properties): "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU → {args.n / wall:.0f} images/s ({wall / args.n * 1e3:.1f} ms/image); "
            f"intent≠measurement after retries: {sum(mismatches.values())}")
    print(line)
    if args.write:
        cmd = "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_phantom.py " + " ".join(sys.argv[1:])
        section = (f"## Phantom\n\n- {line}\n  - command: `{cmd}`\n  - date: {datetime.date.today()}, "
                   f"machine: 2-core CPU, 24 GiB (shared with other jobs while measured; one thread)\n")
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        if "## Phantom" in text:
            text = re.sub(r"## Phantom\n.*?(?=\n## |\Z)", section.rstrip("\n"), text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        from pcbm._io import atomic_open

        with atomic_open(RESULTS) as f:
            f.write(text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    main()
