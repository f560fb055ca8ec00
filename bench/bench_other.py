"""Is "other" a shortcut? Models on the phantom's "other" scenes, old (blobs) and new (rich), per kind.

    .venv/bin/python bench/bench_other.py [--models default,RUN,…] [--n 240] [--out bench/other]

For each model: on ``phantom:n=N,seed=321,style=mix,planes=other,other=blobs|rich`` the share of
scenes called ``other`` and the share shown as "not a known plane" (called other, too uncertain, or
unlike the training data), per kind, and what the wrong calls were. Also draws the contact sheets
of "other" before (``blobs``) and after (``rich``, one column per kind, three scanner styles).
Writes ``results.json``, ``results.md``, ``other_before.png``, ``other_after.png``, ``other.png``.
All phantom figures.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np


def evaluate(model, mode: str, n: int) -> dict:
    from pcbm.data import open_dataset
    from pcbm.models import predict

    ds = open_dataset(f"phantom:n={n},seed=321,style=mix,planes=other,other={mode}")
    per: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    calls: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for start in range(0, len(ds), 8):
        batch = [ds[j] for j in range(start, min(len(ds), start + 8))]
        for s, p in zip(batch, predict(model, [s.image for s in batch], [s.pixel_spacing_mm for s in batch]), strict=True):
            k = s.meta["other_kind"]
            per[k][0] += 1
            per[k][1] += p.plane == "other"
            per[k][2] += p.status == "not_a_known_plane"
            calls[k][p.plane] += 1
    out = {k: {"n": v[0], "called_other": v[1] / v[0], "not_a_known_plane": v[2] / v[0],
               "calls": dict(calls[k].most_common())} for k, v in sorted(per.items())}
    tot = np.array([v for v in per.values()]).sum(0)
    out["all"] = {"n": int(tot[0]), "called_other": float(tot[1] / tot[0]), "not_a_known_plane": float(tot[2] / tot[0])}
    return out


def contact_sheet(mode: str, path: Path, size: int = 160) -> None:
    import cv2

    from pcbm.data.phantom import others, scene
    from pcbm.data.phantom.dataset import make_sample

    kinds = list(others.KINDS) if mode == "rich" else ["blobs"] * 6
    orig = others.sample_other
    rows = []
    try:
        for r, style in enumerate(("default", "clinic", "portable")):
            tiles = []
            for i, kind in enumerate(kinds):
                if mode == "rich":
                    scene.others.sample_other = lambda g, rng, m="rich", kind=None, _k=kind: orig(g, rng, m, _k)
                s = make_sample(17 + r, 100 + i, style, size, plane="other", other=mode)
                im = cv2.cvtColor(s.image, cv2.COLOR_GRAY2BGR)
                for m in s.masks.values():
                    if m.any():
                        cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                        cv2.drawContours(im, cs, -1, (0, 200, 255), 1)
                cv2.putText(im, s.meta["other_kind"], (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
                tiles.append(im)
            rows.append(np.hstack(tiles))
    finally:
        scene.others.sample_other = orig
    cv2.imwrite(str(path), np.vstack(rows))


def plot(res: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    models = list(res)
    kinds = [k for k in res[models[0]]["rich"] if k != "all"]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = np.arange(len(kinds) + 1)
    w = 0.8 / len(models)
    for i, m in enumerate(models):
        vals = [res[m]["rich"][k]["not_a_known_plane"] for k in kinds] + [res[m]["blobs"]["all"]["not_a_known_plane"]]
        ax.bar(x + (i - (len(models) - 1) / 2) * w, vals, w, label=Path(m).name)
    ax.set_xticks(x, kinds + ["old blobs"], rotation=30, fontsize=8)
    ax.set_ylabel('shown "not a known plane"')
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Phantom 'other' scenes by kind (right: the old blob scenes)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="default")
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/other")
    args = ap.parse_args()
    import torch

    from pcbm.models import load_model

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    contact_sheet("blobs", out / "other_before.png")
    contact_sheet("rich", out / "other_after.png")
    res = {}
    for ref in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, _ = load_model(ref)
        res[ref] = {mode: evaluate(model, mode, args.n) for mode in ("blobs", "rich")}
        print(ref, json.dumps({m: v["all"] for m, v in res[ref].items()}))
    meta = {"command": "python bench/bench_other.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
            "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1) + "\n")
    kinds = [k for k in next(iter(res.values()))["rich"] if k != "all"]
    lines = ["| model | old blobs | rich, all | " + " | ".join(kinds) + " |", "|---|---|---|" + "---|" * len(kinds)]
    for ref, r in res.items():
        cells = [f"{r['blobs']['all']['not_a_known_plane']:.0%}", f"{r['rich']['all']['not_a_known_plane']:.0%}"]
        for k in kinds:
            c = r["rich"][k]
            wrong = [(p, n) for p, n in c["calls"].items() if p != "other"]
            top = f" ({wrong[0][0]} {wrong[0][1]}/{c['n']})" if wrong and c["not_a_known_plane"] < 0.9 else ""
            cells.append(f"{c['not_a_known_plane']:.0%}{top}")
        lines.append(f"| {ref} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text(json.dumps(meta) + "\n\nShare shown \"not a known plane\" (phantom):\n\n"
                                    + "\n".join(lines) + "\n")
    plot(res, out / "other.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
