"""The concept report of one image: a plain data object with HTML, PNG, JSON and Markdown renderers.

A report is built from a model's output by :func:`pcbm.explain.explain_image`, or directly from
plain values (which is how the renderers are tested without a model).

Example:
    >>> import numpy as np
    >>> r = ConceptReport.example()
    >>> "csp_visible" in r.to_markdown()
    True
    >>> r.to_html().startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open, atomic_path, jsonable
from pcbm.concepts import get_plane, get_property_concept
from pcbm.concepts.measure import Measurement
from pcbm.errors import InputError

STATUS_LABELS = {
    "standard": "standard",
    "close_to_standard": "close to standard",
    "not_a_known_plane": "not a known plane",
}


@dataclass
class CriterionRow:
    """One ISUOG criterion of the predicted plane, evaluated on the predicted property concepts.

    Attributes:
        property: the binary property concept the criterion reads.
        expected: the value it must take (False for "must not be visible").
        value: the predicted probability that the property holds, or None when unknown.
        passed: whether the criterion holds (None when unknown).
        derived_from: the visual concepts (structures) the property rests on.
        wording: the ISUOG wording of the property.
        intervened: True when a person set this value (an intervention).
    """

    property: str
    expected: bool
    value: float | None
    passed: bool | None
    derived_from: tuple[str, ...] = ()
    wording: str = ""
    intervened: bool = False

    def describe(self) -> str:
        return f"{self.property} = {'yes' if self.expected else 'no'}"

    def to_dict(self) -> dict[str, Any]:
        return {"property": self.property, "expected": self.expected, "value": self.value, "passed": self.passed,
                "derived_from": list(self.derived_from), "wording": self.wording, "intervened": self.intervened}


#: a report's measurement row is the measurement itself (value, unit, quality, reliability, reason)
MeasurementRow = Measurement


def checklist_for(plane: str, properties: dict[str, float | None], intervened: set[str] | None = None,
                  threshold: float = 0.5) -> list[CriterionRow]:
    """The plane's ISUOG criteria evaluated on property probabilities (by name)."""
    rows = []
    for c in get_plane(plane).criteria:
        concept = get_property_concept(c.property)
        v = properties.get(c.property)
        v = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        rows.append(CriterionRow(c.property, c.expected, v, c.met(v, threshold), concept.derived_from, concept.isuog,
                                 c.property in (intervened or set())))
    return rows


