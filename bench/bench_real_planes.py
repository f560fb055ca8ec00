"""Real scans of every plane family: PCBMs and SonoNet-16 on held-out subjects of the shared real plane sets.

    .venv/bin/python bench/bench_real_planes.py [--models default,sononet16,RUN…] [--out bench/real_planes]
        [--split val] [--val-fraction 0.3] [--limit N]

Every figure is on **real** images except the phantom column. The sets and their held-out sides (the
split the training recipe leaves out: subject-level, ``val_fraction=0.3``, split seed 0, stratified by
plane group in FETAL_PLANES_DB and by centre in the African set — ``SampleDataset.split_indices``):

- ``fpdb``: ``fetal_planes_db:../shared/data/fpdb_subset?split=val&val_fraction=0.3`` (six groups: head,
  abdomen, femur, thorax, cervix, other; the head sub-planes TT / TV / TC where labelled);
- ``african``: ``african:../shared/data/african?split=val&val_fraction=0.3`` (four groups, four centres;
  brain images carry no sub-plane);
- ``all``: both together, scored on the six groups.

Per model and set: plane-group accuracy and macro-F1 **as deployed** (an abstention — status "not a
known plane" — counts as "other", as a sonographer would read it) and of the raw top group; the
head sub-plane accuracy (FETAL_PLANES_DB heads); the abstention rate and the share abstained as
"unlike the training data"; the expected calibration error of the group probabilities; and, for PCBMs,
**concept presence accuracy**: each "<structure> visible" property the plane label implies
(``pcbm.concepts.implied_properties``: a femur image shows a femur and no heart) against the model's
property value. ``--split all`` scores every image (not clean for a model trained on the sets).
The phantom column is plane macro-F1 on ``phantom:n=400,seed=123,style=mix`` (the model card's held-out seed).

Writes ``results.json``, ``results.md`` and ``real_planes.png`` (group confusion matrices) in ``--out``.
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
from bench_real import GROUPS, PHANTOM, _group_probs, _run  # noqa: E402

SETS = {"fpdb": "fetal_planes_db:../shared/data/fpdb_subset", "african": "african:../shared/data/african"}


def _spec(base: str, split: str, val_fraction: float) -> str:
    return base if split == "all" else f"{base}?split={split}&val_fraction={val_fraction}"


def _truth(samples) -> list[str]:  # noqa: ANN001
    from pcbm.training.data import sample_group

    return [sample_group(s) or "other" for s in samples]


def _macro_f1(truth: list[str], called: list[str], classes: list[str]) -> float:
    import torch
    from torchmetrics.functional.classification import multiclass_f1_score

    idx = {c: i for i, c in enumerate(GROUPS)}
    t = torch.tensor([idx[x] for x in truth])
    p = torch.tensor([idx[x] for x in called])
    present = torch.tensor([idx[c] for c in classes])
    f1 = multiclass_f1_score(p, t, num_classes=len(GROUPS), average=None)
    return float(f1[present].mean())  # over the groups the set labels (a group never labelled is not scored)


def _score(samples: list, r: dict) -> dict:
    from pcbm.concepts import PROPERTY_CONCEPT_NAMES
    from pcbm.reliability import REASON
    from pcbm.training.calibration import expected_calibration_error
    from pcbm.training.data import implied_labels

    truth = _truth(samples)
    gp = _group_probs(r["probs"])
    top = [GROUPS[int(k)] for k in gp.argmax(1)]
    abstained = [s == "not_a_known_plane" for s in r["status"]]
    deployed = ["other" if a else g for a, g in zip(abstained, top, strict=True)]
    classes = [g for g in GROUPS if g in truth]
    out = {
        "n": len(samples),
        "groups": {g: truth.count(g) for g in classes},
        "accuracy": float(np.mean([d == t for d, t in zip(deployed, truth, strict=True)])),
        "macro_f1": _macro_f1(truth, deployed, classes),
        "accuracy_top": float(np.mean([d == t for d, t in zip(top, truth, strict=True)])),
        "macro_f1_top": _macro_f1(truth, top, classes),
        "abstained": float(np.mean(abstained)),
        "unlike_training": float(np.mean([x == REASON for x in r["reason"]])),
        "ece_group": expected_calibration_error(gp, np.array([GROUPS.index(t) for t in truth])),
        "confusion": {t: {c: int(sum(1 for a, b in zip(truth, deployed, strict=True) if a == t and b == c))
                          for c in GROUPS} for t in classes},
        "per_group_recall": {g: float(np.mean([d == g for d, t in zip(deployed, truth, strict=True) if t == g]))
                             for g in classes},
    }
    from pcbm.concepts import PLANE_NAMES

    sub = [(s.plane, PLANE_NAMES[int(r["probs"][j].argmax())]) for j, s in enumerate(samples)
           if s.plane in ("trans_thalamic", "trans_ventricular", "trans_cerebellar")]
    if sub:
        out["head_subplane_accuracy"] = float(np.mean([a == b for a, b in sub]))
        out["head_subplane_n"] = len(sub)
    if r["props"] is not None:
        right, n, per = 0, 0, {}
        for j, s in enumerate(samples):
            for name, want in implied_labels(s)[2].items():
                got = float(r["props"][j, PROPERTY_CONCEPT_NAMES.index(name)]) >= 0.5
                ok = got == (want >= 0.5)
                right += ok
                n += 1
                a = per.setdefault(f"{name}={int(want)}", [0, 0])
                a[0] += ok
                a[1] += 1
        out["concept_presence_accuracy"] = right / n if n else None
        out["concept_presence_n"] = n
        out["concept_presence"] = {k: round(v[0] / v[1], 3) for k, v in sorted(per.items())}
    if "centre" in samples[0].meta:
        out["per_centre_accuracy"] = {c: float(np.mean([d == t for d, t, s in zip(deployed, truth, samples, strict=True)
                                                         if s.meta["centre"] == c]))
                                      for c in sorted({s.meta["centre"] for s in samples})}
    return out


def evaluate_model(ref: str, split: str, val_fraction: float, limit: int | None, phantom: bool) -> dict:
    import torch
    from torchmetrics.functional.classification import multiclass_f1_score

    from pcbm.concepts import PLANE_NAMES
    from pcbm.data import open_dataset
    from pcbm.models import load_model

    model, info = load_model(ref)
    res: dict = {"model": ref, "trained_on": info.get("data") if isinstance(info, dict) else None}
    every, runs = [], {}
    for name, base in SETS.items():
        ds = open_dataset(_spec(base, split, val_fraction))
        n = len(ds) if limit is None else min(limit, len(ds))
        samples = [ds[i] for i in range(n)]
        r = _run(model, [s.image for s in samples])
        res[name] = _score(samples, r)
        every += samples
        runs[name] = r
    merged = {k: sum((runs[n][k] for n in SETS), []) for k in ("status", "reason")}
    merged["probs"] = np.concatenate([runs[n]["probs"] for n in SETS])
    has_props = all(runs[n]["props"] is not None for n in SETS)
    merged["props"] = np.concatenate([runs[n]["props"] for n in SETS]) if has_props else None
    res["all"] = _score(every, merged)
    if phantom:
        ph = open_dataset(PHANTOM)
        phs = [ph[i] for i in range(len(ph) if limit is None else min(limit, len(ph)))]
        phr = _run(model, [s.image for s in phs])
        labels = torch.tensor([PLANE_NAMES.index(s.plane) for s in phs])
        res["phantom_f1"] = float(multiclass_f1_score(torch.tensor(phr["probs"].argmax(1)), labels,
                                                      num_classes=len(PLANE_NAMES), average="macro"))
    return res


def _f(v, pct: bool = False) -> str:  # noqa: ANN001
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"


def table(results: list[dict]) -> str:
    head = ("| model | set | n | group acc. (deployed) | group macro-F1 (deployed) | macro-F1 (top group) | head sub-plane acc. | "
            "concept presence acc. | abstained (unlike training) | ECE group | phantom F1 |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        for name in (*SETS, "all"):
            x = r[name]
            sub = f"{_f(x.get('head_subplane_accuracy'))} (n {x['head_subplane_n']})" if "head_subplane_n" in x else "—"
            lines.append(
                f"| {r['model']} | {name} | {x['n']} | {_f(x['accuracy'])} | **{_f(x['macro_f1'])}** | {_f(x['macro_f1_top'])} | "
                f"{sub} | {_f(x.get('concept_presence_accuracy'))} | {_f(x['abstained'], True)} ({_f(x['unlike_training'], True)}) | "
                f"{_f(x['ece_group'])} | {_f(r.get('phantom_f1')) if name == 'all' else ''} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        conf = r["all"]["confusion"]
        rows = list(conf)
        m = np.array([[conf[t][c] for c in GROUPS] for t in rows], float)
        norm = m / m.sum(1, keepdims=True).clip(min=1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(rows)):
            for j in range(len(GROUPS)):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(GROUPS)), GROUPS, rotation=45, fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("called (abstention = other)")
        ax.set_title(f"{Path(r['model']).name}: macro-F1 {r['all']['macro_f1']:.2f}", fontsize=9)
    fig.suptitle("Real held-out images (FETAL_PLANES_DB subset + African centres): plane groups")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="default,sononet16")
    ap.add_argument("--out", default="bench/real_planes")
    ap.add_argument("--split", default="val", choices=("val", "train", "all"))
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-phantom", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [evaluate_model(m.strip(), args.split, args.val_fraction, args.limit, not args.no_phantom)
               for m in args.models.split(",") if m.strip()]
    meta = {"command": "python bench/bench_real_planes.py " + " ".join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    md = table(results)
    (out / "results.md").write_text(f"{meta}\n\n{md}\n")
    plot(results, out / "real_planes.png")
    print(md)


if __name__ == "__main__":
    main()
