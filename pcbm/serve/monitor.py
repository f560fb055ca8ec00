"""``pcbm monitor WINDOW.json --out DIR``: a drift report from a saved window of ``pcbm serve``.

The window (``GET /v1/monitor/window`` or ``pcbm serve --window-out FILE``) carries the recent
predictions' concept values and decisions and the package's reference statistics, so the report
needs neither the server nor the model. ``DIR`` gets ``drift.html`` (self-contained), ``drift.md``,
``drift.json`` (the figures) and the plots as PNG: PSI per property concept, the plane mix, and the
window's values against the reference for the concepts that drifted most.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
from pcbm.errors import InputError
from pcbm.serve.drift import PSI_MODERATE, PSI_SIGNIFICANT, decile_cdf, drift_summary
from pcbm.serve.window import window_arrays


def load_window(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved window; InputError naming the file when it is missing or not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"window file not found: {p}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read window {p}: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "pcbm serve window":
        raise InputError(f"{p} is not a pcbm serve window (save one from GET /v1/monitor/window or --window-out)")
    if not doc.get("reference"):
        raise InputError(f"{p}: the window has no reference statistics (the package had no reference.json)")
    check_reference(doc["reference"], str(p))
    return doc


def _numbers(value: Any, where: str, n: int | None = None, increasing: bool = False) -> None:
    ok = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
                                         for v in value)
    if not ok or (n is not None and len(value) != n) or len(value) < 2:
        raise InputError(f"{where} must be a list of {n or 'at least 2'} finite numbers")
    if increasing and any(b < a for a, b in zip(value, value[1:])):  # noqa: B905 - shifted by one
        raise InputError(f"{where} must not decrease")


def check_reference(ref: Any, where: str) -> None:
    """The reference statistics of a window, checked field by field: one line naming the bad one.

    Example:
        >>> check_reference({"concepts": {"hc_mm": {"deciles": [1, "x"]}}}, "w.json")
        Traceback (most recent call last):
        ...
        pcbm.errors.InputError: w.json: reference concepts.hc_mm.deciles must be a list of 11 finite numbers
    """
    if not isinstance(ref, dict):
        raise InputError(f"{where}: the reference statistics must be an object, got {type(ref).__name__}")
    concepts = ref.get("concepts") or {}
    mix = ref.get("plane_mix") or {}
    if not isinstance(concepts, dict):
        raise InputError(f"{where}: reference concepts must be an object of concept entries")
    if not isinstance(mix, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
                                            and v >= 0 for v in mix.values()):
        raise InputError(f"{where}: reference plane_mix must map planes to shares >= 0")
    for name, entry in concepts.items():
        at = f"{where}: reference concepts.{name}"
        if not isinstance(entry, dict):
            raise InputError(f"{at} must be an object (deciles, histogram, mean)")
        if entry.get("deciles"):
            _numbers(entry["deciles"], f"{at}.deciles", n=11, increasing=True)
        hist = entry.get("histogram")
        if hist:
            if not isinstance(hist, dict):
                raise InputError(f"{at}.histogram must be an object with edges and counts")
            _numbers(hist.get("edges"), f"{at}.histogram.edges", increasing=True)
            _numbers(hist.get("counts"), f"{at}.histogram.counts", n=len(hist["edges"]) - 1)
        for key in ("mean", "applicable_share"):
            v = entry.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise InputError(f"{at}.{key} must be a number, got {v!r}")


def _plots(summary: dict[str, Any], values: np.ndarray, planes: np.ndarray, reference: dict[str, Any],
           folder: Path, top: int) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    names = [n for n in PROPERTY_CONCEPT_NAMES if summary["concepts"][n]["psi"] is not None]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.28 * len(names) + 1)))
    psis = [summary["concepts"][n]["psi"] for n in names]
    colours = ["#2a9d8f" if v < PSI_MODERATE else "#e9c46a" if v < PSI_SIGNIFICANT else "#e76f51" for v in psis]
    ax.barh(names, psis, color=colours)
    for x in (PSI_MODERATE, PSI_SIGNIFICANT):
        ax.axvline(x, ls="--", c="grey", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("PSI (window vs reference)")
    ax.set_title(f"Property concept drift, {summary['n']} predictions")
    fig.tight_layout()
    fig.savefig(folder / "psi.png", dpi=110)
    plt.close(fig)
    out.append(("psi.png", "PSI per property concept (dashed: 0.1 moderate, 0.25 significant)"))

    mix = summary["plane_mix"]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    x = np.arange(len(PLANE_NAMES))
    ax.bar(x - 0.2, [reference.get("plane_mix", {}).get(p, 0) for p in PLANE_NAMES], 0.4, label="reference")
    ax.bar(x + 0.2, [mix["window"][p] or 0 for p in PLANE_NAMES], 0.4, label="window")
    ax.set_xticks(x, [p.replace("_", "\n") for p in PLANE_NAMES], fontsize=8)
    ax.set_ylabel("share of predictions")
    psi_txt = "n/a (too few)" if mix["psi"] is None else f"{mix['psi']:.3f}"
    ax.set_title(f"Plane mix, PSI {psi_txt}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "plane_mix.png", dpi=110)
    plt.close(fig)
    out.append(("plane_mix.png", "Predicted plane mix: window vs reference"))

    worst = sorted(names, key=lambda n: -summary["concepts"][n]["psi"])[:top]
    if worst:
        fig, axes = plt.subplots(1, len(worst), figsize=(3.2 * len(worst), 2.8), squeeze=False)
        for ax, name in zip(axes[0], worst, strict=False):
            col = values[:, PROPERTY_CONCEPT_NAMES.index(name)]
            col = np.sort(col[np.isfinite(col)])
            ax.step(col, np.arange(1, len(col) + 1) / len(col), where="post", label="window")
            deciles = reference["concepts"][name]["deciles"]
            grid = np.linspace(min(deciles[0], col[0]), max(deciles[-1], col[-1]), 200)
            ax.plot(grid, decile_cdf(deciles)(grid), label="reference")
            ax.set_title(f"{name}\nPSI {summary['concepts'][name]['psi']:.3f}", fontsize=9)
            ax.set_ylim(0, 1)
        axes[0][0].set_ylabel("CDF")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "concepts.png", dpi=110)
        plt.close(fig)
        out.append(("concepts.png", "Window vs reference CDF of the most drifted concepts (KS compares these)"))
    return out


def _table(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for n in PROPERTY_CONCEPT_NAMES:
        c = summary["concepts"][n]

        def f(v: Any, fmt: str) -> str:
            return "—" if v is None else format(v, fmt)
        rows.append([n, str(c["n"]), f(c["psi"], ".3f"), c["level"] or "—", f(c["ks_statistic"], ".3f"),
                     f(c["ks_pvalue"], ".2g"), f(c["mean"], ".3f"), f(c["reference_mean"], ".3f")])
    return rows


HEAD = ["concept", "n", "PSI", "level", "KS D", "KS p", "mean", "reference mean"]


def render_monitor_report(doc: dict[str, Any], out: str | os.PathLike[str], overwrite: bool = False,
                          top: int = 4) -> Path:
    """Write the drift report of window ``doc`` into the folder ``out`` (see the module docstring)."""
    from pcbm._io import staged_dir

    reference = doc["reference"]
    planes, values = window_arrays(doc)
    summary = drift_summary(reference, planes, values)
    model = doc.get("model") or {}
    with staged_dir(out, overwrite=overwrite) as tmp:
        plots = _plots(summary, values, planes, reference, tmp, top)
        from pcbm._io import jsonable

        (tmp / "drift.json").write_text(json.dumps(jsonable({"model": model, "saved": doc.get("saved"), **summary}),
                                                   indent=1, allow_nan=False) + "\n")  # NaN/inf: null
        mix = summary["plane_mix"]
        lead = (f"Model {model.get('name', '?')} (sha256 {str(model.get('sha256') or '?')[:12]}), window of "
                f"{summary['n']} predictions saved {doc.get('saved', '?')}, against {reference.get('n', '?')} "
                f"reference images ({', '.join(reference.get('data', {}))}). Plane mix PSI: "
                f"{'n/a' if mix['psi'] is None else format(mix['psi'], '.3f')} ({mix['level'] or 'too few'}); "
                f"largest concept PSI: {'n/a' if summary['max_concept_psi'] is None else format(summary['max_concept_psi'], '.3f')}"
                f" ({summary['max_concept_level'] or 'too few'}).")
        note = (f"PSI: < {PSI_MODERATE} stable, {PSI_MODERATE}-{PSI_SIGNIFICANT} moderate, > {PSI_SIGNIFICANT} "
                f"significant. {summary['method']}. Concepts with fewer than {summary['min_n']} applicable values "
                "are not scored; lengths are scored only for predictions with a pixel spacing.")
        rows = _table(summary)
        md = ["# Drift report", "", lead, "", note, ""]
        md += [f"![{cap}]({name})" for name, cap in plots] + [""]
        md += ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)] + ["| " + " | ".join(r) + " |" for r in rows]
        (tmp / "drift.md").write_text("\n".join(md) + "\n")
        imgs = "".join(f"<figure><img src='data:image/png;base64,{base64.b64encode((tmp / n).read_bytes()).decode()}' "
                       f"alt='{html.escape(c)}'><figcaption>{html.escape(c)}</figcaption></figure>" for n, c in plots)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pcbm drift report</title><style>"
                "body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
                "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
                f"<h1>Drift report</h1><p>{html.escape(lead)}</p><p><small>{html.escape(note)}</small></p>{imgs}"
                f"<table><tr>{''.join(f'<th>{h}</th>' for h in HEAD)}</tr>{trs}</table></body></html>")
        (tmp / "drift.html").write_text(page)
    return Path(out)
