"""Build concept reports from a model and images; write a folder of reports with an index.

Example:
    >>> from pcbm.models import load_model  # doctest: +SKIP
    >>> model, info = load_model("default")  # doctest: +SKIP
    >>> report = explain_image(model, "scan.png", info=info, pixel_spacing_mm=0.12)  # doctest: +SKIP
    >>> report.to_html("scan.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html as _html
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open, write_json
from pcbm.concepts import PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.concepts.measure import Measurement
from pcbm.errors import InputError
from pcbm.explain.report import ConceptReport, checklist_for

ImageLike = Any  # np.ndarray (H, W) uint8 | pcbm.data.Sample | str | os.PathLike (image or DICOM file)


def load_image(image: ImageLike) -> tuple[np.ndarray, str, list[str], float | None, str | None]:
    """(uint8 image, source name, notes, pixel spacing, spacing source) from an array, a
    :class:`~pcbm.data.Sample`, an image file or an ultrasound DICOM file.

    Files go through the one image reader (:func:`pcbm.data.io.read_input_image`): a DICOM frame
    comes de-identified with its burned-in text masked, and is named by a hash of its path
    (``dicom_<hash>``), never by the path, which can carry a patient's name.
    """
    from pcbm.data.base import DatasetItem
    from pcbm.data.sample import Sample

    if isinstance(image, DatasetItem):
        image = image.load()
    if isinstance(image, Sample):
        src = f"dataset ({image.source or 'sample'})" if image.pixel_spacing_mm else None
        return image.image, image.id or "sample", list(image.meta.get("notes", [])), image.pixel_spacing_mm, src
    if isinstance(image, np.ndarray):
        if image.ndim != 2 or image.dtype != np.uint8:
            raise InputError(f"image must be a 2-D uint8 array, got shape {image.shape} dtype {image.dtype}")
        return image, "array", [], None, None
    from pcbm.data.io import read_input_image

    loaded = read_input_image(image)
    return loaded.image, report_name(image), list(loaded.notes), loaded.pixel_spacing_mm, loaded.spacing_source


def recorded_values(image: ImageLike) -> tuple[dict[str, float], str | None]:
    """The measurements the image's dataset records (``{"hc": 171.3}``, mm) and where from: a
    sample's own values, or the dataset CSV listing an image file (:func:`pcbm.data.io.find_recorded`)."""
    from pcbm.concepts import CONTINUOUS_PROPERTIES, get_property_concept
    from pcbm.data.sample import Sample

    if isinstance(image, Sample):
        found = {get_property_concept(n).measurement_keys[0]: float(v) for n in CONTINUOUS_PROPERTIES
                 if (v := image.properties.get(n)) is not None and not math.isnan(float(v))}
        return found, (f"dataset ({image.source or 'sample'})" if found else None)
    if isinstance(image, np.ndarray):
        return {}, None
    from pcbm.data.io import find_recorded

    try:
        return find_recorded(image)
    except InputError:  # an unreadable table is the spacing lookup's to report; no recorded values
        return {}, None


def report_name(path: str | os.PathLike[str]) -> str:
    """The name a report shows for a file: its path, or ``dicom_<hash of the path>`` for a DICOM file."""
    import hashlib

    from pcbm.data.dicom import is_dicom_file

    p = Path(path)
    if p.is_file() and is_dicom_file(p):
        return "dicom_" + hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]
    return str(path)


