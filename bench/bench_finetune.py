"""Fine-tuning the default model on a few real heads: the old default (lr 2e-3, BatchNorm updating)
against the fine-tuning default of `pcbm train --init` (lr 2e-4, BatchNorm statistics kept).

Takes 12 HC18 images of the training split (subjects never in `hc18:…?split=val`), fine-tunes the
default model for 12 steps per setting, and evaluates each on the first 24 validation heads.

    python bench/bench_finetune.py [HC18_DIR] [--steps 12]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PCBM = [sys.executable, "-m", "pcbm"]
SETTINGS = {  # label -> extra `pcbm train` options
    "lr 2e-3 (the old default)": ["--lr", "2e-3", "--no-freeze-batchnorm"],
    "lr 2e-4, BatchNorm updating": ["--lr", "2e-4", "--no-freeze-batchnorm"],
    "fine-tuning default (lr 2e-4, --freeze-batchnorm)": [],
    "fine-tuning default + --freeze-encoder": ["--freeze-encoder"],
}


def subset(hc18: Path, out: Path, n: int) -> Path:
    from pcbm.data import open_dataset

    train = open_dataset(f"hc18:{hc18}?split=train")
    names = {f"{train[i].id}.png" for i in range(n)}
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    with open(hc18 / "pixel_size_and_hc.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["filename"] in names]
    with open(out / "pixel_size_and_hc.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for name in names:
        shutil.copy(hc18 / "images" / name, out / "images" / name)
        mask = name.replace(".png", "_Mask.png")
        shutil.copy(hc18 / "masks" / mask, out / "masks" / mask)
    return out


def evaluate(run: str, hc18: Path, tmp: Path, limit: int) -> dict:
    out = tmp / f"eval_{abs(hash(run))}.json"
    subprocess.run([*PCBM, "eval", run, "--data", f"hc18:{hc18}?split=val", "--limit", str(limit), "--json",
                    str(out)], check=True, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hc18", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/hc18")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--limit", type=int, default=24)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        sub = subset(args.hc18, tmp / "sub", args.images)
        rows = [("no fine-tuning", evaluate("default", args.hc18, tmp, args.limit), 0.0)]
        for label, extra in SETTINGS.items():
            run = tmp / f"run{len(rows)}"
            t0 = time.perf_counter()
            subprocess.run([*PCBM, "train", "--init", "default", "--data", f"hc18:{sub}", "--max-steps",
                            str(args.steps), "--batch-size", "4", "--workers", "0", "--seed", "0", "--quiet",
                            "--out", str(run), *extra], check=True, capture_output=True)
            rows.append((label, evaluate(str(run), args.hc18, tmp, args.limit), time.perf_counter() - t0))
    print(f"| setting ({args.steps} steps on {args.images} HC18 training images) | HC MAE (mm) | head Dice | s |")
    print("|---|---|---|---|")
    for label, m, s in rows:
        print(f"| {label} | {m['hc_mae_mm']:.2f} | {m['dice'].get('head', float('nan')):.3f} | {s:.0f} |")
    print(f"(first {args.limit} heads of hc18 split=val; they were among the default model's training images, "
          f"so 'no fine-tuning' is flattering; {time.strftime('%Y-%m-%d')})")


if __name__ == "__main__":
    main()
