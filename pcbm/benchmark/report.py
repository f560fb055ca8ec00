"""The study's table and plots, built from the fold files alone (so a report can be redrawn any time).

Per backbone and method: macro-F1, balanced accuracy and accuracy as mean ± std over folds, and a
95 % bootstrap CI over *subjects* of the pooled out-of-fold predictions; per external set the same
scores (mean ± std over the folds' models; CI over its subjects with every fold's predictions pooled);
paired tests between backbones per method (exact McNemar on the pooled out-of-fold predictions;
Friedman + Nemenyi on per-fold macro-F1 when three or more backbones finished) and PCBM vs its
concept-free twin per backbone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open, atomic_path, jsonable
from pcbm.benchmark.stats import METRICS, bootstrap_ci, friedman_nemenyi, mcnemar_table, scores


def _load(out: Path) -> tuple[dict, dict, dict]:
    splits = json.loads((out / "splits.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    runs: dict[tuple[str, str], list[dict]] = {}
    for b in cfg["backbones"]:
        for p in cfg["protocols"]:
            for m in {"linear": ["linear"], "finetune": ["finetune"], "pcbm": ["pcbm", "pcbm_free"]}[p]:
                docs = [out / "folds" / b / m / f"fold{k}.json" for k in range(cfg["folds"])]
                if all(d.is_file() for d in docs):
                    runs[(b, m)] = [json.loads(d.read_text()) for d in docs]
    return splits, cfg, runs


def summarise(out: Path) -> dict[str, Any]:
    """Every figure of the report as one dict (also written as ``results.json``)."""
    splits, cfg, runs = _load(out)
    labels = np.asarray(splits["labels"], dtype=object)
    subjects = np.asarray(splits["subjects"], dtype=object)
    classes = splits["classes"]
    rows, pooled = [], {}
    for (b, m), docs in runs.items():
        if "unsupported" in docs[0]:
            rows.append({"backbone": b, "method": m, "unsupported": docs[0]["unsupported"]})
            continue
        per_fold = [scores(labels[d["test_idx"]], d["pred"], classes) for d in docs]
        idx = np.concatenate([d["test_idx"] for d in docs])
        pred = np.concatenate([np.asarray(d["pred"], dtype=object) for d in docs])
        order = np.argsort(idx)
        pooled[(b, m)] = pred[order]
        ci = bootstrap_ci(labels[idx], pred, subjects[idx], classes, cfg["n_boot"], cfg["seed"])
        row: dict[str, Any] = {"backbone": b, "method": m, "n": int(len(idx)),
                               "seconds": float(sum(d["seconds"] for d in docs))}
        point = scores(labels[idx], pred, classes)
        for met in METRICS:
            v = [f[met] for f in per_fold]
            row.update({f"{met}_mean": float(np.mean(v)), f"{met}_std": float(np.std(v, ddof=1)),
                        f"{met}_pooled": point[met], f"{met}_ci_lo": ci[met][0], f"{met}_ci_hi": ci[met][1]})
        row["fold_macro_f1"] = [f["macro_f1"] for f in per_fold]
        for name, o in splits["ood"].items():
            mapping, set_classes = o["mapping"], o["classes"]
            truth = [mapping.get(t, t) if o["level"] == "group" else t for t in o["labels"]]
            fs = [scores(truth, [mapping.get(p, p) for p in d["ood"][name]], set_classes) for d in docs]
            all_t = truth * len(docs)
            all_p = [mapping.get(p, p) for d in docs for p in d["ood"][name]]
            oci = bootstrap_ci(all_t, all_p, o["subjects"] * len(docs), set_classes, cfg["n_boot"], cfg["seed"])
            opt = scores(all_t, all_p, set_classes)
            for met in METRICS:
                v = [f[met] for f in fs]
                row.update({f"ood:{name}:{met}_mean": float(np.mean(v)), f"ood:{name}:{met}_std": float(np.std(v, ddof=1)),
                            f"ood:{name}:{met}_pooled": opt[met],
                            f"ood:{name}:{met}_ci_lo": oci[met][0], f"ood:{name}:{met}_ci_hi": oci[met][1]})
        cost_path = out / "costs" / f"{b}.json"
        if cost_path.is_file():
            c = json.loads(cost_path.read_text())
            row.update(params_m=c["params_m"], gflops=c["gflops"], images_per_s=c["images_per_s"],
                       joules_per_image_est=c["joules_per_image_est"])
        rows.append(row)
    return {"config": cfg, "classes": classes, "ood": splits["ood"], "rows": rows,
            "tests": _tests(cfg, labels, rows, pooled)}


def _tests(cfg: dict, labels: np.ndarray, rows: list[dict], pooled: dict) -> dict[str, Any]:
    tests: dict[str, Any] = {"mcnemar": [], "friedman": {}}
    methods = dict.fromkeys(r["method"] for r in rows)
    for m in methods:
        done = [r for r in rows if r["method"] == m and "unsupported" not in r]
        for a, b in combinations(done, 2):
            n_a, n_b, p = mcnemar_table(labels, pooled[(a["backbone"], m)], pooled[(b["backbone"], m)])
            tests["mcnemar"].append({"method": m, "a": a["backbone"], "b": b["backbone"], "only_a_right": n_a,
                                     "only_b_right": n_b, "p": p})
        if len(done) >= 2:
            table = np.array([r["fold_macro_f1"] for r in done]).T  # folds × backbones
            fn = friedman_nemenyi(table)
            tests["friedman"][m] = {"backbones": [r["backbone"] for r in done], **fn}
    for b in dict.fromkeys(r["backbone"] for r in rows):
        if (b, "pcbm") in pooled and (b, "pcbm_free") in pooled:
            n_a, n_b, p = mcnemar_table(labels, pooled[(b, "pcbm")], pooled[(b, "pcbm_free")])
            tests["mcnemar"].append({"method": "pcbm vs pcbm_free", "a": f"{b} pcbm", "b": f"{b} pcbm_free",
                                     "only_a_right": n_a, "only_b_right": n_b, "p": p})
    return tests


def write_report(out: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """``results.json``, ``results.csv``, ``results.md``, ``bars_macro_f1.png`` and ``id_vs_ood.png`` in ``out``."""
    from pcbm.benchmark.protocols.common import is_main_process

    res = summarise(out)
    if not is_main_process():
        return res
    with atomic_open(out / "results.json") as f:
        json.dump(jsonable(res), f, indent=1, allow_nan=False)  # NaN/inf: null
    done = [r for r in res["rows"] if "unsupported" not in r]
    keys = list(dict.fromkeys(k for r in res["rows"] for k in r if k != "fold_macro_f1"))
    with atomic_open(out / "results.csv", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in res["rows"]:
            w.writerow({k: r.get(k, "") for k in keys})
    with atomic_open(out / "results.md") as f:
        f.write(markdown(res))
    if done:
        _plots(out, res)
    say(f"results: {out / 'results.md'} ({len(done)} backbone × method rows)")
    return res


def _f(r: dict, key: str) -> str:
    pooled = r.get(key + "_pooled")
    return (f"{r[key + '_mean']:.3f} ± {r[key + '_std']:.3f}" + (f"; {pooled:.3f}" if pooled is not None else "")
            + f" [{r[key + '_ci_lo']:.3f}, {r[key + '_ci_hi']:.3f}]")


def markdown(res: dict[str, Any]) -> str:
    """The results table, the class mappings and the paired tests as Markdown."""
    cfg = res["config"]
    lines = [f"# Backbone study: `{cfg['data']}`", "",
             f"{cfg['folds']} patient-level stratified folds (seed {cfg['seed']}); protocols {', '.join(cfg['protocols'])}; "
             f"{cfg['max_steps']} steps per fold for training protocols; input "
             f"{cfg['image_size'] or 'each backbone at its authors size'} px. In-domain cells: mean ± std over "
             f"folds; the pooled out-of-fold score [its 95 % CI, bootstrap over subjects, {cfg['n_boot']} "
             "resamples]. Out-of-domain cells: mean ± std over the folds' models; the score of every fold's "
             "predictions pooled [its 95 % CI over the set's subjects]. Cost columns: the encoder alone at the input size, batch 16, "
             f"this machine; energy is an **estimate** (CPU s/image × {cfg['watts_per_core']} W per core).", "",
             "| backbone | method | macro-F1 | balanced acc. | accuracy | params (M) | GFLOPs | img/s | J/img (est.) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if "unsupported" in r:
            lines.append(f"| {r['backbone']} | {r['method']} | not run: {r['unsupported']} | | | | | | |")
            continue
        lines.append(f"| {r['backbone']} | {r['method']} | {_f(r, 'macro_f1')} | {_f(r, 'balanced_accuracy')} | "
                     f"{_f(r, 'accuracy')} | {r.get('params_m', float('nan')):.2f} | {r.get('gflops', float('nan')):.3f} | "
                     f"{r.get('images_per_s', float('nan')):.0f} | {r.get('joules_per_image_est', float('nan')):.3f} |")
    for name, o in res["ood"].items():
        absent = [c for c, v in o["mapping"].items() if v not in o["classes"]]
        lines += ["", f"## Out of domain: `{o['spec']}`", "",
                  f"Scored at {o['level']} level on its classes ({', '.join(o['classes'])}); "
                  + (f"model classes mapped: {', '.join(f'{c}→{v}' for c, v in o['mapping'].items() if c != v)}; "
                     if o["level"] == "group" else "")
                  + (f"model classes it lacks (a prediction of one is an error): {', '.join(absent)}." if absent else ""),
                  "", "| backbone | method | macro-F1 | balanced acc. | accuracy |", "|---|---|---|---|---|"]
        for r in res["rows"]:
            if "unsupported" not in r:
                p = f"ood:{name}:"
                lines.append(f"| {r['backbone']} | {r['method']} | {_f(r, p + 'macro_f1')} | "
                             f"{_f(r, p + 'balanced_accuracy')} | {_f(r, p + 'accuracy')} |")
    t = res["tests"]
    lines += ["", "## Paired tests", "", "Exact McNemar on pooled out-of-fold predictions (in domain):", "",
              "| method | A | B | only A right | only B right | p |", "|---|---|---|---|---|---|"]
    lines += [f"| {m['method']} | {m['a']} | {m['b']} | {m['only_a_right']} | {m['only_b_right']} | {m['p']:.3g} |"
              for m in t["mcnemar"]]
    for m, fr in t["friedman"].items():
        ranks = ", ".join(f"{b} {r:.2f}" for b, r in zip(fr["backbones"], fr["mean_ranks"], strict=True))
        head = (f"Friedman χ² {fr['statistic']:.2f}, p {fr['p']:.3g}" if fr["p"] is not None
                else "Friedman undefined for two backbones (McNemar above)")
        lines += ["", f"**{m}** (per-fold macro-F1): {head}; mean ranks {ranks}; Nemenyi critical difference "
                  f"{fr['cd']:.2f} (α 0.05)."]
    return "\n".join(lines) + "\n"


def _plots(out: Path, res: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["rows"] if "unsupported" not in r]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(backbones) * max(1, len(methods)) / 2, 3.6))
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for i, b in enumerate(backbones):
            r = next((r for r in rows if r["backbone"] == b and r["method"] == m), None)
            if r:
                xs.append(i + j * width)
                ys.append(r["macro_f1_pooled"])
                lo.append(r["macro_f1_pooled"] - r["macro_f1_ci_lo"])
                hi.append(r["macro_f1_ci_hi"] - r["macro_f1_pooled"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=m)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(backbones))], backbones)
    ax.set_ylabel("macro-F1 (pooled, 95 % CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("in domain", fontsize=9)
    fig.tight_layout()
    with atomic_path(out / "bars_macro_f1.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    if not res["ood"]:
        return
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    markers, colours = "osD^v<>", plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(res["ood"]):
        ax.scatter([], [], marker=markers[k % len(markers)], color="k", label=f"OOD: {name}")
        for r in rows:
            x, y = r["macro_f1_mean"], r[f"ood:{name}:macro_f1_mean"]
            ax.scatter(x, y, marker=markers[k % len(markers)], color=colours[methods.index(r["method"]) % len(colours)])
            ax.annotate(r["backbone"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    for j, m in enumerate(methods):
        ax.scatter([], [], marker="s", color=colours[j % len(colours)], label=m)
    ax.plot([0, 1], [0, 1], "k--", lw=0.6)
    ax.set_xlabel("in-domain macro-F1 (mean over folds)")
    ax.set_ylabel("out-of-domain macro-F1 (mean over folds)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "id_vs_ood.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
