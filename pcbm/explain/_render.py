"""Renderers of a :class:`~pcbm.explain.report.ConceptReport`: HTML, Markdown and a matplotlib figure."""

from __future__ import annotations

import html as _html
from typing import TYPE_CHECKING, Any

from pcbm.concepts import get_concept, get_visual_concept
from pcbm.explain._draw import data_uri, fit_width, heatmap_overlay, hex_color, overlay_masks

if TYPE_CHECKING:
    from pcbm.explain.report import ConceptReport, CriterionRow

_STATUS_COLOR = {"standard": "#1f8a4c", "close_to_standard": "#c77c02", "not_a_known_plane": "#6b7280"}
_MODEL_KEYS = ("name", "config", "run", "path", "trained_on", "data", "dataset", "epochs", "date", "created",
               "git", "metrics", "notes")


def _measurement_row(m: Any, recorded: dict[str, float] | None = None) -> str:
    """A measurement's table row; an unreliable one says why and shows its number struck through.
    With ``recorded`` (the dataset's values) a last cell gives the recorded value, or a dash."""
    q = "—" if m.quality is None else f"{m.quality:.2f}"
    rec = "" if recorded is None else (f"<td>{recorded[m.name]:.1f} mm</td>" if m.name in recorded else "<td>—</td>")
    if m.reliable:
        return f"<tr><td>{_e(m.label)}</td><td>{m.value:.1f} {_e(m.unit)}</td><td>{q}</td>{rec}</tr>"
    return (f"<tr class='fail'><td>{_e(m.label)}</td><td><b>unreliable</b> <s>{m.value:.1f} {_e(m.unit)}</s>"
            f"<br><span class='small'>{_e(m.reason)}</span></td><td>{q}</td>{rec}</tr>")


