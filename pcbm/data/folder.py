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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PROPERTY_CONCEPT_NAMES, get_plane, get_property_concept, get_visual_concept
from pcbm.data.base import SampleDataset, register_dataset
from pcbm.data.io import list_images, read_image, read_mask, write_png
from pcbm.data.sample import Sample
from pcbm.data.tables import CsvError, Problems, new_file_name, read_csv
from pcbm.errors import InputError
from pcbm.validate import finite, pixel_spacing

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


def _lookup(getter: Any, name: str, where: str) -> Any:
    try:
        return getter(name)
    except KeyError as e:
        raise InputError(f"{where}: {e.args[0]}") from None


def _check_cell(col: str, value: str) -> None:
    """Raise InputError (starting with the column) when a non-empty labels.csv cell is malformed."""
    where = f"column {col!r}"
    if col == "plane":
        _lookup(get_plane, value, where)
    elif col == "standard":
        parse_bool(value, where)
    elif col == "pixel_spacing_mm":
        pixel_spacing(value, where)
    elif col in PROPERTY_CONCEPT_NAMES and value.lower() != NOT_APPLICABLE:
        if get_property_concept(col).binary:
            parse_bool(value, where)
        else:
            finite(value, where, positive=True)


class FolderDataset(SampleDataset):
    """Samples from a folder in the format above (``folder:PATH``).

    With ``lenient`` (``pcbm data check``) the problems of labels.csv and masks/ are kept in
    ``self.problems`` as ``(where, message)``: rows that cannot be read are left out, malformed
    cells are read as empty (unlabelled), unknown columns and mask folders are ignored. Otherwise
    they raise one InputError listing the first few.
    """

    name = "folder"

    def __init__(self, root: str | os.PathLike[str], lenient: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"folder dataset not found: {self.root}" if not self.root.exists()
                             else f"folder dataset {self.root} is a file, not a folder")
        self.image_dir = self.root / "images"
        if not self.image_dir.is_dir():
            raise InputError(f"{self.root}: no images/ folder (expected images/, masks/<concept>/, labels.csv)")
        log = Problems(lenient)
        self.mask_dirs = self._mask_dirs(log)
        self.labels_path = self.root / "labels.csv"
        self.columns: list[str] = ["image"]
        self.rows = self._read_labels(log) if self.labels_path.exists() else [
            {"image": p.name} for p in list_images(self.image_dir)]
        self.property_columns = [c for c in self.columns if c in PROPERTY_CONCEPT_NAMES]
        self.problems = log.items
        log.raise_any(f"folder:{self.root}")

    def _mask_dirs(self, log: Problems) -> dict[str, Path]:
        out: dict[str, Path] = {}
        mask_root = self.root / "masks"
        if not mask_root.is_dir():
            return out
        for d in sorted(p for p in mask_root.iterdir() if p.is_dir()):
            if d.name != FOV_FOLDER:
                try:
                    _lookup(get_visual_concept, d.name, "mask folder")
                except InputError as e:
                    log.add(str(d), e)
                    continue
            out[d.name] = d
        return out

    def _read_labels(self, log: Problems) -> list[dict[str, str]]:
        path, spec = self.labels_path, f"folder:{self.root}"
        try:
            table = read_csv(path, expect="a header with an 'image' column")
        except CsvError as e:
            log.fatal(e.where, e.detail, spec)
            return []
        header_line, header = table[0]
        at = f"{path}, line {header_line}"
        if "image" not in header:
            log.fatal(at, f"no 'image' column (columns: {', '.join(header)}; is it ','-separated?)", spec)
            return []
        keep: list[int] = []
        for i, col in enumerate(header):
            if not col:
                log.add(at, f"column {i + 1} has no name")
            elif col in header[:i]:
                log.add(at, f"column {col!r} appears twice")
            elif col not in BASE_COLUMNS and not col.startswith("meta."):
                try:
                    _lookup(get_property_concept, col, f"column {col!r}")
                    keep.append(i)
                except InputError as e:
                    log.add(at, e)
            else:
                keep.append(i)
        self.columns = [header[i] for i in keep]
        rows: list[dict[str, str]] = []
        first_line: dict[str, int] = {}
        for line_no, values in table[1:]:
            at = f"{path}, line {line_no}"
            if len(values) != len(header):
                log.add(at, f"{len(values)} fields, expected {len(header)}")
                continue
            row = {header[i]: values[i] for i in keep}
            name = row["image"]
            if not name:
                log.add(at, "empty 'image' cell")
                continue
            if not new_file_name(name, "'image'", first_line, line_no, log, at):
                continue
            for col, v in row.items():
                if v:
                    try:
                        _check_cell(col, v)
                    except InputError as e:
                        log.add(at, e)
                        row[col] = ""  # lenient: read as unlabelled
            row["_line"] = str(line_no)
            rows.append(row)
        return rows

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
        for col in self.property_columns:  # cells were checked when labels.csv was read
            v = row.get(col, "")
            if not v:
                continue
            if v.lower() == NOT_APPLICABLE:
                props[col] = None
            elif get_property_concept(col).binary:
                props[col] = float(parse_bool(v, where))
            else:
                props[col] = float(v)
        meta: dict[str, Any] = {"path": str(image_path)}
        meta.update({k[5:]: v for k, v in row.items() if k.startswith("meta.") and v})
        if notes:
            meta["notes"] = [f"{image_path.name}: {n}" for n in notes]
        return Sample(
            image=image,
            pixel_spacing_mm=float(row["pixel_spacing_mm"]) if row.get("pixel_spacing_mm") else None,
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
def _open_folder(path: str | None, lenient: bool = False) -> FolderDataset:
    if not path:
        raise InputError("data spec 'folder:' needs a path, e.g. folder:my_data")
    return FolderDataset(path, lenient=lenient)


def _cell(value: Any) -> str:
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


def write_folder(samples: Iterable[Sample], out: str | os.PathLike[str], progress: bool = True,
                 overwrite: bool = False, what: str = "--out") -> Path:
    """Write samples in the folder format; the folder appears whole or not at all.

    Images and masks are written as PNG named ``<sample.id>.png``; a labelled-but-empty mask is
    written (all zero) so "labelled absent" survives a round trip; unlabelled concepts are not
    written. ``field_of_view`` goes to ``masks/_fov/``. Scalar ``meta`` entries become
    ``meta.<key>`` columns.

    ``out`` is checked before the first sample is drawn from ``samples`` (so before anything is
    rendered): a file in the way or an unwritable parent is refused, and so is a non-empty folder
    unless ``overwrite`` — and even then only a folder dataset (one with labels.csv) is replaced,
    never a folder of other files. The set is built in a temporary sibling and renamed onto ``out``
    when complete; on any error ``out`` is left as it was.

    Args:
        samples: the samples (any iterable; a generator is consumed once).
        out: the folder to write.
        progress: show a progress bar.
        overwrite: replace an existing folder dataset at ``out``.
        what: how ``out`` is named in messages (the CLI flag).

    Returns:
        ``out`` as a Path.

    Raises:
        InputError: ``out`` cannot or must not be written, duplicate or empty sample ids, or an
        unknown concept.
        OSError: a write that fails (disk full, …); nothing is left behind.
    """
    from pcbm._io import check_output_dir, staged_dir

    out = Path(out)
    check_output_dir(out, what, overwrite=overwrite)
    if out.is_dir() and any(out.iterdir()) and not (out / "labels.csv").is_file():
        raise InputError(f"{what} {out} is not a folder dataset (no labels.csv) and not empty; refusing to replace "
                         "it even with --overwrite (choose a new folder)")
    with staged_dir(out, overwrite=overwrite, what=what) as tmp:  # an OSError (disk full) leaves ``out`` as it was
        rows = _write_files(samples, tmp, progress, out.name)
        _write_labels(rows, tmp / "labels.csv")
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
