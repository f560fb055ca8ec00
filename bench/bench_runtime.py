"""The torch-free runtime against eager torch: parity and speed, the default model (issue 16).

    .venv/bin/python bench/bench_runtime.py [--package PKG | --model default] [--out bench/runtime]
        [--parity-limit N] [--frames 60] [--threads 2]

Parity (``Engine.predict`` vs ``pcbm.models.predict``, the same images): same plane and status,
plane-probability max difference, mask Dice (all structures, at the original size, > 0.5), HC
difference (mm) — on held-out phantom scenes (``phantom:n=200,seed=123,style=mix``) and HC18
validation heads (subject split seed 0). Speed: eager and runtime **alternating** frame by frame in
one process, batch 1, ``--threads`` threads: the segmenter alone (eager ``model.segment`` vs
``segment.onnx``) and the full path (letterbox → three stages → assess → OOD score → masks at the
original size → measurements), with and without the head refiner (flip TTA on). p50 / p95 ms per
frame and the ratio. Writes ``results.json``, ``results.md`` and ``speed.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def _hc(p) -> float | None:
    m = p.measurements.get("hc")
    if not m:
        return None
    return m["value"] if m.get("value") is not None else m.get("measured")


def parity(model, engine, images, spacings) -> dict:
    from pcbm.models import predict

    same_plane = same_status = 0
    dprob, dice, dhc = [], [], []
    for im, sp in zip(images, spacings, strict=True):
        [e] = predict(model, [im], sp, keep_masks=True)
        r = engine.predict(im, sp, keep_masks=True)
        same_plane += e.plane == r.plane
        same_status += e.status == r.status
        dprob.append(max(abs(e.plane_probs[k] - r.plane_probs[k]) for k in e.plane_probs))
        dice.append(_dice(e.masks > 0.5, r.masks > 0.5))
        a, b = _hc(e), _hc(r)
        if a is not None and b is not None:
            dhc.append(abs(a - b))
    n = len(images)
    return {"n": n, "same_plane": same_plane / n, "same_status": same_status / n, "max_prob_diff": float(max(dprob)),
            "mask_dice_min": float(min(dice)), "mask_dice_mean": float(np.mean(dice)),
            "hc_n": len(dhc), "hc_max_diff_mm": float(max(dhc)) if dhc else None}


def speed(model, engine, images, spacings, frames: int) -> dict:
    import torch

    from pcbm.data.preprocess import letterbox
    from pcbm.models import predict

    refiner = model.head_refiner
    times: dict[str, list[float]] = {k: [] for k in ("eager_segment", "runtime_segment", "eager_full", "runtime_full",
                                                     "eager_full_refiner", "runtime_full_refiner")}
    for i in range(frames + 3):
        im, sp = images[i % len(images)], spacings[i % len(spacings)]
        x, _ = letterbox(im, model.input_size)
        xt = torch.from_numpy(x)[None, None].contiguous(memory_format=torch.channels_last)
        xn = x[None, None].astype(np.float32)
        runs = []
        with torch.inference_mode():
            runs.append(("eager_segment", lambda xt=xt: model.segment(xt)))
        runs.append(("runtime_segment", lambda xn=xn: engine._segment.run(None, {"image": xn})))
        for with_refiner in (False, True):
            suffix = "_refiner" if with_refiner else ""

            def eager(with_refiner=with_refiner, im=im, sp=sp):
                model.attach_head_refiner(refiner if with_refiner else None)
                return predict(model, [im], sp)

            def runtime(with_refiner=with_refiner, keep=engine._refiner, im=im, sp=sp):
                engine._refiner = keep if with_refiner else None
                return engine.predict(im, sp)

            runs += [("eager_full" + suffix, eager), ("runtime_full" + suffix, runtime)]
        for name, fn in runs:  # alternating: eager, runtime, eager, runtime … on the same frame
            t0 = time.perf_counter()
            if name.startswith("eager"):
                with torch.inference_mode():
                    fn()
            else:
                fn()
            if i >= 3:  # warm-up frames not counted
                times[name].append((time.perf_counter() - t0) * 1000)
    model.attach_head_refiner(refiner)
    out = {k: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95))} for k, v in times.items()}
    for part in ("segment", "full", "full_refiner"):
        out[f"ratio_{part}"] = out[f"eager_{part}"]["p50_ms"] / out[f"runtime_{part}"]["p50_ms"]
    import resource

    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def plot(sp: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    parts = ("segment", "full", "full_refiner")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(parts))
    for k, (who, color) in enumerate((("eager", "#9aa5b1"), ("runtime", "#2f80ed"))):
        p50 = [sp[f"{who}_{p}"]["p50_ms"] for p in parts]
        p95 = [sp[f"{who}_{p}"]["p95_ms"] for p in parts]
        ax.bar(x + (k - 0.5) * 0.38, p50, 0.38, color=color, label=f"{who} p50")
        ax.errorbar(x + (k - 0.5) * 0.38, p50, yerr=[np.zeros(3), np.array(p95) - np.array(p50)], fmt="none",
                    ecolor="black", capsize=3)
    ax.axhline(25, ls="--", color="#d97706", label="25 ms (40 fps)")
    ax.set_xticks(x, ["segmenter", "full path", "full path + head refiner"])
    ax.set_ylabel("ms per frame (batch 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default=None, help="an exported package (default: export --model to OUT/pkg)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default="bench/runtime")
    ap.add_argument("--parity-limit", type=int, default=None)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from pcbm.data import open_dataset
    from pcbm.models import load_model
    from pcbm.runtime import Engine

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pkg = Path(args.package) if args.package else out / "pkg"
    if args.package is None:
        from pcbm.export.package import export_package

        t0 = time.perf_counter()
        export_package(args.model, pkg, overwrite=True, progress=print)
        print(f"exported in {time.perf_counter() - t0:.0f} s")
    model, _ = load_model(args.model)
    engine = Engine(pkg, threads=args.threads)
    res = {}
    for key, spec in (("phantom", "phantom:n=200,seed=123,style=mix"), ("hc18_val", "hc18:../shared/data/hc18?split=val")):
        ds = open_dataset(spec)
        n = len(ds) if args.parity_limit is None else min(args.parity_limit, len(ds))
        samples = [ds[i] for i in range(n)]
        res[key] = parity(model, engine, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
        res[key]["data"] = spec
        print(key, res[key])
    hc = open_dataset("hc18:../shared/data/hc18?split=val")
    imgs = [hc[i] for i in range(8)]
    res["speed"] = speed(model, engine, [s.image for s in imgs], [s.pixel_spacing_mm for s in imgs], args.frames)
    print(json.dumps(res["speed"], indent=1))
    res["meta"] = {"command": "python bench/bench_runtime.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
                   "date": datetime.date.today().isoformat(),
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads", "package": str(pkg)}
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    s = res["speed"]
    lines = ["| part | eager p50 / p95 (ms) | runtime p50 / p95 (ms) | ratio (p50) |", "|---|---|---|---|"]
    for part, label in (("segment", "segmenter"), ("full", "full path"), ("full_refiner", "full path + head refiner")):
        e, r = s[f"eager_{part}"], s[f"runtime_{part}"]
        lines.append(f"| {label} | {e['p50_ms']:.1f} / {e['p95_ms']:.1f} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} | "
                     f"{s[f'ratio_{part}']:.2f}× |")
    lines += ["", "| parity set | n | same plane | same status | max prob diff | mask Dice min / mean | HC max diff (mm) |",
              "|---|---|---|---|---|---|---|"]
    for key in ("phantom", "hc18_val"):
        p = res[key]
        hcd = "—" if p["hc_max_diff_mm"] is None else f"{p['hc_max_diff_mm']:.3f} (n={p['hc_n']})"
        lines.append(f"| {p['data']} | {p['n']} | {100 * p['same_plane']:.1f} % | {100 * p['same_status']:.1f} % | "
                     f"{p['max_prob_diff']:.2e} | {p['mask_dice_min']:.4f} / {p['mask_dice_mean']:.4f} | {hcd} |")
    (out / "results.md").write_text(f"{res['meta']}\n\n" + "\n".join(lines) + "\n")
    plot(s, out / "speed.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
