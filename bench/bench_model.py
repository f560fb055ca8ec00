"""Model benchmarks: accuracy of a run (phantom held-out seed, held-back scanner style, HC18 val),
training modes side by side, inference latency. All on CPU with 2 threads.

    python bench/bench_model.py eval default [--hc18 ../shared/data/hc18] [--n 400] [--json out.json]
    python bench/bench_model.py modes runs/modes [--n 300] [--hc18 ../shared/data/hc18]
    python bench/bench_model.py latency default
    python bench/bench_model.py plot pcbm/models/weights/metrics.json --out bench/default_eval.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pcbm.data import open_dataset  # noqa: E402
from pcbm.models import load_model, predict_images  # noqa: E402
from pcbm.training import evaluate  # noqa: E402

HELD_OUT_SEED = 123  # never used for training (the default model trains on seed 0)


def _short(m: dict) -> dict:
    keep = ("n", "plane_macro_f1", "plane_balanced_accuracy", "standard_accuracy", "property_accuracy", "hc_mae_mm")
    out = {k: (round(m[k], 4) if isinstance(m.get(k), float) else m.get(k)) for k in keep if k in m}
    if m.get("dice"):
        out["dice_head"] = round(m["dice"].get("head", float("nan")), 4)
        out["dice_mean"] = round(float(np.mean(list(m["dice"].values()))), 4)
    return out


def cmd_eval(args: argparse.Namespace) -> dict:
    model, _ = load_model(args.run)
    specs = {
        "phantom_heldout_seed": f"phantom:n={args.n},seed={HELD_OUT_SEED},style=mix",
        "phantom_heldout_style": f"phantom:n={args.n},seed={HELD_OUT_SEED},style=heldout",
        "hc18_val": f"hc18:{args.hc18}?split=val",
    }
    res = {}
    for key, spec in specs.items():
        t = time.perf_counter()
        res[key] = {"data": spec, **evaluate(model, open_dataset(spec))}
        print(key, json.dumps(_short(res[key])), f"({time.perf_counter() - t:.0f} s)", flush=True)
    return res


def cmd_modes(args: argparse.Namespace) -> dict:
    res = {}
    for name in ("sequential", "independent", "joint", "baseline"):
        run = Path(args.dir) / name
        if not (run / "model.pt").is_file():
            continue
        model, info = load_model(run)
        spec = f"phantom:n={args.n},seed={HELD_OUT_SEED},style=mix"
        m = evaluate(model, open_dataset(spec))
        res[name] = {"phantom": _short(m), "train": {k: info["config"].get(k) for k in
                                                    ("steps", "train_images", "wall_time_s", "train_images_per_s")}}
        if model.family.has_concepts:
            res[name]["hc18_val_sim_to_real"] = _short(evaluate(model, open_dataset(f"hc18:{args.hc18}?split=val")))
        print(name, json.dumps(res[name]), flush=True)
    return res


def cmd_latency(args: argparse.Namespace) -> dict:
    torch.set_num_threads(2)
    model, _ = load_model(args.run)
    img = np.random.default_rng(0).integers(0, 255, (540, 800), dtype=np.uint8)
    x, _ = model.prepare([img])
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    full = []
    for _ in range(max(5, args.repeat // 3)):
        t = time.perf_counter()
        predict_images(model, [img], pixel_spacing_mm=0.15)
        full.append(time.perf_counter() - t)
    res = {"input_size": model.input_size, "forward_ms_median": 1000 * statistics.median(times),
           "forward_ms_min": 1000 * min(times), "predict_800x540_ms_min": 1000 * min(full),
           "forward_ms_p90": 1000 * sorted(times)[int(0.9 * len(times))],
           "predict_800x540_ms_median": 1000 * statistics.median(full), "threads": 2, "batch": 1}
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}))
    return res


def plot_eval(res: dict, out: str | Path, title: str = "") -> Path:
    """Confusion matrices (row-normalised) of each phantom evaluation and per-concept Dice, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, v in res.items() if v.get("plane_confusion") and v.get("standard_accuracy") is not None]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(5.2 * (len(keys) + 1), 5.0), constrained_layout=True)
    for ax, key in zip(axes, keys, strict=False):
        conf = res[key]["plane_confusion"]
        cm = np.asarray(conf["matrix"], float)
        frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        short = [lab.replace("trans_", "T").replace("thalamic", "T").replace("ventricular", "V").replace("cerebellar", "C")
                 for lab in conf["labels"]]
        ax.set_xticks(range(len(short)), short, rotation=45, ha="right")
        ax.set_yticks(range(len(short)), short)
        for i in range(len(short)):
            for j in range(len(short)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{key}\nplane F1 {res[key]['plane_macro_f1']:.3f}, standard acc. {res[key]['standard_accuracy']:.3f}",
                     fontsize=10)
    ax = axes[-1]
    names = list(next(iter(res.values()))["dice"])
    width = 0.8 / max(len(keys), 1)
    for k, key in enumerate(keys):
        d = res[key]["dice"]
        ax.barh(np.arange(len(names)) + k * width, [d.get(n, np.nan) for n in names], height=width, label=key)
    ax.set_yticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("Dice")
    ax.set_title("segmentation per visual concept", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(keys))
    if title:
        fig.suptitle(title)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("run")
    e.add_argument("--n", type=int, default=400)
    e.add_argument("--hc18", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hc18"))
    m = sub.add_parser("modes")
    m.add_argument("dir")
    m.add_argument("--n", type=int, default=300)
    m.add_argument("--hc18", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hc18"))
    lat = sub.add_parser("latency")
    lat.add_argument("run")
    lat.add_argument("--repeat", type=int, default=30)
    pl = sub.add_parser("plot", help="draw an eval's JSON (confusion matrices, Dice per concept) as a PNG")
    pl.add_argument("metrics")
    pl.add_argument("--out", required=True)
    pl.add_argument("--title", default="")
    e.add_argument("--plot", default=None, help="also draw the results into this PNG")
    for sp in (e, m, lat):
        sp.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    if args.cmd == "plot":
        print(plot_eval(json.loads(Path(args.metrics).read_text()), args.out, args.title))
        return
    torch.set_num_threads(2)
    res = {"eval": cmd_eval, "modes": cmd_modes, "latency": cmd_latency}[args.cmd](args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if getattr(args, "plot", None):
        print(plot_eval(res, args.plot, args.run))


if __name__ == "__main__":
    main()