def model_card(model: Any, info: dict[str, Any] | None) -> dict[str, Any]:
    """What the report says about the model: name, architecture, run, training data, metrics.

    Reads the run's ``config.json`` as ``pcbm train`` writes it (``train.data``, ``data_sizes``,
    ``train.mode``) and its ``metrics.json`` (per data spec).
    """
    info = info or {}
    cfg = getattr(model, "config", None)
    card: dict[str, Any] = {}
    if cfg is not None:
        card["name"] = getattr(cfg, "name", "?")
        card["architecture"] = (f"{getattr(cfg, 'arch', '?')} / {getattr(cfg, 'encoder', '?')}, "
                                f"{getattr(cfg, 'decision', '?')} decision, {getattr(cfg, 'input_size', '?')} px input")
    if info.get("run_dir"):
        card["run"] = info["run_dir"]
    conf = info.get("config") or {}
    trained = _training_data(conf)
    sizes = conf.get("data_sizes") if isinstance(conf, dict) else None
    if trained and isinstance(sizes, dict) and sizes:
        parts = [f"{spec} ({v.get('train', '?')} train / {v.get('val', '?')} val images)"
                 for spec, v in sizes.items() if isinstance(v, dict)]
        trained = " + ".join(parts) or trained
    card["trained_on"] = trained or "not recorded"
    train = conf.get("train") if isinstance(conf, dict) else None
    if isinstance(train, dict):
        for key in ("mode", "epochs"):
            if key in train:
                card[f"training_{key}"] = train[key]
    for key in ("created", "date", "pcbm_version"):
        if isinstance(conf, dict) and key in conf:
            card[key] = conf[key]
    metrics = info.get("metrics")
    if isinstance(metrics, dict):
        shown: dict[str, Any] = {}
        for k, v in metrics.items():
            if isinstance(v, dict):  # per data spec
                per = {m: round(float(x), 3) for m, x in v.items()
                       if m in _CARD_METRICS and isinstance(x, (int, float)) and not isinstance(x, bool)}
                if per:
                    shown[k] = per
            elif k in _CARD_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                shown[k] = round(float(v), 3)
        if shown:
            card["validation_metrics"] = shown
        real = metrics.get("real_images")
        if isinstance(real, dict) and isinstance(real.get("summary"), str):
            card["real_images"] = real["summary"]  # what the model card says about real images, in a sentence
    return card


def cautions_for(status_reason: str | None, reliability: dict[str, Any] | None, card: dict[str, Any]) -> list[str]:
    """What a reader must see before trusting a page: the frame is unlike the training data (the score
    and its threshold), and what the model card says about real images."""
    out = []
    if status_reason and reliability:
        out.append(f"This frame is {status_reason} (out-of-distribution score {reliability['ood_score']:.2f} above "
                   f"the threshold {reliability['threshold']:.2f}): the model does not name a plane for it; the "
                   "plane shown is only its best guess.")
    elif status_reason:
        out.append(f"This frame is {status_reason}: the model does not name a plane for it.")
    if card.get("real_images"):
        out.append(f"Model card on real images: {card['real_images']}")
    return out


_CARD_METRICS = ("plane_macro_f1", "plane_accuracy", "plane_balanced_accuracy", "standard_accuracy",
                 "concept_accuracy", "dice", "hc_mae_mm")


def _training_data(conf: Any) -> str | None:
    """The training data specs of a run's config.json (``train.data``, as ``pcbm train`` writes it)."""
    train = conf.get("train") if isinstance(conf, dict) else None
    data = train.get("data") if isinstance(train, dict) else None
    if isinstance(data, str):
        return data
    if isinstance(data, (list, tuple)) and data:
        return " + ".join(map(str, data))
    return None


