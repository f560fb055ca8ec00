"""HC18: trans-thalamic fetal head images with a head (skull) mask and the reference HC in mm.

Two layouts are read (``hc18:PATH``):

- the shared layout: ``images/NNN_HC.png``, ``masks/<image stem>_Mask.png`` (filled, 0/255),
  ``pixel_size_and_hc.csv`` (``filename,pixel_size_mm,head_circumference_mm``);
- the official challenge layout: ``NNN_HC.png`` with the ellipse *outline*
  ``NNN_HC_Annotation.png`` (filled on load) and ``training_set_pixel_size_and_HC.csv``
  (``filename,pixel size(mm),head circumference (mm)``), the images either beside the CSV or in
  ``training_set/``. Option ``subset=test`` reads the challenge's test set instead
  (``test_set_pixel_size.csv``, images in ``test_set/``; no HC, no annotations).

Samples: plane ``trans_thalamic``, masks ``{"head": ...}`` when a mask/annotation exists,
properties ``{"hc_mm": recorded HC}``, pixel spacing from the CSV, standard unknown (None).
``017_HC`` and ``017_2HC`` are one subject, ``017``.

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("hc18:../shared/data/hc18")  # doctest: +SKIP
    >>> ds[0].properties  # doctest: +SKIP
    {'hc_mm': 44.3}
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.io import read_image, read_mask
from pcbm.data.sample import Sample
from pcbm.errors import InputError

SHARED_CSV = "pixel_size_and_hc.csv"
OFFICIAL_CSVS = ("training_set_pixel_size_and_HC.csv", "test_set_pixel_size.csv")


@dataclass(frozen=True)
class HC18Entry:
    """One CSV row resolved to files (cheap: no decoding)."""

    image: Path
    mask: Path | None  # filled mask (shared layout) or outline annotation (official), None if absent
    outline: bool  # True when ``mask`` is an outline to be filled
    pixel_size_mm: float
    hc_mm: float | None
    line: int  # CSV line, for messages

    @property
    def id(self) -> str:
        return self.image.stem

    @property
    def subject(self) -> str:
        return subject_of_stem(self.image.stem)


def subject_of_stem(stem: str) -> str:
    """``"017_2HC"`` -> ``"017"``; a name without the ``NNN_`` pattern is its own subject."""
    m = re.match(r"^(\d+)_", stem)
    return m.group(1) if m else stem


def read_hc18_csv(path: Path, with_hc: bool) -> list[tuple[int, str, float, float | None]]:
    """Rows of an HC18 CSV as (line, filename, pixel size mm, HC mm or None).

    Raises:
        InputError: naming the file and line of a malformed row.
    """
    rows: list[tuple[int, str, float, float | None]] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line, values in enumerate(csv.reader(f), start=1):
            values = [v.strip() for v in values]
            if not any(values):
                continue
            if line == 1 and values[0].lower().startswith("filename"):
                continue
            want = 3 if with_hc else 2
            if len(values) < want:
                raise InputError(f"{path}, line {line}: expected {want} fields "
                                 f"(filename, pixel size{', HC' if with_hc else ''}), got {len(values)}")
            name = values[0]
            try:
                px = float(values[1])
                hc = float(values[2]) if with_hc else None
            except ValueError:
                raise InputError(f"{path}, line {line}: not a number in {values[1:want]}") from None
            if not (np.isfinite(px) and px > 0) or (hc is not None and not (np.isfinite(hc) and hc > 0)):
                raise InputError(f"{path}, line {line}: pixel size and HC must be positive, got {values[1:want]}")
            rows.append((line, name, px, hc))
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def fill_outline(outline: np.ndarray) -> np.ndarray:
    """Fill a closed ellipse outline (bool) into a solid mask.

    The outer contour of the outline is filled; if the outline has gaps (the fill then covers little
    more than the line itself) an ellipse fitted to the outline pixels is filled instead.
    """
    o = outline.astype(np.uint8)
    if not o.any():
        return np.zeros(outline.shape, bool)
    o = cv2.morphologyEx(o, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(o, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(o)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if filled.sum() < 2 * o.sum():  # open outline: the contour hugs the line
        pts = np.column_stack(np.nonzero(o)[::-1]).astype(np.float32)
        if len(pts) >= 5:
            filled[:] = 0
            cv2.ellipse(filled, cv2.fitEllipse(pts), 1, thickness=cv2.FILLED)
    return filled.astype(bool)


class HC18Dataset(EntriesDataset):
    """HC18 in the shared or the official layout (see the module docstring)."""

    name = "hc18"

    def __init__(self, root: str | os.PathLike[str], subset: str = "train"):
        self.root = Path(root)
        if subset not in ("train", "test"):
            raise InputError(f"hc18: option subset must be train or test, got {subset!r}")
        if not self.root.is_dir():
            raise InputError(f"hc18 folder not found: {self.root}")
        self.entries: list[HC18Entry] = []
        self.csv_files: list[Path] = []
        if (self.root / SHARED_CSV).exists() and subset == "train":
            self._load_shared()
        elif (self.root / OFFICIAL_CSVS[subset == "test"]).exists():
            self._load_official(subset)
        else:
            raise InputError(f"{self.root}: not an HC18 folder (expected {SHARED_CSV} with images/ and masks/, "
                             f"or the challenge's {OFFICIAL_CSVS[subset == 'test']})")

    def _load_shared(self) -> None:
        csv_path = self.root / SHARED_CSV
        self.csv_files.append(csv_path)
        for line, name, px, hc in read_hc18_csv(csv_path, with_hc=True):
            image = self.root / "images" / name
            mask = self.root / "masks" / f"{Path(name).stem}_Mask.png"
            self.entries.append(HC18Entry(image, mask if mask.exists() else None, False, px, hc, line))

    def _load_official(self, subset: str) -> None:
        with_hc = subset == "train"
        csv_path = self.root / OFFICIAL_CSVS[not with_hc]
        self.csv_files.append(csv_path)
        sub = self.root / ("training_set" if with_hc else "test_set")
        for line, name, px, hc in read_hc18_csv(csv_path, with_hc=with_hc):
            folder = self.root if (self.root / name).exists() or not sub.is_dir() else sub
            image = folder / name
            ann = folder / f"{Path(name).stem}_Annotation.png"
            self.entries.append(HC18Entry(image, ann if ann.exists() else None, True, px, hc, line))

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        image, notes = read_image(e.image)
        masks: dict[str, np.ndarray] = {}
        if e.mask is not None:
            m = read_mask(e.mask, like=image, image_path=e.image)
            masks["head"] = fill_outline(m) if e.outline else m
        meta: dict[str, Any] = {"path": str(e.image), "csv_line": e.line}
        if notes:
            meta["notes"] = [f"{e.image.name}: {n}" for n in notes]
        return Sample(
            image=image,
            pixel_spacing_mm=e.pixel_size_mm,
            masks=masks,
            properties={"hc_mm": e.hc_mm} if e.hc_mm is not None else {},
            plane="trans_thalamic",
            standard=None,
            id=e.id,
            subject=e.subject,
            source="hc18",
            meta=meta,
        )


@register_dataset("hc18")
def _open_hc18(path: str | None, subset: str = "train", **options: Any) -> HC18Dataset:
    if not path:
        raise InputError("hc18: needs a path, e.g. hc18:../shared/data/hc18")
    if options:
        raise InputError(f"hc18: unknown option(s) {', '.join(options)}; known: subset (train/test), split")
    return HC18Dataset(path, subset=str(subset))
