"""Model benchmarks: accuracy of a run (phantom held-out seed, held-back scanner style, HC18 val),
training modes side by side, inference latency. All on CPU with 2 threads.

    python bench/bench_model.py eval default [--hc18 ../shared/data/hc18] [--n 400] [--json out.json]
    python bench/bench_model.py modes runs/modes [--n 300] [--hc18 ../shared/data/hc18]
    python bench/bench_model.py latency default
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
from pcbm.models import load_model, predict_images, to_input  # noqa: E402
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
        if not model.concept_free:
            res[name]["hc18_val_sim_to_real"] = _short(evaluate(model, open_dataset(f"hc18:{args.hc18}?split=val")))
        print(name, json.dumps(res[name]), flush=True)
    return res


def cmd_latency(args: argparse.Namespace) -> dict:
    torch.set_num_threads(2)
    model, _ = load_model(args.run)
    img = np.random.default_rng(0).integers(0, 255, (540, 800), dtype=np.uint8)
    x, _ = to_input([img], model.input_size)
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
    for sp in (e, m, lat):
        sp.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(2)
    res = {"eval": cmd_eval, "modes": cmd_modes, "latency": cmd_latency}[args.cmd](args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
