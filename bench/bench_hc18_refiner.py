"""HC18 biometry on held-out subjects: the head refiner (clean) against the shipped default model.

    .venv/bin/python bench/bench_hc18_refiner.py --refiner runs/head_refiner_v1 \
        [--data "hc18:../shared/data/hc18?split=val"] [--out bench/hc18_refiner] [--limit N]

Variants, all measured as ``predict`` measures (robust ellipse, flagged below the quality threshold):

- ``default``: the shipped model alone. NOT clean: it was trained on all HC18 images, these included.
- ``refiner (frame)``: the refiner finds the head on the whole frame itself and redraws it. Clean:
  the refiner is trained on the subject-level training split (split seed 0) only, and no other model
  is involved. With and without flip test-time augmentation.
- ``refiner around default``: crops around the default model's head mask (what ``predict default``
  does once a refiner is attached); the outline is the refiner's, the localisation is not clean.

Writes ``results.json``, ``results.md`` and ``errors.png`` (error against true HC, flagged ones marked).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np

KEYS = ("hc_n", "hc_mae_mm", "hc_median_mm", "hc_p95_mm", "hc_max_mm", "dice", "hc_flagged_share",
        "hc_mae_reliable_mm", "hc_max_reliable_mm")


def _row(name: str, m: dict) -> str:
    bands = m.get("hc_by_band", {})
    cells = [f"{m[k]:.3f}" if isinstance(m.get(k), float) else str(m.get(k)) for k in KEYS]
    cells += [f"{bands[b]['mae_mm']:.2f} (n={bands[b]['n']})" if b in bands else "—" for b in ("<100", "100-200", ">200")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refiner", required=True)
    ap.add_argument("--data", default="hc18:../shared/data/hc18?split=val")
    ap.add_argument("--out", default="bench/hc18_refiner")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from pcbm.concepts import VISUAL_CONCEPT_NAMES
    from pcbm.data import open_dataset
    from pcbm.models import load_model
    from pcbm.models.head_refiner import load_refiner
    from pcbm.models.inference import original_masks, run_model
    from pcbm.training.evaluation import evaluate
    from pcbm.training.head_refiner import evaluate_refiner

    torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    refiner, meta = load_refiner(args.refiner)
    default, _ = load_model("default")
    results: dict[str, dict] = {}
    m = evaluate(default, ds, limit=n)
    results["default (not clean: trained on these images)"] = {k: m.get(k) for k in (*KEYS, "hc_by_band")} | {
        "dice": m["dice"].get("head")}

    def around_default(s):
        out, (box,) = run_model(default, [s.image], s.pixel_spacing_mm)
        return original_masks(out, 0, box)[VISUAL_CONCEPT_NAMES.index("head")] > 0.5

    rows = {}
    for name, coarse, tta in (("refiner (frame), flip TTA — clean", "frame", True),
                              ("refiner (frame), no TTA — clean", "frame", False),
                              ("refiner around default's mask, flip TTA", around_default, True)):
        refiner.flip_tta = tta
        r = evaluate_refiner(refiner, ds, coarse=coarse, limit=n)
        rows[name] = r.pop("rows")
        results[name] = r
        print(_row(name, r), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = ("| variant | n | MAE | median | p95 | max | Dice | flagged | MAE unflagged | max unflagged | "
              "MAE <100 | MAE 100–200 | MAE >200 |\n|---" * 1 + "|---" * 12 + "|")
    md = [f"Data: `{args.data}` ({n} images). Refiner: `{args.refiner}` ({meta.get('steps')} steps, "
          f"{meta.get('split')}). Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{args.threads}. Date: {datetime.date.today()}.", "", header]
    md += [_row(k, v) for k, v in results.items()]
    (out / "results.md").write_text("\n".join(md) + "\n")
    (out / "results.json").write_text(json.dumps({"results": results, "rows": rows}, indent=1, default=float))
    print("\n".join(md))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key in zip(axes, ("refiner (frame), flip TTA — clean", "refiner around default's mask, flip TTA"),
                       strict=True):
        rs = [r for r in rows[key] if "hc_true_mm" in r]
        t = np.array([r["hc_true_mm"] for r in rs])
        e = np.array([abs(r["hc_mm"] - r["hc_true_mm"]) for r in rs])
        ok = np.array([r["reliable"] for r in rs])
        ax.scatter(t[ok], e[ok], s=10, label="reliable (a number is shown)")
        ax.scatter(t[~ok], e[~ok], s=22, marker="x", c="crimson", label="flagged unreliable")
        ax.axhline(10, ls=":", c="grey")
        ax.set(title=key, xlabel="recorded HC (mm)")
    axes[0].set_ylabel("|HC error| (mm)")
    axes[0].set_yscale("symlog", linthresh=2)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=110)


if __name__ == "__main__":
    main()