def explain_image(
    model: Any,
    image: ImageLike,
    info: dict[str, Any] | None = None,
    pixel_spacing_mm: float | None = None,
    spacing_source: str | None = None,
    intervention: Any = None,
    heatmap: str | None = "gradcam",
    top_k: int = 6,
    source: str | None = None,
) -> ConceptReport:
    """The concept report of one image.

    Args:
        model: a PCBM (from :func:`pcbm.models.load_model`).
        image: a uint8 (H, W) array, a :class:`~pcbm.data.Sample`, an image file or a DICOM file.
        info: the model's info (from ``load_model``): the report names the run and its training data.
        pixel_spacing_mm: mm per pixel (it wins over any other source). When None, the spacing
            comes from the sample, the DICOM header, or the dataset's table for a file of a known
            layout (HC18); otherwise lengths are in px.
        spacing_source: where ``pixel_spacing_mm`` came from (shown in the report).
        intervention: a :class:`pcbm.models.Intervention` applied before the decision.
        heatmap: "gradcam", "integrated_gradients", "saliency" or None (no heatmap).
        top_k: how many contributing concepts to list.
        source: the name shown for the image (default: the file path).
    """
    import torch

    from pcbm.data.base import DatasetItem
    from pcbm.explain.explainers import DecisionExplainer
    from pcbm.models.inference import pipeline_of

    model.family.require_concepts("a concept report")
    if isinstance(image, DatasetItem):
        image = image.load()  # once, for the image and its recorded values
    img, name, notes, found, found_source = load_image(image)
    pixel_spacing_mm, spacing_source = _spacing(pixel_spacing_mm, spacing_source, found, found_source)
    pipeline = pipeline_of(model)
    frames = pipeline.run([img], [pixel_spacing_mm], intervention)
    # the record pcbm predict prints, masks kept: (V, H, W) at the original size, the head refined if it can be
    pred = pipeline.record(frames, 0, img, source or name, keep_masks=True)
    plane, masks = pred.plane, pred.masks
    if getattr(model, "head_refiner", None) is not None and (masks[VISUAL_CONCEPT_NAMES.index("head")] > 0.5).any():
        notes.append("the head outline (and HC, BPD, OFD) is the head refiner's: the head cropped from the "
                     "original image and segmented again")
    intervened = set(getattr(intervention, "properties", {}) or {})
    raw = {n: float(frames.properties[0, i]) for i, n in enumerate(PROPERTY_CONCEPT_NAMES)}  # what assess() read
    checklist = checklist_for(plane, raw, intervened)
    contrib = DecisionExplainer(model).attribute(torch.as_tensor(frames.concept_inputs, dtype=torch.float32),
                                                 target=plane)
    heat = _heatmap(model, img, frames.boxes[0], plane, heatmap) if heatmap else None
    measured = list(pred.measured)
    notes += pred.measurement_notes
    recorded, recorded_source = recorded_values(image)
    card = model_card(model, info)
    return ConceptReport(
        image=img,
        masks={n: masks[i] for i, n in enumerate(VISUAL_CONCEPT_NAMES)},
        plane=plane,
        status=pred.status,
        confidence=float(frames.plane_probs[0].max()),
        plane_probs=dict(pred.plane_probs),
        checklist=checklist,
        missing=list(pred.missing_criteria),
        measurements=measured,
        pixel_spacing_mm=pixel_spacing_mm,
        spacing_source=spacing_source if pixel_spacing_mm else None,
        contributions=contrib.top(top_k),
        contribution_method=contrib.method,
        heatmap=heat,
        heatmap_method=heatmap if heatmap else None,
        properties=_shown_properties(pred.properties, measured),
        decision_inputs={n: round(float(v), 4) for n, v in zip(PROPERTY_CONCEPT_NAMES, frames.concept_inputs[0].tolist(),
                                                                strict=True)},
        recorded=recorded if pixel_spacing_mm else {},
        recorded_source=recorded_source if pixel_spacing_mm and recorded else None,
        model=card,
        source=source or name,
        interventions=describe_intervention(intervention),
        notes=notes,
        status_reason=pred.status_reason,
        reliability=pred.reliability,
        cautions=cautions_for(pred.status_reason, pred.reliability, card),
        prediction=pred,
    )


def _spacing(given: float | None, given_source: str | None, found: float | None,
             found_source: str | None) -> tuple[float | None, str | None]:
    """The pixel spacing and its source: the caller's (validated) wins over the image's own."""
    from pcbm.validate import pixel_spacing as valid_spacing

    if given is None:
        return found, found_source
    return valid_spacing(given, "pixel spacing"), given_source or "given by the caller"


def _shown_properties(properties: dict[str, float | None],
                      measured: Sequence[Measurement] = ()) -> dict[str, float | None]:
    """The property concepts as the report shows them: the prediction's (None where not applicable);
    a length the report measured is that measurement (None when unreliable), so one HC is shown."""
    from pcbm.concepts import get_property_concept

    props = dict(properties)
    by_key = {m.name: m for m in measured if m.unit == "mm"}
    for n in props:
        keys = get_property_concept(n).measurement_keys
        if keys and keys[0] in by_key:
            m = by_key[keys[0]]
            props[n] = round(m.value, 2) if m.reliable else None
    return props


def _heatmap(model: Any, img: np.ndarray, box: Any, plane: str, method: str) -> np.ndarray:
    """The pixel attribution map of ``plane`` at the original image's size."""
    import torch

    from pcbm.explain.explainers import PixelExplainer

    x, _ = model.prepare([img])
    with torch.enable_grad():
        attr = PixelExplainer(model, method).attribute(x.contiguous(), target=plane)
    return _crop(attr.heatmap(0), box)


def _crop(heat: np.ndarray, box: Any) -> np.ndarray:
    """A model-frame map at the original image's size (the letterbox padding dropped), in [0, 1]."""
    from pcbm.data.preprocess import unletterbox

    return np.clip(unletterbox(heat.astype(np.float32), box), 0.0, 1.0)


def describe_intervention(intervention: Any) -> list[str]:
    """One line per correction of an :class:`~pcbm.models.Intervention`."""
    if not intervention:
        return []
    lines = []
    for name, v in intervention.visual.items():
        if isinstance(v, (int, float)):
            lines.append(f"{name}: mask erased" if float(v) == 0 else f"{name}: mask set to {float(v):g}")
        else:
            lines.append(f"{name}: mask replaced (region edited)")
    lines += [f"{name} set to {float(v):g}" for name, v in intervention.properties.items()]
    return lines


