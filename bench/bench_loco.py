"""Leave-one-centre-out on the African centres: each fold's model on the one centre it never saw, pooled.

    .venv/bin/python bench/bench_loco.py [--runs runs/loco] [--compare sononet16,default] [--out bench/real_loco]

``runs/loco/fold_<Centre>`` are made by ``bench/run_loco.sh`` (the "real" stage of
scripts/train_default.sh with that centre's images left out). Each fold model is scored on *every* image of
its centre (``african:../shared/data/african?centre=C``), as are the ``--compare`` models (SonoNet-16 never
saw an African image; a model trained on the centres is not clean there and is shown for reference only).
Scores are bench_real_planes' (plane groups as deployed: an abstention counts as "other"), per centre and
pooled over the four folds. All figures are on real images.

Writes ``results.json`` and ``results.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import _run  # noqa: E402
from bench_real_planes import _score  # noqa: E402

AFRICAN = "african:../shared/data/african"


def _pool(runs: list[dict]) -> dict:
    out = {k: sum((r[k] for r in runs), []) for k in ("status", "reason")}
    out["probs"] = np.concatenate([r["probs"] for r in runs])
    out["props"] = np.concatenate([r["props"] for r in runs]) if all(r["props"] is not None for r in runs) else None
    return out


def evaluate(models_by_centre: dict[str, str]) -> dict:
    from pcbm.data import open_dataset
    from pcbm.models import load_model

    res, samples, runs, cache = {}, [], [], {}
    for centre, ref in models_by_centre.items():
        if ref not in cache:
            cache[ref] = load_model(ref)[0]
        model = cache[ref]
        ds = open_dataset(f"{AFRICAN}?centre={centre}")
        ss = [ds[i] for i in range(len(ds))]
        r = _run(model, [s.image for s in ss])
        res[centre] = _score(ss, r)
        samples += ss
        runs.append(r)
    res["pooled"] = _score(samples, _pool(runs))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/loco")
    ap.add_argument("--centres", default="Algeria,Egypt,Ghana,Uganda")
    ap.add_argument("--compare", default="sononet16")
    ap.add_argument("--out", default="bench/real_loco")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    centres = [c.strip() for c in args.centres.split(",") if c.strip()]
    folds = {c: str(Path(args.runs) / f"fold_{c}") for c in centres if (Path(args.runs) / f"fold_{c}" / "model.pt").is_file()}
    results = {}
    if folds:
        results["PCBM leave-one-centre-out"] = evaluate(folds)
    for ref in filter(None, (m.strip() for m in args.compare.split(","))):
        results[ref] = evaluate({c: ref for c in centres})
    meta = {"command": "python bench/bench_loco.py " + " ".join(sys.argv[1:]), "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "folds": folds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = ["| model | " + " | ".join(centres) + " | pooled acc. | pooled macro-F1 | abstained |",
             "|" + "---|" * (len(centres) + 4)]
    for name, r in results.items():
        cells = [f"{r[c]['accuracy']:.3f} / {r[c]['macro_f1']:.3f}" if c in r else "—" for c in centres]
        p = r["pooled"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {p['accuracy']:.3f} | **{p['macro_f1']:.3f}** | "
                     f"{100 * p['abstained']:.1f} % |")
    md = "\n".join(lines)
    (out / "results.md").write_text(f"{meta}\n\nper centre: accuracy / macro-F1 (plane groups, abstention = other)\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