def _e(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _value(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "fail", None: "unknown"}[passed]


def _present(report: ConceptReport) -> list[str]:
    return [n for n, m in report.masks.items() if (m > 0.5).any()]


def _model_items(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows; a dict value becomes one line per entry (nested dicts as 'k v, k v')."""
    keys = [k for k in _MODEL_KEYS if k in model] + [k for k in model if k not in _MODEL_KEYS]
    out = []
    for k in keys:
        v = model[k]
        if isinstance(v, dict):
            lines = [f"{a}: " + (", ".join(f"{m} {_short(x)}" for m, x in b.items()) if isinstance(b, dict) else _short(b))
                     for a, b in v.items()]
            v = "\n".join(_short(line, 300) for line in lines)
        elif isinstance(v, (list, tuple)):
            v = ", ".join(map(str, v))
        out.append((k.replace("_", " "), v if "\n" in str(v) else _short(v, 300)))
    return out


def _short(v: Any, n: int = 60) -> str:
    s = f"{v:.4g}" if isinstance(v, float) else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


_CSS = """
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2933}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .5em;border-bottom:1px solid #d9dde3}
.card{background:#fff;border-radius:10px;padding:14px 16px;margin:12px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card.caution{background:#fff4e0;border-left:6px solid #d97706}
.badge{display:inline-block;padding:.2em .7em;border-radius:999px;color:#fff;font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:14px}.row>figure{flex:1 1 320px;margin:0}
figure img{width:100%;height:auto;border-radius:6px;background:#000;display:block}
figcaption{font-size:.85em;color:#52606d;margin-top:4px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{font-size:.85em;color:#52606d;font-weight:600}
.pass{color:#1f8a4c;font-weight:700}.fail{color:#c0392b;font-weight:700}.unknown{color:#6b7280}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:3px;margin-right:4px;vertical-align:-1px;border:1px solid #0003}
.legend span.item{display:inline-block;margin:2px 10px 2px 0;font-size:.9em}
.bar{display:inline-block;height:.7em;border-radius:2px}.pos{background:#2e9d5b}.neg{background:#d1495b}
.small{font-size:.85em;color:#52606d}.missing li{margin:.2em 0}
.wrap{overflow-x:auto}.nw{white-space:nowrap}
"""


def _swatch(name: str) -> str:
    try:
        c = get_visual_concept(name).color
    except KeyError:
        return ""
    return f'<span class="sw" style="background:{hex_color(c)}"></span>'


def _concept_value(report: ConceptReport, name: str) -> str:
    """What the decision layer read for ``name``: a probability, or a length as a share of the
    image's long side (what the weights multiply) — not a mm value presented as evidence."""
    if name in report.decision_inputs:
        x = report.decision_inputs[name]
        return f"{x:.3f} × long side" if getattr(get_concept(name), "unit", None) else f"{x:.2f}"
    v = report.properties.get(name)
    if v is None:
        return "n/a"
    unit = getattr(get_concept(name), "unit", None)
    return f"{v:.1f} {unit}" if unit else f"{v:.2f}"


def _contribution_note(report: ConceptReport, name: str, value: float) -> str:
    """Why a criterion that holds can still count against the plane (it is shared with a rival)."""
    met = {r.property for r in report.checklist if r.passed}
    if value < 0 and name in met:
        return ("criterion met; the decision layer still weighs it against this plane (it counts "
                "for another plane as well)")
    return ""


def _criterion_row(r: CriterionRow) -> str:
    rests = " ".join(f"<span class='nw'>{_swatch(s)}{_e(s)}</span>" for s in r.derived_from) or "whole image"
    flag = " <span class='small'>(set by you)</span>" if r.intervened else ""
    return (f"<tr><td><b>{_e(r.describe())}</b>{flag}<div class='small'>{_e(r.wording)}</div></td>"
            f"<td>{_value(r.value)}</td><td class='{_verdict(r.passed)}'>{_verdict(r.passed)}</td><td>{rests}</td></tr>")


def html(report: ConceptReport) -> str:
    """A self-contained page (inline CSS, base64 PNG images, no scripts, no external assets)."""
    img = report.image
    overlay = data_uri(fit_width(overlay_masks(img, report.masks)))
    present = _present(report)
    legend = "".join(f"<span class='item'>{_swatch(n)}{_e(n)}</span>" for n in present) or "<span class='small'>no structure found</span>"
    figs = [f"<figure><img src='{overlay}' alt='image with the structures found'><figcaption class='legend'>"
            f"Structures found: {legend}</figcaption></figure>"]
    if report.heatmap is not None:
        heat = data_uri(fit_width(heatmap_overlay(img, report.heatmap)))
        figs.append(f"<figure><img src='{heat}' alt='attribution heatmap'><figcaption>Where the model looked for "
                    f"“{_e(report.plane)}” ({_e(report.heatmap_method or 'attribution')}; brighter = more "
                    f"influence)</figcaption></figure>")
    color = _STATUS_COLOR[report.status]
    probs = sorted(report.plane_probs.items(), key=lambda kv: -kv[1])[:4]
    prob_text = ", ".join(f"{_e(k)} {v:.0%}" for k, v in probs)
    if report.checklist:
        rows = "".join(_criterion_row(r) for r in report.checklist)
        checklist = ("<div class='wrap'><table><tr><th>criterion (ISUOG)</th><th>probability</th><th>result</th>"
                     f"<th>rests on</th></tr>{rows}</table></div>")
    else:
        checklist = "<p>This plane has no standard-plane criteria.</p>"
    if report.missing:
        items = "".join(f"<li><b>{_e(r.describe())}</b> — {_e(r.wording)}</li>" for r in report.missing_rows())
        missing = f"<ul class='missing'>{items}</ul>"
    elif report.status == "standard":
        missing = "<p class='pass'>Nothing: every criterion of the plane holds.</p>"
    else:
        missing = "<p>Not a known plane: no checklist applies.</p>"
    if report.measurements:
        rec = report.recorded or None
        mrows = "".join(_measurement_row(m, rec) for m in report.measurements)
        head = "<th>recorded</th>" if rec else ""
        measures = f"<table><tr><th>measurement</th><th>value</th><th>fit quality</th>{head}</tr>{mrows}</table>"
        if rec:
            measures += f"<p class='small'>Recorded values: {_e(report.recorded_source or 'the dataset')}.</p>"
    else:
        measures = "<p>No measurable structure (head, abdomen or femur) was found.</p>"
    vmax = max([abs(v) for _, v in report.contributions] or [1.0]) or 1.0
    crows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_concept_value(report, n)}</td><td>{v:+.2f}</td><td><span class='bar "
        f"{'pos' if v >= 0 else 'neg'}' style='width:{abs(v) / vmax * 100:.0f}px'></span>"
        + (f"<div class='small'>{_e(note)}</div>" if (note := _contribution_note(report, n, v)) else "")
        + "</td></tr>" for n, v in report.contributions)
    contrib = (f"<table><tr><th>concept</th><th>decision input</th><th>contribution (logit)</th><th></th></tr>"
               f"{crows}</table>"
               f"<p class='small'>Method: {_e(report.contribution_method)}. Positive values pushed the decision "
               f"towards {_e(report.plane)}.</p>") if crows else "<p>No contributions computed.</p>"
    model = "".join(f"<tr><th>{_e(k)}</th><td>{'<br>'.join(_e(x) for x in str(v).splitlines())}</td></tr>"
                    for k, v in _model_items(report.model))
    inter = ""
    if report.interventions:
        inter = "<div class='card'><h2>Corrections applied</h2><ul>" + "".join(
            f"<li>{_e(t)}</li>" for t in report.interventions) + "</ul></div>"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    cautions = ""
    if report.cautions:
        cautions = ("<div class='card caution' role='alert'><h2>Caution</h2><ul>"
                    + "".join(f"<li>{_e(c)}</li>" for c in report.cautions) + "</ul></div>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pcbm report — {_e(report.source or report.plane)}</title>
<style>{_CSS}</style></head>
<body><main>
<div class="card"><h1>{_e(_headline(report))}</h1>
<p><span class="badge" style="background:{color}">{_e(report.status_label)}</span>
&nbsp;confidence {report.confidence:.0%} <span class="small">({prob_text})</span></p>
<p class="small">Image: {_e(report.source)} · {img.shape[1]}×{img.shape[0]} px</p></div>
{cautions}
{inter}
<div class="card"><div class="row">{''.join(figs)}</div></div>
<div class="card"><h2>ISUOG checklist — {_e(report.plane_title)}</h2>{checklist}
<h2>Missing to be standard</h2>{missing}</div>
<div class="card"><h2>Measurements</h2>{measures}<p class="small">Pixel spacing: {_e(report.spacing_text)}.</p></div>
<div class="card"><h2>Concepts that contributed most</h2>{contrib}</div>
<div class="card"><h2>Model</h2><table>{model}</table>
{f'<ul class="small">{notes}</ul>' if notes else ''}
<p class="small">Made by pcbm. Model output for review by a qualified person; not a diagnosis.</p></div>
</main></body></html>
"""


def _headline(report: ConceptReport) -> str:
    if report.status_reason:
        return f"Not a known plane: {report.status_reason}"
    if report.status == "not_a_known_plane" and report.plane != "other":
        return f"Not a known plane (best guess: {report.plane_title})"
    return report.plane_title


def markdown(report: ConceptReport) -> str:
    """The report as Markdown tables."""
    lines = [f"# {_headline(report)}", "",
             f"**Status:** {report.status_label} · **confidence** {report.confidence:.0%} · image `{report.source}`", ""]
    if report.cautions:
        lines += ["> **Caution:** " + " ".join(report.cautions), ""]
    if report.interventions:
        lines += ["**Corrections applied:** " + "; ".join(report.interventions), ""]
    lines += ["## ISUOG checklist", ""]
    if report.checklist:
        lines += ["| criterion | probability | result | rests on |", "|---|---|---|---|"]
        lines += [f"| {r.describe()} | {_value(r.value)} | {_verdict(r.passed)} | {', '.join(r.derived_from) or 'image'} |"
                  for r in report.checklist]
    else:
        lines.append("This plane has no standard-plane criteria.")
    lines += ["", "## Missing to be standard", ""]
    lines += [f"- **{r.describe()}** — {r.wording}" for r in report.missing_rows()] or [
        "- nothing" if report.standard else "- not a known plane"]
    lines += ["", "## Measurements", ""]
    lines += [f"- {m}" + (f" (recorded {report.recorded[m.name]:.1f} mm)" if m.name in report.recorded else "")
              for m in report.measurements] or ["- none"]
    lines += ["", f"Pixel spacing: {report.spacing_text}.", "", "## Top contributing concepts", ""]
    lines += [f"- {n}: {v:+.2f}" for n, v in report.contributions] or ["- none"]
    lines += ["", f"Structures found: {', '.join(_present(report)) or 'none'}", "", "## Model", ""]
    lines += [f"- {k}: {v}".replace("\n", "; ") for k, v in _model_items(report.model)]
    return "\n".join(lines) + "\n"


def figure(report: ConceptReport) -> Any:
    """A matplotlib figure: overlay + legend, heatmap, checklist, contributions."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig = plt.figure(figsize=(12, 7.5), layout="constrained")
    gs = fig.add_gridspec(2, 3, height_ratios=[1.15, 1])
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(overlay_masks(report.image, report.masks))
    ax.set_title("structures found", fontsize=10)
    ax.axis("off")
    handles = [Patch(color=[c / 255 for c in get_visual_concept(n).color], label=n) for n in _present(report)]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.02), ncol=3, frameon=False)
    ax = fig.add_subplot(gs[0, 1])
    if report.heatmap is not None:
        ax.imshow(heatmap_overlay(report.image, report.heatmap))
        ax.set_title(f"attribution ({report.heatmap_method})", fontsize=10)
    ax.axis("off")
    ax = fig.add_subplot(gs[0, 2])
    ax.axis("off")
    status = "" if report.status == "not_a_known_plane" else f"{report.status_label}, "
    fig.suptitle(f"{_headline(report)} — {status}confidence {report.confidence:.0%}", fontsize=13, weight="bold",
                 color=_STATUS_COLOR[report.status], x=0.01, ha="left")
    ax.text(0, 1, "ISUOG checklist" if report.checklist else "no checklist for this plane", fontsize=10,
            weight="bold", va="top")
    y = 0.9
    for r in report.checklist:
        mark = {True: "✓", False: "✗", None: "?"}[r.passed]
        ax.text(0, y, f"{mark} {r.describe()}  ({_value(r.value)})", fontsize=9, va="top",
                color={True: "#1f8a4c", False: "#c0392b", None: "#6b7280"}[r.passed])
        y -= 0.075
    ms = "; ".join(str(m) for m in report.measurements) or "no measurement"
    ax.text(0, y - 0.03, f"{ms}\n{report.spacing_text}", fontsize=8, va="top", wrap=True)
    ax = fig.add_subplot(gs[1, :2])
    if report.contributions:
        names = [n for n, _ in report.contributions][::-1]
        vals = [v for _, v in report.contributions][::-1]
        ax.barh(names, vals, color=["#2e9d5b" if v >= 0 else "#d1495b" for v in vals])
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_title(f"concepts that contributed most to {report.plane} ({report.contribution_method})", fontsize=10)
        ax.tick_params(labelsize=8)
    else:
        ax.axis("off")
    ax = fig.add_subplot(gs[1, 2])
    ax.axis("off")
    text = "\n".join(f"{k}: {v}"[:90] for k, v in _model_items(report.model)[:8] if "\n" not in str(v))
    ax.text(0, 1, "model\n" + text, fontsize=8, va="top", family="monospace", wrap=True)
    return fig
