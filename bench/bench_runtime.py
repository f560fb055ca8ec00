"""The torch-free runtime against eager torch: parity and speed, the default model (issue 16).

    .venv/bin/python bench/bench_runtime.py [--package PKG | --model default] [--out bench/runtime]
        [--parity-limit N] [--frames 60] [--threads 2] [--backends onnxruntime,openvino-bf16,onnxruntime-int8]

Parity (``Engine.predict`` vs ``pcbm.models.predict``, the same images): same plane and status,
plane-probability max difference, mask Dice (all structures, at the original size, > 0.5), HC
difference (mm) — on held-out phantom scenes (``phantom:n=200,seed=123,style=mix``) and HC18
validation heads (subject split seed 0). Speed: eager and runtime **alternating** frame by frame in
one process, batch 1, ``--threads`` threads: the segmenter alone (eager ``model.segment`` vs
``segment.onnx``) and the full path (letterbox → three stages → assess → OOD score → masks at the
original size → measurements), with and without the head refiner (flip TTA on). p50 / p95 ms per
frame and the ratio, per backend (``--backends``; ``onnxruntime-int8`` is the segmenter quantized
here, static QDQ per channel, calibrated on phantom + HC18 training frames — measured, not shipped). Writes ``results.json``, ``results.md`` and ``speed.png``.
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


def quantize_segment(pkg: Path, out: Path, calibration: list[np.ndarray]) -> Path:
    """``segment.onnx`` quantized to int8 (static, QDQ, weights per channel, activations uint8,
    MinMax calibration on ``calibration`` frames) — measured here, not shipped."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pcbm.data.preprocess import letterbox

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self):
            im = next(self.it, None)
            return None if im is None else {"image": letterbox(im, 256)[0][None, None].astype(np.float32)}

    pre, q = out / "segment_pre.onnx", out / "segment_int8.onnx"
    quant_pre_process(str(pkg / "segment.onnx"), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    return q


def speed(model, engines: dict, images, spacings, frames: int) -> dict:
    import torch

    from pcbm.data.preprocess import letterbox
    from pcbm.models import predict

    refiner = model.head_refiner
    who = ["eager", *engines]
    times: dict[str, list[float]] = {f"{w}_{p}": [] for w in who for p in ("segment", "full", "full_refiner")}
    for i in range(frames + 3):
        im, sp = images[i % len(images)], spacings[i % len(spacings)]
        x, _ = letterbox(im, model.input_size)
        xt = torch.from_numpy(x)[None, None].contiguous(memory_format=torch.channels_last)
        xn = x[None, None].astype(np.float32)
        runs = [("eager_segment", lambda xt=xt: model.segment(xt))]
        runs += [(f"{b}_segment", lambda xn=xn, e=e: e._segment.run(None, {"image": xn})) for b, e in engines.items()]
        for with_refiner in (False, True):
            suffix = "_refiner" if with_refiner else ""

            def eager(with_refiner=with_refiner, im=im, sp=sp):
                model.attach_head_refiner(refiner if with_refiner else None)
                return predict(model, [im], sp)

            runs.append(("eager_full" + suffix, eager))
            for b, e in engines.items():
                def runtime(with_refiner=with_refiner, e=e, keep=e._refiner, im=im, sp=sp):
                    e._refiner = keep if with_refiner else None
                    try:
                        return e.predict(im, sp)
                    finally:
                        e._refiner = keep

                runs.append((f"{b}_full" + suffix, runtime))
        for name, fn in runs:  # alternating: eager, each backend, eager, … on the same frame
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
    for b in engines:
        for part in ("segment", "full", "full_refiner"):
            out[f"ratio_{b}_{part}"] = out[f"eager_{part}"]["p50_ms"] / out[f"{b}_{part}"]["p50_ms"]
    import resource

    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


COLOURS = {"eager": "#9aa5b1", "onnxruntime": "#2f80ed", "openvino": "#27ae60", "openvino-bf16": "#8e44ad",
           "onnxruntime-int8": "#d35400"}


def plot(sp: dict, backends: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    parts = ("segment", "full", "full_refiner")
    who = ["eager", *backends]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(parts))
    w = 0.8 / len(who)
    for k, name in enumerate(who):
        p50 = [sp[f"{name}_{p}"]["p50_ms"] for p in parts]
        p95 = [sp[f"{name}_{p}"]["p95_ms"] for p in parts]
        off = x + (k - (len(who) - 1) / 2) * w
        ax.bar(off, p50, w, color=COLOURS.get(name, "#555"), label=f"{name} p50")
        ax.errorbar(off, p50, yerr=[np.zeros(3), np.array(p95) - np.array(p50)], fmt="none", ecolor="black", capsize=2)
    ax.axhline(25, ls="--", color="#d97706", label="25 ms (40 fps)")
    ax.set_xticks(x, ["segmenter", "full path", "full path + head refiner"])
    ax.set_ylabel("ms per frame (batch 1, p50; bar to p95)")
    ax.legend(fontsize=7, ncol=2)
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
    ap.add_argument("--backends", default="onnxruntime",
                    help="comma-separated: onnxruntime, openvino, openvino-bf16, onnxruntime-int8 (bench only)")
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
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    engines = {}
    for b in backends:
        if b == "onnxruntime-int8":
            import onnxruntime as ort

            cal = [s.image for spec in ("phantom:n=48,seed=77,style=mix", "hc18:../shared/data/hc18?split=train")
                   for s in (lambda ds: [ds[i] for i in range(48)])(open_dataset(spec))]
            q = quantize_segment(pkg, out, cal)
            e = Engine(pkg, threads=args.threads)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
            e._segment = ort.InferenceSession(str(q), opts, providers=["CPUExecutionProvider"])
            engines[b] = e
        else:
            engines[b] = Engine(pkg, threads=args.threads, backend=b)
    res: dict = {"parity": {}}
    for b, engine in engines.items():
        res["parity"][b] = {}
        for key, spec in (("phantom", "phantom:n=200,seed=123,style=mix"), ("hc18_val", "hc18:../shared/data/hc18?split=val")):
            ds = open_dataset(spec)
            n = len(ds) if args.parity_limit is None else min(args.parity_limit, len(ds))
            samples = [ds[i] for i in range(n)]
            p = parity(model, engine, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
            p["data"] = spec
            res["parity"][b][key] = p
            print(b, key, p)
    hc = open_dataset("hc18:../shared/data/hc18?split=val")
    imgs = [hc[i] for i in range(8)]
    res["speed"] = speed(model, engines, [s.image for s in imgs], [s.pixel_spacing_mm for s in imgs], args.frames)
    print(json.dumps(res["speed"], indent=1))
    res["meta"] = {"command": "python bench/bench_runtime.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
                   "date": datetime.date.today().isoformat(),
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads", "package": str(pkg)}
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    s = res["speed"]
    lines = ["| part | " + " | ".join(f"{w} p50 / p95 (ms)" for w in ["eager", *backends]) + " | "
             + " | ".join(f"{b} × eager (p50)" for b in backends) + " |",
             "|---|" + "---|" * (1 + 2 * len(backends))]
    for part, label in (("segment", "segmenter"), ("full", "full path"), ("full_refiner", "full path + head refiner")):
        cells = [f"{s[f'{w}_{part}']['p50_ms']:.1f} / {s[f'{w}_{part}']['p95_ms']:.1f}" for w in ["eager", *backends]]
        cells += [f"{s[f'ratio_{b}_{part}']:.2f}×" for b in backends]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| backend | parity set | n | same plane | same status | max prob diff | mask Dice min / mean | HC max diff (mm) |",
              "|---|---|---|---|---|---|---|---|"]
    for b in backends:
        for key in ("phantom", "hc18_val"):
            p = res["parity"][b][key]
            hcd = "—" if p["hc_max_diff_mm"] is None else f"{p['hc_max_diff_mm']:.3f} (n={p['hc_n']})"
            lines.append(f"| {b} | {p['data']} | {p['n']} | {100 * p['same_plane']:.1f} % | {100 * p['same_status']:.1f} % | "
                         f"{p['max_prob_diff']:.2e} | {p['mask_dice_min']:.4f} / {p['mask_dice_mean']:.4f} | {hcd} |")
    (out / "results.md").write_text(f"{res['meta']}\n\n" + "\n".join(lines) + "\n")
    plot(s, backends, out / "speed.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