@dataclass
class ConceptReport:
    """Everything a clinician needs to read one image's decision.

    Attributes:
        image: (H, W) uint8 image as given.
        masks: visual concept name -> (H, W) probabilities at the image's size (predicted).
        plane: predicted plane name.
        status: "standard", "close_to_standard" or "not_a_known_plane".
        confidence: probability of the predicted plane.
        plane_probs: plane name -> probability.
        checklist: the plane's ISUOG criteria with values, pass/fail and structures.
        missing: names of the failed criteria (what is missing to be standard).
        measurements: HC/BPD/OFD/AC/FL of the structures found.
        pixel_spacing_mm: mm per pixel of the image, or None (measurements then in px).
        spacing_source: where the pixel spacing came from ("--pixel-spacing flag", "dataset …",
            "DICOM header"), or None.
        contributions: the concepts that contributed most to the decision, (name, logit contribution).
        contribution_method: "exact" or "integrated_gradients".
        heatmap: (h, w) attribution map in [0, 1] (any size; drawn over the image), or None.
        heatmap_method: how the heatmap was made ("gradcam", "integrated_gradients", "saliency").
        properties: all predicted property values by name (probabilities; mm for lengths — a
            length the report measures is that measurement, so the report shows one HC).
        decision_inputs: the exact values the decision layer read, by concept (probabilities;
            lengths normalised by the image's long side): what the contributions multiply.
        recorded: measurements the dataset records for this image (``{"hc": 171.3}``, mm), shown
            beside the measured ones; ``recorded_source`` says where from.
        model: which model made it and on what data it was trained (name, run, trained_on, …).
        source: the image's file or id.
        interventions: the corrections applied before the decision, as text (empty for none).
        notes: anything else worth a line (image conversions, warnings).
        status_reason: why the status is what it is when the probabilities alone do not say
            ("unlike the training data"), else None.
        reliability: the out-of-distribution score, its threshold and the temperature (null
            without a fitted reliability file).
        cautions: what the reader must know before trusting this page (shown first, in amber):
            the frame is unlike the training data; what the model card says about real images.
        prediction: the :class:`~pcbm.prediction.Prediction` the page was built on (the record
            ``pcbm predict`` prints for this image); its ``to_dict()`` is the JSON's ``prediction``.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    plane: str
    status: str
    confidence: float
    plane_probs: dict[str, float]
    checklist: list[CriterionRow]
    missing: list[str]
    measurements: list[MeasurementRow] = field(default_factory=list)
    pixel_spacing_mm: float | None = None
    spacing_source: str | None = None
    contributions: list[tuple[str, float]] = field(default_factory=list)
    contribution_method: str = "exact"
    heatmap: np.ndarray | None = None
    heatmap_method: str | None = None
    properties: dict[str, float | None] = field(default_factory=dict)
    decision_inputs: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)
    recorded_source: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    interventions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status_reason: str | None = None
    reliability: dict[str, Any] | None = None
    cautions: list[str] = field(default_factory=list)
    prediction: Any = None

    def __post_init__(self) -> None:
        if self.status not in STATUS_LABELS:
            raise InputError(f"unknown status {self.status!r}; choose {', '.join(STATUS_LABELS)}")
        get_plane(self.plane)

    # --- plain views -----------------------------------------------------------------------------

    @property
    def plane_title(self) -> str:
        return get_plane(self.plane).title

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def standard(self) -> bool:
        return self.status == "standard"

    @property
    def spacing_text(self) -> str:
        if not self.pixel_spacing_mm:
            return "no pixel spacing known: lengths in pixels"
        return f"{self.pixel_spacing_mm:.4g} mm/px (source: {self.spacing_source or 'not stated'})"

    def missing_rows(self) -> list[CriterionRow]:
        return [r for r in self.checklist if r.property in self.missing]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (the image, masks and heatmap are summarised, not embedded)."""
        h, w = self.image.shape
        return {
            "source": self.source,
            "image_size": [int(w), int(h)],
            "model": jsonable(self.model),
            "decision": {"plane": self.plane, "title": self.plane_title, "status": self.status,
                         "status_reason": self.status_reason, "confidence": self.confidence,
                         "plane_probs": self.plane_probs},
            "reliability": self.reliability,
            "cautions": list(self.cautions),
            "checklist": [r.to_dict() for r in self.checklist],
            "missing": list(self.missing),
            "measurements": {m.name: m.to_dict() | ({"recorded": self.recorded[m.name]} if m.name in self.recorded
                                                    else {}) for m in self.measurements},
            "recorded": dict(self.recorded), "recorded_source": self.recorded_source,
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "pixel_spacing_source": self.spacing_source,
            "structures": {k: float((np.asarray(v) > 0.5).mean()) for k, v in self.masks.items()
                           if (np.asarray(v) > 0.5).any()},
            "contributions": {"method": self.contribution_method,
                              "top": [{"concept": n, "value": v, "input": self.decision_inputs.get(n)}
                                      for n, v in self.contributions]},
            "heatmap_method": self.heatmap_method,
            "properties": self.properties,
            "decision_inputs": dict(self.decision_inputs),
            "interventions": list(self.interventions),
            "notes": list(self.notes),
            "prediction": None if self.prediction is None else self.prediction.to_dict(masks=True),
        }

    # --- renderers -------------------------------------------------------------------------------

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text (NaN written as null); also written to ``path`` when given."""
        text = json.dumps(jsonable(self.to_dict()), indent=2)
        if path is not None:
            with atomic_open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def to_markdown(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as Markdown (no images)."""
        from pcbm.explain._render import markdown

        text = markdown(self)
        if path is not None:
            with atomic_open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """A self-contained HTML page: images embedded as base64 PNG, inline CSS, no scripts."""
        from pcbm.explain._render import html

        text = html(self)
        if path is not None:
            with atomic_open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def plot(self) -> Any:
        """A matplotlib figure of the report: overlay, heatmap, checklist and contributions."""
        from pcbm.explain._render import figure

        return figure(self)

    def to_png(self, path: str | os.PathLike[str] | None = None, dpi: int = 110) -> bytes:
        """The report as one PNG image (bytes); also written to ``path`` when given."""
        import io

        import matplotlib.pyplot as plt

        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        data = buf.getvalue()
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(data)
        return data

    def save(self, folder: str | os.PathLike[str], stem: str, formats: tuple[str, ...] = ("html", "json")) -> dict[str, Path]:
        """Write the report in several formats as ``folder/stem.<ext>``; returns the paths."""
        folder = Path(folder)
        paths = {}
        writers = {"html": self.to_html, "json": self.to_json, "md": self.to_markdown, "png": self.to_png}
        for fmt in formats:
            if fmt not in writers:
                raise InputError(f"unknown report format {fmt!r}; choose {', '.join(writers)}")
            paths[fmt] = folder / f"{stem}.{fmt}"
            writers[fmt](paths[fmt])
        return paths

    @classmethod
    def example(cls) -> ConceptReport:
        """A small synthetic report (a trans-thalamic plane with the cerebellum in view)."""
        import cv2

        img = np.full((120, 160), 40, np.uint8)
        head = np.zeros((120, 160), np.uint8)
        cv2.ellipse(head, (80, 60), (55, 42), 0, 0, 360, 1, -1)
        img[head > 0] = 110
        cereb = np.zeros_like(head)
        cv2.circle(cereb, (105, 60), 9, 1, -1)
        props = {"head_complete": 0.97, "head_magnified": 0.9, "head_symmetric": 0.8, "csp_visible": 0.88,
                 "thalamus_visible": 0.93, "cerebellum_visible": 0.71, "gain_adequate": 0.99}
        rows = checklist_for("trans_thalamic", props)
        return cls(
            image=img, masks={"head": head.astype(np.float32), "cerebellum": cereb.astype(np.float32)},
            plane="trans_thalamic", status="close_to_standard", confidence=0.82,
            plane_probs={"trans_thalamic": 0.82, "trans_cerebellar": 0.15, "other": 0.03},
            checklist=rows, missing=[r.property for r in rows if not r.passed],
            measurements=[MeasurementRow("hc", 152.3, "mm"), MeasurementRow("bpd", 42.0, "mm")],
            pixel_spacing_mm=0.5, spacing_source="--pixel-spacing flag",
            contributions=[("thalamus_visible", 2.1), ("cerebellum_visible", -1.4), ("csp_visible", 1.2)],
            heatmap=np.outer(np.hanning(30), np.hanning(40)), heatmap_method="gradcam",
            properties=props, model={"name": "example", "trained_on": "phantom:n=100"}, source="example",
        )


