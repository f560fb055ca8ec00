"""Summaries of datasets: a table (size, subjects, planes, labelled concepts, pixel spacing) and a
picture of a few samples per dataset with their masks overlaid in the ontology's colours.

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("hc18:../shared/data/hc18")  # doctest: +SKIP
    >>> s = summarise(ds, spec="hc18")  # doctest: +SKIP
    >>> plot_samples({"hc18": ds}, "samples.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import VISUAL_CONCEPT_NAMES, get_visual_concept
from pcbm.data.base import SampleDataset
from pcbm.data.sample import Sample
from pcbm.errors import InputError


@dataclass
class DatasetSummary:
    """What a dataset holds, from ``n_scanned`` of its ``n`` samples (evenly spaced)."""

    spec: str
    n: int
    subjects: int
    n_scanned: int = 0
    planes: Counter[str] = field(default_factory=Counter)
    standard: Counter[str] = field(default_factory=Counter)
    masks: Counter[str] = field(default_factory=Counter)  # labelled visual concepts
    properties: Counter[str] = field(default_factory=Counter)  # labelled property concepts
    spacing: list[float] = field(default_factory=list)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    n_unreadable: int = 0  # scanned samples whose files could not be read (see ``pcbm data check``)

    @property
    def spacing_range(self) -> str:
        if not self.spacing:
            return "unknown"
        lo, med, hi = np.percentile(self.spacing, [0, 50, 100])
        return f"{lo:.3g}–{hi:.3g} mm/px (median {med:.3g})"

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "n": self.n, "subjects": self.subjects, "n_scanned": self.n_scanned,
                "planes": dict(self.planes), "standard": dict(self.standard), "masks": dict(self.masks),
                "properties": dict(self.properties), "spacing": self.spacing_range,
                "sizes": {f"{w}x{h}": n for (h, w), n in self.sizes.items()}, "n_unreadable": self.n_unreadable}


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def summarise(ds: SampleDataset, spec: str = "", limit: int = 200, progress: bool = False) -> DatasetSummary:
    """Count planes, labels and spacings over up to ``limit`` evenly spaced samples.

    A sample whose files cannot be read is counted in ``n_unreadable`` and skipped, not fatal.
    """
    s = DatasetSummary(spec or ds.name, len(ds), len({ds.subject_of(i) for i in range(len(ds))}))
    indices: Any = _spread(len(ds), limit)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"scanning {spec}", transient=True)
    for i in indices:
        try:
            x = ds[i]
        except InputError:
            s.n_unreadable += 1
            continue
        s.n_scanned += 1
        s.planes[x.plane or "(unlabelled)"] += 1
        s.standard[{True: "yes", False: "no", None: "?"}[x.standard]] += 1
        s.masks.update(x.masks.keys())
        s.properties.update(x.properties.keys())
        s.sizes[x.image.shape] += 1
        if x.pixel_spacing_mm is not None:
            s.spacing.append(float(x.pixel_spacing_mm))
    return s


def summary_table(summaries: list[DatasetSummary]) -> Any:
    """A rich Table of the summaries."""
    from rich.table import Table

    t = Table(title="datasets")
    t.add_column("dataset", overflow="fold", max_width=36)
    for col in ("samples", "subjects", "planes", "standard (y/n/?)", "labelled concepts",
                "pixel spacing", "image size"):
        t.add_column(col)
    for s in summaries:
        scanned = "" if s.n_scanned == s.n else f"\n(counts from {s.n_scanned})"
        if s.n_unreadable:
            scanned += f"\n[red]{s.n_unreadable} unreadable[/red] (see pcbm data check)"
        planes = ", ".join(f"{k} {v}" for k, v in s.planes.most_common())
        std = f"{s.standard['yes']}/{s.standard['no']}/{s.standard['?']}"
        masks = ", ".join(c for c in VISUAL_CONCEPT_NAMES if c in s.masks) or "—"
        props = f"{len(s.properties)} properties" if s.properties else "no properties"
        size = ", ".join(f"{w}×{h}" for (h, w), _ in s.sizes.most_common(2))
        t.add_row(s.spec, f"{s.n}{scanned}", str(s.subjects), planes, std, f"masks: {masks}\n{props}",
                  s.spacing_range, size)
    return t


def overlay(sample: Sample, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 picture of the image with its masks blended in the concepts' colours (outer first)."""
    import cv2

    rgb = np.repeat(sample.image[:, :, None], 3, axis=2).astype(np.float32)
    for name in sorted(sample.masks, key=lambda c: -int(np.count_nonzero(sample.masks[c]))):
        m = np.asarray(sample.masks[name]).astype(bool)
        if not m.any():
            continue
        color = np.array(get_visual_concept(name).color, np.float32)
        rgb[m] = (1 - alpha) * rgb[m] + alpha * color
        edge = m.astype(np.uint8) - cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8))
        rgb[edge > 0] = color
    if sample.field_of_view is not None:
        fov = sample.field_of_view.astype(np.uint8)
        edge = fov - cv2.erode(fov, np.ones((3, 3), np.uint8))
        rgb[edge > 0] = (90, 90, 90)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def plot_samples(datasets: dict[str, SampleDataset], out: str | os.PathLike[str], per_dataset: int = 4) -> Path:
    """Write a grid (one row per dataset) of samples with mask overlays and a colour legend, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from pcbm._io import atomic_path

    rows = len(datasets)
    fig, axes = plt.subplots(rows, per_dataset, figsize=(3.2 * per_dataset, 2.6 * rows + 0.6), squeeze=False)
    used: set[str] = set()
    for r, (spec, ds) in enumerate(datasets.items()):
        picks = _spread(len(ds), per_dataset)
        for c in range(per_dataset):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(picks):
                continue
            try:
                s = ds[picks[c]]
            except InputError as e:  # shown in the tile instead of stopping the picture
                ax.text(0.5, 0.5, f"cannot read sample {picks[c]}:\n{str(e)[-80:]}", ha="center", va="center",
                        fontsize=6, wrap=True, transform=ax.transAxes)
                continue
            used.update(k for k, m in s.masks.items() if np.any(m))
            ax.imshow(overlay(s))
            std = {True: "standard", False: "not standard", None: ""}[s.standard]
            ax.set_title(f"{s.id}\n{s.plane or '?'} {std}".strip(), fontsize=7)
            if c == 0:
                ax.text(-0.04, 0.5, spec if len(spec) < 40 else "…" + spec[-38:], transform=ax.transAxes,
                        rotation=90, va="center", ha="right", fontsize=8)
    handles = [Patch(facecolor=np.array(get_visual_concept(n).color) / 255, edgecolor="0.4", label=n) for n in VISUAL_CONCEPT_NAMES
               if n in used]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0.02, 0.06 if handles else 0, 1, 1))
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out