INDEX_JSON = "index.json"  # the reports in a folder, so index.html lists every run's reports, not the last


@dataclass
class ReportRun:
    """What :func:`write_reports` did: the index, the reports written and the images that failed."""

    index: Path
    written: list[tuple[str, ConceptReport]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (report stem, message)


def report_stems(images: Sequence[ImageLike]) -> list[str]:
    """The file stem of each image's report (a DICOM's is a hash of its path; repeats get _2, _3)."""
    from pcbm.data.base import DatasetItem
    from pcbm.data.sample import Sample

    used: set[str] = set()
    stems = []
    for i, image in enumerate(images):
        if isinstance(image, np.ndarray):
            stem = f"image_{i:03d}"
        elif isinstance(image, DatasetItem):
            stem = image.name
        elif isinstance(image, Sample):
            stem = str(image.id or f"sample_{i:03d}")
        else:
            stem = Path(report_name(image)).stem
        stems.append(_unique(stem, used))
    return stems


def write_reports(
    model: Any,
    images: Sequence[ImageLike],
    out_dir: str | os.PathLike[str],
    info: dict[str, Any] | None = None,
    pixel_spacing_mm: float | None = None,
    spacing_source: str | None = None,
    formats: tuple[str, ...] = ("html", "json"),
    heatmap: str | None = "gradcam",
    on_done: Callable[[int, str, ConceptReport | None], None] | None = None,
    overwrite: bool = False,
) -> ReportRun:
    """Write one report per image (``<stem>.html``, ``<stem>.json``, …) and ``index.html``.

    The folder may hold earlier reports (it has an ``index.html``): they are kept and listed in
    ``index.html`` beside the new ones; any other non-empty folder is refused. A report file that exists already is not replaced unless ``overwrite`` — that is checked
    for every image before any work. An image that cannot be read is recorded in ``failures`` and
    the others go on. Every file is written atomically.

    Args:
        on_done: called as ``on_done(i, stem, report)`` after each image (``report`` None when it
            failed), e.g. to advance a progress bar.

    Raises:
        InputError: ``out_dir`` is a file or not writable, or a report would replace an existing file.
    """
    from pcbm._io import check_output_dir

    out = check_output_dir(out_dir, "--out", allow_existing=True)
    if out.is_dir() and any(out.iterdir()) and not (out / INDEX_JSON).exists() and not (out / "index.html").exists():
        raise InputError(f"--out {out} exists, is not empty and is not a folder of pcbm reports (no index.html); "
                         "refusing to mix reports into it (choose a new or empty folder)")
    stems = report_stems(images)
    if not overwrite:
        clash = [f"{stem}.{fmt}" for stem in stems for fmt in formats if (out / f"{stem}.{fmt}").exists()]
        if clash:
            shown = ", ".join(clash[:5]) + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
            raise InputError(f"{out} already has {shown}; refusing to replace them (pass --overwrite, or choose "
                             "another --out)")
    out.mkdir(parents=True, exist_ok=True)
    run = ReportRun(index=out / "index.html")
    for i, (image, stem) in enumerate(zip(images, stems, strict=True)):
        try:
            report = explain_image(model, image, info, pixel_spacing_mm, spacing_source, heatmap=heatmap)
        except InputError as e:
            run.failures.append((stem, str(e)))
            if on_done is not None:
                on_done(i, stem, None)
            continue
        report.save(out, stem, formats)
        run.written.append((stem, report))
        if on_done is not None:
            on_done(i, stem, report)
    entries = _read_index(out)
    for stem, r in run.written:
        entries[stem] = _index_entry(stem, r, formats)
    write_json(out / INDEX_JSON, list(entries.values()))
    with atomic_open(run.index, "w", encoding="utf-8") as f:
        f.write(_index_html(list(entries.values())))
    return run


def _index_entry(stem: str, r: ConceptReport, formats: tuple[str, ...]) -> dict[str, Any]:
    return {"stem": stem, "link": f"{stem}.{'html' if 'html' in formats else formats[0]}", "plane": r.plane_title,
            "status": r.status, "status_label": r.status_label, "confidence": round(r.confidence, 4),
            "missing": list(r.missing), "measurements": [str(m) for m in r.measurements]}


def _read_index(folder: Path) -> dict[str, dict[str, Any]]:
    """The entries of an earlier ``index.json`` (by stem, in order); a damaged one is rebuilt, not fatal."""
    import json

    path = folder / INDEX_JSON
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return {str(e["stem"]): e for e in items if isinstance(e, dict) and "stem" in e and "link" in e}
    except (OSError, ValueError, TypeError):
        return {}


def _unique(stem: str, used: set[str]) -> str:
    s, k = stem, 1
    while s in used:
        k += 1
        s = f"{stem}_{k}"
    used.add(s)
    return s


def _index_html(entries: list[dict[str, Any]]) -> str:
    e = _html.escape
    colors = {"standard": "#1f8a4c", "close_to_standard": "#c77c02", "not_a_known_plane": "#6b7280"}
    trs = "".join(
        f"<tr><td><a href='{e(str(r['link']))}'>{e(str(r['stem']))}</a></td><td>{e(str(r['plane']))}</td>"
        f"<td style='color:{colors.get(str(r['status']), '#1f2933')};font-weight:600'>{e(str(r['status_label']))}</td>"
        f"<td>{float(r['confidence']):.0%}</td><td>{e(', '.join(map(str, r['missing'])) or '—')}</td>"
        f"<td>{e('; '.join(map(str, r['measurements'])) or '—')}</td></tr>"
        for r in entries)
    rows = entries
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pcbm reports</title><style>
body{{font:16px/1.45 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1f2933}}main{{max-width:1100px;margin:auto;padding:16px}}
table{{border-collapse:collapse;width:100%;background:#fff}}th,td{{text-align:left;padding:8px;border-bottom:1px solid #eceff3}}
th{{font-size:.85em;color:#52606d}}.wrap{{overflow-x:auto}}</style></head>
<body><main><h1>pcbm concept reports</h1><p>{len(rows)} image(s).</p><div class="wrap"><table>
<tr><th>image</th><th>plane</th><th>status</th><th>confidence</th><th>missing criteria</th><th>measurements</th></tr>
{trs}</table></div></main></body></html>
"""


def package_card(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a report says about a model package (its ``metadata.json``): as :func:`model_card` for a run."""
    model = metadata.get("model") or {}
    cfg = model.get("config") or {}
    card: dict[str, Any] = {"name": model.get("name", "?"),
                            "architecture": f"{cfg.get('arch', '?')} / {cfg.get('encoder', '?')}, "
                                            f"{cfg.get('decision', '?')} decision, {cfg.get('input_size', '?')} px input",
                            "package": "exported (onnxruntime)"}
    trained = metadata.get("training_data")
    card["trained_on"] = (" + ".join(map(str, trained)) if isinstance(trained, list) else str(trained)) if trained else "not recorded"
    if metadata.get("pcbm_version"):
        card["pcbm_version"] = metadata["pcbm_version"]
    return card | {k: v for k, v in model_card(None, {"metrics": metadata.get("metrics")}).items()
                   if k in ("validation_metrics", "real_images")}


def report_from_prediction(image: np.ndarray, pred: Any, card: dict[str, Any] | None = None,
                           pixel_spacing_mm: float | None = None, spacing_source: str | None = None,
                           source: str | None = None) -> ConceptReport:
    """The concept report of a :class:`~pcbm.prediction.Prediction` made with masks kept (what the
    torch-free runtime and the live page have): plane, status, ISUOG checklist, structures,
    measurements, cautions. No concept contributions or heatmap (those need the torch model:
    ``pcbm report RUN IMAGE``); a note says so."""
    if pred.masks is None:
        raise InputError("a report needs the prediction's masks (predict with keep_masks=True)")
    card = dict(card or {})
    measured = list(pred.measured)
    checklist = checklist_for(pred.plane, dict(pred.properties))
    return ConceptReport(
        image=np.asarray(image), masks={n: pred.masks[i] for i, n in enumerate(VISUAL_CONCEPT_NAMES)},
        plane=pred.plane, status=pred.status, confidence=float(max(pred.plane_probs.values())),
        plane_probs=dict(pred.plane_probs), checklist=checklist, missing=list(pred.missing_criteria),
        measurements=measured, pixel_spacing_mm=pixel_spacing_mm, spacing_source=spacing_source if pixel_spacing_mm else None,
        properties=_shown_properties(pred.properties, measured), model=card, source=source or pred.image,
        notes=list(pred.measurement_notes) + ["concept contributions and the heatmap need the torch model "
                                              "(pcbm report RUN IMAGE); this page is built on the exported model's record"],
        status_reason=pred.status_reason, reliability=pred.reliability,
        cautions=cautions_for(pred.status_reason, pred.reliability, card), prediction=pred,
    )
