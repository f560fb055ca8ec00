"""Validate a dataset: every file readable, labels well formed, masks and recorded measurements agreeing.

:func:`check_dataset` loads every sample and collects per-file problems (errors and warnings),
counts per plane / standard flag / labelled concept, and — where a sample has both masks and
recorded properties — the agreement between the properties derived from the masks
(:func:`pcbm.concepts.measure.derive_properties`) and the recorded ones: accuracy for binary
properties, mean absolute error for measurements (``hc_mae_mm`` for HC18).

Example:
    >>> report = check_dataset("hc18:../shared/data/hc18")  # doctest: +SKIP
    >>> report.ok, round(report.hc_mae_mm, 2)  # doctest: +SKIP
    (True, 0.78)
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PROPERTY_CONCEPT_NAMES, get_property_concept
from pcbm.concepts.measure import derive_properties
from pcbm.data.base import SampleDataset, Subset, open_dataset
from pcbm.data.sample import Sample
from pcbm.errors import InputError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file (or sample)."""

    level: str  # "error" or "warning"
    where: str  # file path (or sample id)
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "message": self.message}


@dataclass
class Agreement:
    """Derived-vs-recorded agreement of one property over the samples having both."""

    n: int = 0
    total: float = 0.0  # sum of |error| (continuous) or of matches (binary)
    max_abs: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.max_abs = max(self.max_abs, value)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is True when there are no errors."""

    spec: str
    n_samples: int = 0
    n_read: int = 0
    subjects: int = 0
    problems: list[Problem] = field(default_factory=list)
    planes: Counter[str] = field(default_factory=Counter)
    standard: Counter[str] = field(default_factory=Counter)
    masks_labelled: Counter[str] = field(default_factory=Counter)
    masks_present: Counter[str] = field(default_factory=Counter)
    properties_labelled: Counter[str] = field(default_factory=Counter)
    with_spacing: int = 0
    agreement: dict[str, Agreement] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def hc_mae_mm(self) -> float | None:
        """Mean |HC from the mask - recorded HC| in mm, or None when no sample has both."""
        a = self.agreement.get("hc_mm")
        return a.mean if a else None

    def to_dict(self) -> dict[str, Any]:
        agreement: dict[str, Any] = {}
        for name, a in self.agreement.items():
            if get_property_concept(name).binary:
                agreement[name] = {"n": a.n, "accuracy": _r(a.mean)}
            else:
                agreement[name] = {"n": a.n, "mae_mm": _r(a.mean), "max_abs_error_mm": _r(a.max_abs)}
        return {
            "spec": self.spec,
            "ok": self.ok,
            "n_samples": self.n_samples,
            "n_read": self.n_read,
            "subjects": self.subjects,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "hc_mae_mm": _r(self.hc_mae_mm),
            "planes": dict(self.planes),
            "standard": dict(self.standard),
            "masks_labelled": dict(self.masks_labelled),
            "masks_present": dict(self.masks_present),
            "properties_labelled": dict(self.properties_labelled),
            "with_pixel_spacing": self.with_spacing,
            "agreement": agreement,
            "problems": [p.to_dict() for p in self.problems],
            "seconds": round(self.seconds, 2),
        }


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _without_where(message: str, where: str) -> str:
    """The message without the path it is already reported under ("cannot read image X: empty" -> "cannot read image: empty")."""
    if not where or where not in message:
        return message
    return message.replace(f" {where}", "").replace(where, "").strip() or message


def _source(ds: SampleDataset, index: int) -> tuple[str, Path | None, str]:
    """(where, image file, listed at) of a sample without decoding it (best effort)."""
    base, i = (ds.base, ds.indices[index]) if isinstance(ds, Subset) else (ds, index)
    entries = getattr(base, "entries", None)
    if entries is not None:
        e = entries[i]
        csv_files = getattr(base, "csv_files", None) or [getattr(base, "csv_path", "the CSV")]
        line = getattr(e, "line", None)
        return str(e.image), Path(e.image), f"{Path(str(csv_files[0])).name} line {line}" if line else ""
    rows = getattr(base, "rows", None)
    if rows is not None and hasattr(base, "image_dir"):
        row = rows[i]
        path = base.image_dir / row["image"]  # type: ignore[attr-defined]
        return str(path), path, f"labels.csv line {row['_line']}" if "_line" in row else ""
    return f"sample {index}", None, ""


def _dataset_problems(ds: SampleDataset) -> list[Problem]:
    """Problems visible from the file listing alone (missing masks, unlisted images, duplicates)."""
    from pcbm.data.folder import FolderDataset
    from pcbm.data.hc18 import HC18Dataset
    from pcbm.data.io import list_images

    base = ds.base if isinstance(ds, Subset) else ds
    out = [Problem("error", where, message) for where, message in getattr(base, "problems", [])]
    if isinstance(base, HC18Dataset):
        for e in base.entries:
            if e.image.is_file() and e.mask is None and e.hc_mm is not None:
                kind = "annotation" if e.outline else "mask"
                out.append(Problem("error", str(e.image), f"no {kind} file for this image"))
    if isinstance(base, FolderDataset):
        listed = {r["image"] for r in base.rows}
        for p in list_images(base.image_dir):
            if p.name not in listed:
                out.append(Problem("warning", str(p), "image not listed in labels.csv (ignored)"))
        for concept, d in base.mask_dirs.items():
            stems = {Path(r["image"]).stem for r in base.rows}
            for p in sorted(d.iterdir()):
                if p.is_file() and p.stem not in stems:
                    out.append(Problem("warning", str(p), f"{concept} mask has no image in the dataset"))
        seen: Counter[str] = Counter(Path(r["image"]).stem for r in base.rows)
        for stem, n in seen.items():
            if n > 1:
                names = ", ".join(r["image"] for r in base.rows if Path(r["image"]).stem == stem)
                out.append(Problem("error", str(base.labels_path), f"{n} images share the id {stem!r} ({names})"))
    for kept, dropped, same in getattr(base, "duplicates", []):
        out.append(Problem("warning" if same else "error", dropped,
                           f"byte-identical to {kept}{'' if same else ' with another label'}; listed once"))
    return out


def _check_sample(s: Sample, where: str, report: CheckReport) -> None:
    for note in s.meta.get("notes", []):
        report.problems.append(Problem("warning", where, note))
    group = s.meta.get("plane_group") if s.plane is None else None
    report.planes[s.plane or (f"{group} (group only)" if group else "(unlabelled)")] += 1
    report.standard[{True: "standard", False: "not standard", None: "(unlabelled)"}[s.standard]] += 1
    report.with_spacing += s.pixel_spacing_mm is not None
    for name, m in s.masks.items():
        report.masks_labelled[name] += 1
        report.masks_present[name] += bool(np.any(m))
    for name, v in s.properties.items():
        report.properties_labelled[name] += 1
        c = get_property_concept(name)
        if v is not None and c.binary and v not in (0.0, 1.0):
            report.problems.append(Problem("error", where, f"{name} = {v}; binary properties are 0 or 1"))
        if v is not None and not c.binary and not (np.isfinite(v) and v > 0):
            report.problems.append(Problem("error", where, f"{name} = {v}; measurements are positive mm"))
    if not s.masks or not s.properties:
        return
    derived = derive_properties(s.masks, image=s.image, pixel_spacing_mm=s.pixel_spacing_mm,
                                field_of_view=s.field_of_view)
    for name in PROPERTY_CONCEPT_NAMES:
        if name not in derived or name not in s.properties:
            continue
        rec, der = s.properties[name], derived[name]
        if rec is None or der is None:
            continue
        agreement = report.agreement.setdefault(name, Agreement())
        if get_property_concept(name).binary:
            agreement.add(float((rec >= 0.5) == (der >= 0.5)))
        else:
            agreement.add(abs(float(der) - float(rec)))


def check_dataset(spec: str | SampleDataset, progress: bool = True) -> CheckReport:
    """Load every sample of a dataset and report problems, counts and mask/label agreement.

    Args:
        spec: a data spec (``hc18:PATH``, ``folder:PATH``, …) or an opened dataset.
        progress: show a progress bar over the files.

    Every problem is reported, not the first: each malformed CSV line (the dataset is opened
    leniently, see :func:`~pcbm.data.base.open_dataset`) and then the files of every row that
    could be read.

    Raises:
        InputError: when the dataset cannot be opened at all (unknown kind, missing folder, not
        the layout its kind expects).
    """
    t0 = time.perf_counter()
    ds = open_dataset(spec, lenient=True) if isinstance(spec, str) else spec
    report = CheckReport(spec=spec if isinstance(spec, str) else getattr(ds, "name", "dataset"))
    report.n_samples = len(ds)
    report.subjects = len({ds.subject_of(i) for i in range(len(ds))})
    report.problems += _dataset_problems(ds)
    if len(ds) == 0:
        report.problems.append(Problem("error", report.spec, "the dataset has no samples"))
    indices: Any = range(len(ds))
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"checking {report.spec}", transient=True)
    ids: Counter[str] = Counter()
    for i in indices:
        where, image, listed = _source(ds, i)
        if image is not None and not image.is_file():
            kind = "not found" if not image.exists() else "is not a file"
            report.problems.append(Problem("error", where, f"image {kind} (listed in {listed or 'the dataset'})"))
            continue
        try:
            s = ds[i]
        except (InputError, ValueError, TypeError, OSError) as e:
            report.problems.append(Problem("error", where, _without_where(str(e), where)))
            continue
        report.n_read += 1
        ids[s.id] += 1
        try:
            _check_sample(s, where, report)
        except (ValueError, KeyError) as e:
            report.problems.append(Problem("error", where, _without_where(str(e.args[0] if isinstance(e, KeyError) else e), where)))
    for sid, n in ids.items():
        if n > 1:
            report.problems.append(Problem("warning", sid, f"{n} samples share the id {sid!r}"))
    report.seconds = time.perf_counter() - t0
    return report
