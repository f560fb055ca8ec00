"""Before / after a change of the prediction path: the full path's speed, the two code versions alternating.

    .venv/bin/python bench/bench_pipeline_ab.py --before-src /tmp/old_checkout --package PKG \
        [--rounds 6] [--frames 24] [--threads 2] [--out bench/pipeline_ab]

Two versions of pcbm cannot share one process, so each round runs the old code (``--before-src``: a
checkout, put first on ``PYTHONPATH``) and then the new code (this checkout) in fresh processes, one
after the other, and the rounds alternate which goes first. Each process times, frame by frame at
batch 1, the package's full path (``Engine.predict``: letterbox → three graphs → assess → OOD score →
masks → measurements) with the head refiner (flip TTA) and without it, and the torch path
(``pcbm.models.predict`` on ``--model``, head refiner on), on the same frames: held-out phantom scenes
(``phantom:n=F,seed=123,style=mix``) and HC18 images (when ``../shared/data/hc18`` is there). p50 / p95
ms per frame per side, over all rounds. Writes ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

INNER = r"""
import json, sys, time
import numpy as np
import torch
from pcbm.data import open_dataset
from pcbm.models import load_model, predict
from pcbm.runtime import Engine
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
frames = [(s.image, s.pixel_spacing_mm) for s in open_dataset(f"phantom:n={args['frames']},seed=123,style=mix")]
hc18 = args.get("hc18")
if hc18:
    ds = open_dataset(f"hc18:{hc18}?split=val")
    frames += [(ds[i].image, ds[i].pixel_spacing_mm) for i in range(min(args["frames"] // 2, len(ds)))]
engine = Engine(args["package"], threads=args["threads"])
model, _ = load_model(args["model"])
runs = {"runtime_full": lambda im, sp: engine.predict(im, sp),
        "runtime_no_refiner": lambda im, sp: engine.predict(im, sp, refine_head=False),
        "torch_full": lambda im, sp: predict(model, [im], sp)}
out = {}
for name, fn in runs.items():
    for im, sp in frames[:3]:
        fn(im, sp)  # warm-up
    ms = []
    for im, sp in frames:
        t = time.perf_counter()
        fn(im, sp)
        ms.append((time.perf_counter() - t) * 1000)
    out[name] = ms
print(json.dumps(out))
"""


def _side(src: Path | None, args: argparse.Namespace, hc18: str | None) -> dict[str, list[float]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", MPLBACKEND="Agg")
    cwd = REPO
    if src is not None:
        env["PYTHONPATH"] = str(src)
        cwd = src
    payload = json.dumps({"package": str(Path(args.package).resolve()), "model": args.model, "frames": args.frames,
                          "threads": args.threads, "hc18": hc18})
    res = subprocess.run([sys.executable, "-c", INNER, payload], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"the {'before' if src else 'after'} side failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-src", required=True, help="a checkout of the code before the change")
    ap.add_argument("--package", required=True, help="an exported package of --model")
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/pipeline_ab")
    args = ap.parse_args()
    hc18 = REPO.parent / "shared" / "data" / "hc18"
    hc18_arg = str(hc18) if (hc18 / "pixel_size_and_hc.csv").is_file() else None
    sides: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for side in order:
            got = _side(Path(args.before_src) if side == "before" else None, args, hc18_arg)
            for k, v in got.items():
                sides[side].setdefault(k, []).extend(v)
            print(f"round {r + 1}/{args.rounds} {side}: " + ", ".join(
                f"{k} p50 {np.median(v):.1f} ms" for k, v in got.items()), flush=True)
    table = {}
    for k in sides["after"]:
        b, a = np.array(sides["before"][k]), np.array(sides["after"][k])
        table[k] = {"before_p50_ms": round(float(np.median(b)), 1), "before_p95_ms": round(float(np.percentile(b, 95)), 1),
                    "after_p50_ms": round(float(np.median(a)), 1), "after_p95_ms": round(float(np.percentile(a, 95)), 1),
                    "n_each": int(len(a)), "after_over_before_p50": round(float(np.median(a) / np.median(b)), 3)}
    meta = {"command": "python " + " ".join(sys.argv), "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "threads": args.threads,
            "frames_per_round": args.frames, "rounds": args.rounds, "hc18": bool(hc18_arg)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": table}, indent=1) + "\n")
    lines = [f"`{meta['command']}` — {meta['date']}, {meta['machine']}, {args.threads} threads, "
             f"{args.rounds} alternating rounds", "", "| path | before p50 / p95 ms | after p50 / p95 ms | after / before (p50) | frames each |",
             "|---|---|---|---|---|"]
    for k, t in table.items():
        lines.append(f"| {k} | {t['before_p50_ms']} / {t['before_p95_ms']} | {t['after_p50_ms']} / {t['after_p95_ms']} | "
                     f"{t['after_over_before_p50']} | {t['n_each']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
