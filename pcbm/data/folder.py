"""The folder format — users' own data and the phantom's output — and its writer.

Layout::

    ROOT/
      images/<name>.png               images (PNG/JPEG/BMP/TIFF; any size; converted to 8-bit gray)
      masks/<visual concept>/<name>   one folder per *labelled* visual concept, same file name as the
                                      image (or the same stem with .png); 0 = outside, > 0 = inside.
                                      An all-zero mask means "labelled, structure absent". A concept
                                      folder without a file for an image leaves that concept unlabelled.
      masks/_fov/<name>               optional field of view (scan sector), > 0 inside
      labels.csv                      optional; one row per image (rows define the samples; without
                                      it, every file in images/ is a sample)

``labels.csv`` columns: ``image`` (file name in images/, required), ``plane``, ``standard``
(1/0, true/false, yes/no), ``pixel_spacing_mm``, ``subject`` (defaults to the image stem), any
property concept (``csp_visible``, ``hc_mm``, …), and ``meta.<key>`` columns copied into
``Sample.meta``. An empty cell is unknown (unlabelled); ``na`` in a property column means
"not applicable" (value None, e.g. ``hc_mm`` when no head is in view).

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("folder:my_data")  # doctest: +SKIP
    >>> write_folder(ds, "copy_of_my_data")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PROPERTY_CONCEPT_NAMES, get_plane, get_property_concept, get_visual_concept
from pcbm.data.base import SampleDataset, register_dataset
from pcbm.data.io import list_images, read_image, read_mask, write_png
from pcbm.data.sample import Sample
from pcbm.errors import InputError

FOV_FOLDER = "_fov"
BASE_COLUMNS = ("image", "plane", "standard", "pixel_spacing_mm", "subject")
NOT_APPLICABLE = "na"
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def parse_bool(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise InputError(f"{where}: expected 1/0, true/false or yes/no, got {text!r}")


def parse_float(text: str, where: str, positive: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {text!r}") from None
    if not np.isfinite(v) or (positive and v <= 0):
        raise InputError(f"{where}: expected a {'positive ' if positive else ''}finite number, got {text!r}")
    return v


def _lookup(getter: Any, name: str, where: str) -> Any:
    try:
        return getter(name)
    except KeyError as e:
        raise InputError(f"{where}: {e.args[0]}") from None


class FolderDataset(SampleDataset):
    """Samples from a folder in the format above (``folder:PATH``)."""

    name = "folder"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"folder dataset not found: {self.root}")
        self.image_dir = self.root / "images"
        if not self.image_dir.is_dir():
            raise InputError(f"{self.root}: no images/ folder (expected images/, masks/<concept>/, labels.csv)")
        self.mask_dirs = self._mask_dirs()
        self.labels_path = self.root / "labels.csv"
        self.rows = self._read_labels() if self.labels_path.exists() else [
            {"image": p.name} for p in list_images(self.image_dir)]
        self.property_columns = [c for c in (self.rows[0] if self.rows else {}) if c in PROPERTY_CONCEPT_NAMES]

    def _mask_dirs(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        mask_root = self.root / "masks"
        if not mask_root.is_dir():
            return out
        for d in sorted(p for p in mask_root.iterdir() if p.is_dir()):
            if d.name != FOV_FOLDER:
                _lookup(get_visual_concept, d.name, f"{d}: mask folder")
            out[d.name] = d
        return out

    def _read_labels(self) -> list[dict[str, str]]:
        path = self.labels_path
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty file (expected a header with an 'image' column)")
            header = [h.strip() for h in header]
            if "image" not in header:
                raise InputError(f"{path}, line 1: no 'image' column (columns: {', '.join(header)})")
            for col in header:
                if col not in BASE_COLUMNS and not col.startswith("meta."):
                    _lookup(get_property_concept, col, f"{path}, line 1: column {col!r}")
            rows: list[dict[str, str]] = []
            for line_no, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise InputError(f"{path}, line {line_no}: {len(values)} fields, expected {len(header)}")
                row = dict(zip(header, (v.strip() for v in values), strict=True))
                row["_line"] = str(line_no)
                if not row["image"]:
                    raise InputError(f"{path}, line {line_no}: empty 'image' cell")
                self._validate_row(row, f"{path}, line {line_no}")
                rows.append(row)
        return rows

    @staticmethod
    def _validate_row(row: dict[str, str], where: str) -> None:
        if row.get("plane"):
            _lookup(get_plane, row["plane"], where)
        if row.get("standard"):
            parse_bool(row["standard"], f"{where}, column 'standard'")
        if row.get("pixel_spacing_mm"):
            parse_float(row["pixel_spacing_mm"], f"{where}, column 'pixel_spacing_mm'", positive=True)
        for col, v in row.items():
            if col in PROPERTY_CONCEPT_NAMES and v and v.lower() != NOT_APPLICABLE:
                c = get_property_concept(col)
                parse_bool(v, f"{where}, column {col!r}") if c.binary else parse_float(v, f"{where}, column {col!r}")

    def __len__(self) -> int:
        return len(self.rows)

    def subject_of(self, index: int) -> str:
        row = self.rows[index]
        return row.get("subject") or Path(row["image"]).stem

    def mask_path(self, concept: str, image_name: str) -> Path | None:
        """The mask file of ``concept`` for image ``image_name``, or None when not labelled."""
        d = self.mask_dirs.get(concept)
        if d is None:
            return None
        for cand in (d / image_name, d / (Path(image_name).stem + ".png")):
            if cand.is_file():
                return cand
        return None

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not 0 <= index < len(self):
            raise IndexError(index)
        row = self.rows[index]
        where = f"{self.labels_path}, line {row['_line']}" if "_line" in row else str(self.image_dir)
        image_path = self.image_dir / row["image"]
        image, notes = read_image(image_path)
        masks: dict[str, np.ndarray] = {}
        fov = None
        for concept in self.mask_dirs:
            mp = self.mask_path(concept, row["image"])
            if mp is None:
                continue
            m = read_mask(mp, like=image, image_path=image_path)
            if concept == FOV_FOLDER:
                fov = m
            else:
                masks[concept] = m
        props: dict[str, float | None] = {}
        for col in self.property_columns:
            v = row.get(col, "")
            if not v:
                continue
            if v.lower() == NOT_APPLICABLE:
                props[col] = None
            elif get_property_concept(col).binary:
                props[col] = float(parse_bool(v, where))
            else:
                props[col] = parse_float(v, where)
        meta: dict[str, Any] = {"path": str(image_path)}
        meta.update({k[5:]: v for k, v in row.items() if k.startswith("meta.") and v})
        if notes:
            meta["notes"] = [f"{image_path.name}: {n}" for n in notes]
        return Sample(
            image=image,
            pixel_spacing_mm=parse_float(row["pixel_spacing_mm"], where) if row.get("pixel_spacing_mm") else None,
            masks=masks,
            properties=props,
            plane=row.get("plane") or None,
            standard=parse_bool(row["standard"], where) if row.get("standard") else None,
            id=Path(row["image"]).stem,
            subject=self.subject_of(index),
            source="folder",
            field_of_view=fov,
            meta=meta,
        )


@register_dataset("folder")
def _open_folder(path: str | None, **options: Any) -> FolderDataset:
    if not path:
        raise InputError("folder: needs a path, e.g. folder:my_data")
    if options:
        raise InputError(f"folder: unknown option(s) {', '.join(options)}; the folder format takes none")
    return FolderDataset(path)


def _cell(value: Any) -> str:
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


def write_folder(samples: Iterable[Sample], out: str | os.PathLike[str], progress: bool = True) -> Path:
    """Write samples in the folder format, atomically (a temporary folder renamed onto ``out``).

    Images and masks are written as PNG named ``<sample.id>.png``; a labelled-but-empty mask is
    written (all zero) so "labelled absent" survives a round trip; unlabelled concepts are not
    written. ``field_of_view`` goes to ``masks/_fov/``. Scalar ``meta`` entries become
    ``meta.<key>`` columns. An existing ``out`` is replaced only if it is a folder dataset (has
    labels.csv) or empty.

    Returns:
        ``out`` as a Path.

    Raises:
        InputError: duplicate sample ids, or ``out`` is a non-empty folder that is not a dataset.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "labels.csv").exists())):
        raise InputError(f"{out} exists and is not a folder dataset; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = _write_files(samples, tmp, progress, out.name)
        _write_labels(rows, tmp / "labels.csv")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_files(samples: Iterable[Sample], root: Path, progress: bool, label: str) -> list[dict[str, str]]:
    from rich.progress import track

    items = samples
    if progress:
        total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
        items = track(samples, description=f"writing {label}", total=total, transient=True)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for s in items:
        if not s.id or s.id in seen:
            raise InputError(f"cannot write folder dataset: {'empty' if not s.id else 'duplicate'} sample id {s.id!r}")
        seen.add(s.id)
        name = f"{s.id}.png"
        write_png(root / "images" / name, s.image)
        for concept, m in s.masks.items():
            get_visual_concept(concept)
            write_png(root / "masks" / concept / name, np.asarray(m).astype(bool))
        if s.field_of_view is not None:
            write_png(root / "masks" / FOV_FOLDER / name, np.asarray(s.field_of_view).astype(bool))
        row = {"image": name, "plane": s.plane or "", "standard": "" if s.standard is None else _cell(s.standard),
               "pixel_spacing_mm": "" if s.pixel_spacing_mm is None else _cell(s.pixel_spacing_mm),
               "subject": s.subject if s.subject != s.id else ""}
        for k, v in s.properties.items():
            get_property_concept(k)
            row[k] = _cell(v)
        for k, v in s.meta.items():
            if isinstance(v, str | int | float | bool) and k not in ("path", "notes") and "," not in k:
                row[f"meta.{k}"] = _cell(v)
        rows.append(row)
    (root / "images").mkdir(exist_ok=True)
    return rows


def _write_labels(rows: list[dict[str, str]], path: Path) -> None:
    present = {k for r in rows for k in r}
    props = [p for p in PROPERTY_CONCEPT_NAMES if p in present]
    metas = sorted(k for k in present if k.startswith("meta."))
    header = [*BASE_COLUMNS, *props, *metas]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, restval="")
        w.writeheader()
        w.writerows(rows)
