"""Explanation costs and intervention curves, on CPU.

    .venv/bin/python bench/bench_explain.py [--model default|RUN] [--n-images 10] [--n-curve 200] [--threads 2] [--write]

Measures, for the given model (default: the shipped one; without a trained model the timings still
hold for the architecture, the curve does not):
  * concept report time per image (explain_image with a Grad-CAM heatmap + HTML rendering);
  * Integrated Gradients time per image through the whole chain (32 steps, internal batch 8);
  * on the phantom, intervention curves (random / uncertainty-first / greedy oracle; perfect and
    10 %-wrong expert): accuracy with k concepts corrected per image and the fewest corrections
    per image that fix 90 % of the decision errors; plus the leakage checks.
With --write, the figures go into bench/RESULTS.md under '## Explain' (replacing that section).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _load(ref: str):
    from pcbm.models import build_model, get_model_config, list_model_configs, load_model

    if ref.startswith("config:"):
        name = ref.split(":", 1)[1]
        if name not in list_model_configs():
            get_model_config(name)  # raises with suggestions
        return build_model(name).eval(), {"run_dir": f"untrained {name}"}
    return load_model(ref)


def bench_report(model, info, samples) -> tuple[list[float], list[float]]:
    """Per-image seconds of a full concept report and of pixel Integrated Gradients."""
    from pcbm.explain import PixelExplainer, explain_image

    explain_image(model, samples[0], info).to_html()  # warm-up
    report, ig_times = [], []
    for s in samples:
        t = time.perf_counter()
        explain_image(model, s, info, heatmap="gradcam").to_html()
        report.append(time.perf_counter() - t)
    ig = PixelExplainer(model, "integrated_gradients", n_steps=32, internal_batch_size=8)
    for s in samples:
        x, _ = model.prepare([s.image])
        t = time.perf_counter()
        ig.attribute(x.contiguous(), target=None)
        ig_times.append(time.perf_counter() - t)
    return report, ig_times


def bench_curves(model, n: int, seed: int) -> tuple[list[str], str]:
    from pcbm.data import open_dataset
    from pcbm.explain import (
        ConceptSet,
        GreedyPolicy,
        NoisyExpert,
        RandomPolicy,
        UncertaintyPolicy,
        intervention_curve,
        leakage_check,
    )

    cs = ConceptSet.from_model(model, open_dataset(f"phantom:n={n},seed={seed}"))
    rows = []
    for policy in (RandomPolicy(), UncertaintyPolicy(), GreedyPolicy()):
        for err in (0.0, 0.1):
            c = intervention_curve(model, cs, policy, NoisyExpert(err), seed=seed)
            at = {k: c.accuracy[k] for k in (0, 1, 2, 3, 5, 10) if k < len(c.k)}
            fix, gain = c.concepts_to_fix(0.9), c.concepts_to_gain(0.9)
            rows.append(f"| {policy.name} | {err:.0%} | " + " | ".join(f"{v:.3f}" for v in at.values())
                        + f" | {c.accuracy[-1]:.3f} | {fix if fix is not None else 'never'} | "
                        + f"{gain if gain is not None else '—'} |")
    return rows, str(leakage_check(model, cs))


def _ms(xs: list[float]) -> str:
    return f"{sum(xs) / len(xs) * 1e3:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="default, a run directory, or config:NAME (untrained)")
    ap.add_argument("--n-images", type=int, default=10)
    ap.add_argument("--n-curve", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-curves", action="store_true")
    ap.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from pcbm.data import open_dataset

    model, info = _load(args.model)
    name = f"{model.config.name} ({info.get('run_dir')})"
    samples = list(open_dataset(f"phantom:n={args.n_images},seed={args.seed + 1}"))
    report_s, ig_s = bench_report(model, info, samples)
    load = os.getloadavg()[0]
    lines = [f"- model: {name}, input {model.config.input_size} px, {args.threads} torch threads, CPU",
             f"- concept report (explain_image with Grad-CAM + to_html), per image: mean {_ms(report_s)}, "
             f"best {min(report_s) * 1e3:.0f} ms ({len(samples)} phantom images)",
             f"- Integrated Gradients through the whole chain (32 steps, internal_batch_size 8), per image: "
             f"mean {_ms(ig_s)}, best {min(ig_s) * 1e3:.0f} ms",
             f"- load average when the timings ended: {load:.1f} on 2 cores (other jobs shared the machine; "
             "'best' is the closer estimate of an idle machine)"]
    for ln in lines:
        print(ln)
    table = []
    if not args.skip_curves:
        rows, leak = bench_curves(model, args.n_curve, args.seed)
        table = [f"Intervention curves on phantom:n={args.n_curve},seed={args.seed} (decision accuracy = plane right "
                 "and standardness right; binary concepts corrected per image):", "",
                 "| policy | expert error | k=0 | k=1 | k=2 | k=3 | k=5 | k=10 | all | k to fix 90 % of errors "
                 "| k for 90 % of the all-corrected gain |",
                 "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "", f"Leakage: {leak}"]
        print("\n".join(table))
    if args.write:
        cmd = ".venv/bin/python bench/bench_explain.py " + " ".join(sys.argv[1:])
        section = "\n".join(["## Explain", "", *lines, "", *table, "", f"- command: `{cmd}`",
                             f"- date: {datetime.date.today()}, machine: 2-core CPU, 24 GiB (shared with other jobs)",
                             ""])
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        if "## Explain" in text:
            text = re.sub(r"## Explain\n.*?(?=\n## |\Z)", lambda _: section.rstrip("\n"), text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        from pcbm._io import atomic_open

        with atomic_open(RESULTS, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
