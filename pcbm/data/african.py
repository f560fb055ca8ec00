"""The African fetal planes set (Sendra-Balcells et al., 2023, Zenodo 7540448): five centres, four planes.

Layout (``african:PATH``, checked against the shared copy of the release): ``African_planes_database.csv``
(comma-separated; a ``;``-separated file is read too) with columns ``Patient_num, Plane, Train, Center,
Image_name`` and the images at ``<Center>/<Image_name>.png``. Copies that name the image column
``Filename`` (an older third-party layout) are read too, and an optional ``Brain_plane`` column gives a
brain image its sub-plane; the real release has none.

* **Subjects** are keyed by centre *and* patient (``Malawi:12``): patient numbers restart in every
  country, so ``Patient_num`` alone would merge different women.
* **Byte-identical images** (same SHA-256) are listed once: the first row is kept, later ones are
  dropped and reported in ``ds.duplicates`` (``(kept, dropped, same_label)`` file names).
* **Splits** (``?split=val&val_fraction=0.3``) are by subject and stratified by centre: every centre
  gives the same share of its women to the held-out side.
* **Leave-one-centre-out**: ``exclude_centre=Ghana`` (``+``-joined for several) keeps the other centres,
  ``centre=Ghana`` only that one.
* **Train flag**: ``Train`` = 1 marks the authors' training rows and 0 their test rows, as in
  FETAL_PLANES_DB by the same group (``1``/``0``, ``True``/``False`` and ``1.0``/``0.0`` all read). The
  option ``train=1`` keeps the training rows, ``train=0`` the test rows.
* **Planes**: "Fetal abdomen" -> abdomen, "Fetal femur" -> femur, "Fetal thorax" -> thorax; "Fetal
  brain" -> the sub-plane when ``Brain_plane`` names one (Trans-thalamic, -ventricular,
  -cerebellum), else the sample's plane is unlabelled (``None``) and ``meta["plane_group"]`` is
  ``"head"``: the benchmark scores such a set on plane groups (head, abdomen, femur, thorax).

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("african:Zenodo_7540448?train=0")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.fetal_planes_db import BRAIN_PLANE_MAP, PLANE_MAP
from pcbm.data.io import read_image
from pcbm.data.sample import Sample
from pcbm.data.tables import CsvError, Problems, header_columns, new_file_name, read_csv
from pcbm.errors import InputError

CSV_NAME = "African_planes_database.csv"
REQUIRED_COLUMNS = ("Image_name", "Plane", "Patient_num", "Center")
IMAGE_COLUMNS = ("Image_name", "Filename")  # the release's name for the image column, and an older copy's
TRAIN_VALUES = {"1": "1", "0": "0", "1.0": "1", "0.0": "0", "true": "1", "false": "0", "": ""}


@dataclass(frozen=True)
class AfricanEntry:
    image: Path
    subject: str  # "<Center>:<Patient_num>"
    plane: str | None  # our plane; None for a brain image without a sub-plane
    group: str | None  # plane group (head, abdomen, femur, thorax); None for an unknown Plane
    original_plane: str
    centre: str
    train: str  # "1", "0" or "" (not given)
    line: int


def map_african_plane(plane: str, brain_plane: str = "") -> tuple[str | None, str | None]:
    """(our plane or None, plane group or None) for a (Plane, Brain_plane) pair of the African set.

    Example:
        >>> map_african_plane("Fetal brain", "")
        (None, 'head')
        >>> map_african_plane("Fetal brain", "Trans-thalamic")
        ('trans_thalamic', 'head')
        >>> map_african_plane("Fetal femur")
        ('femur', 'femur')
    """
    p = plane.strip().lower()
    if p == "fetal brain":
        return BRAIN_PLANE_MAP.get(brain_plane.strip().lower()), "head"
    ours = PLANE_MAP.get(p)
    return ours, ours


class AfricanPlanesDataset(EntriesDataset):
    """The African fetal planes set (see the module docstring)."""

    name = "african"

    def __init__(self, root: str | os.PathLike[str], train: int | None = None, centre: str | None = None,
                 lenient: bool = False, exclude_centre: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"african folder not found: {self.root}" if not self.root.exists()
                             else f"african folder {self.root} is a file, not a folder")
        csv_path = self.root / CSV_NAME
        if not csv_path.is_file():
            raise InputError(f"{self.root}: no {CSV_NAME} (expected it beside one folder of images per centre)")
        log = Problems(lenient)
        entries = self._read(csv_path, log)
        self.problems = log.items
        log.raise_any(f"african:{self.root}")
        self.centres = sorted({e.centre for e in entries})
        if centre is not None:
            want = str(centre).strip().lower()
            entries = [e for e in entries if e.centre.lower() == want]
            if not entries:
                raise InputError(f"african: no images from centre {centre!r}; known: {', '.join(self.centres)}")
        if exclude_centre is not None:  # leave-one-centre-out: train on the others (``centre=`` is the held-out side)
            drop = {c.strip().lower() for c in str(exclude_centre).split("+")}
            unknown = sorted(drop - {c.lower() for c in self.centres})
            if unknown:
                raise InputError(f"african: exclude_centre {unknown[0]!r} names no centre; known: {', '.join(self.centres)}")
            entries = [e for e in entries if e.centre.lower() not in drop]
        if train is not None:
            if str(train) not in ("0", "1"):
                raise InputError(f"african: option train must be 0 or 1, got {train!r}")
            entries = [e for e in entries if e.train == str(train)]
        self.entries, self.duplicates = _drop_duplicates(entries)

    def _read(self, path: Path, log: Problems) -> list[AfricanEntry]:
        spec = f"african:{self.root}"
        try:
            table = _read_either(path)
        except CsvError as e:
            log.fatal(e.where, e.detail, spec)
            return []
        header = table[0][1]
        image_col = next((c for c in IMAGE_COLUMNS if c in header), IMAGE_COLUMNS[0])
        required = (image_col, *REQUIRED_COLUMNS[1:])
        col = header_columns(table, path, required, log, spec)
        if col is None:
            return []
        out: list[AfricanEntry] = []
        seen: dict[str, int] = {}
        for line, values in table[1:]:
            at = f"{path}, line {line}"
            if len(values) < len(header):
                log.add(at, f"{len(values)} fields, expected {len(header)}")
                continue
            v = {h: values[i] for h, i in col.items()}
            centre, patient = v["Center"], v["Patient_num"]
            stem = v[image_col]
            name = stem if Path(stem).suffix.lower() == ".png" else f"{stem}.png"
            if not centre or not patient:
                log.add(at, "empty 'Center' or 'Patient_num' cell (subjects are keyed by both)")
                continue
            if not new_file_name(f"{centre}/{name}".replace("/", "_"), f"'{image_col}'", seen, line, log, at):
                continue
            plane, group = map_african_plane(v["Plane"], v.get("Brain_plane", ""))
            if group is None:
                log.add(at, f"column 'Plane': unknown plane {v['Plane']!r}; known: Fetal abdomen, Fetal brain, "
                            "Fetal femur, Fetal thorax")
            train = TRAIN_VALUES.get(v.get("Train", "").strip().lower())
            if train is None:
                log.add(at, f"column 'Train': expected 0 or 1, got {v['Train']!r}")
                train = ""
            out.append(AfricanEntry(self.root / centre / name, f"{centre}:{patient}", plane, group, v["Plane"],
                                    centre, train, line))
        return out

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        image, notes = read_image(e.image)
        meta: dict[str, Any] = {"path": str(e.image), "csv_line": e.line, "centre": e.centre,
                                "original_plane": e.original_plane, "plane_group": e.group, "official_train": e.train}
        if notes:
            meta["notes"] = [f"{e.image.name}: {n}" for n in notes]
        return Sample(image=image, plane=e.plane, id=f"{e.centre}_{e.image.stem}", subject=e.subject,
                      source="african", meta=meta)

    def item_name(self, index: int) -> str:
        e = self.entries[index]
        return f"{e.centre}_{e.image.stem}"

    def stratum_of(self, index: int) -> str | None:
        """Splits are stratified by centre (each subject has one image of every plane)."""
        return self.entries[index].centre


def _read_either(path: Path) -> list[tuple[int, list[str]]]:
    """The CSV as comma-separated, else as ``;``-separated (the first error is the one reported)."""
    try:
        return read_csv(path, delimiter=",", expect=f"a header with {', '.join(REQUIRED_COLUMNS)}")
    except CsvError as first:
        try:
            return read_csv(path, delimiter=";")
        except CsvError:
            raise first from None


def _drop_duplicates(entries: list[AfricanEntry]) -> tuple[list[AfricanEntry], list[tuple[str, str, bool]]]:
    """Entries without byte-identical repeats, and ``(kept, dropped, same_label)`` for each dropped one.
    A missing file is kept (reading it later names it)."""
    first: dict[str, AfricanEntry] = {}
    kept, dropped = [], []
    for e in entries:
        try:
            digest = hashlib.sha256(e.image.read_bytes()).hexdigest()
        except OSError:
            kept.append(e)
            continue
        if digest in first:
            k = first[digest]
            dropped.append((f"{k.centre}/{k.image.name}", f"{e.centre}/{e.image.name}",
                            (k.plane, k.group) == (e.plane, e.group)))
            continue
        first[digest] = e
        kept.append(e)
    return kept, dropped


@register_dataset("african")
def _open_african(path: str | None, train: int | None = None, centre: str | None = None,
                  lenient: bool = False, exclude_centre: str | None = None) -> AfricanPlanesDataset:
    if not path:
        raise InputError("data spec 'african:' needs a path, e.g. african:Zenodo_7540448")
    return AfricanPlanesDataset(path, train=train, centre=centre, lenient=lenient, exclude_centre=exclude_centre)
