"""FETAL_PLANES_DB (Burgos-Artizzu et al., 2020): maternal-fetal planes, plane labels only.

Layout (``fetal_planes_db:PATH``): ``FETAL_PLANES_DB_data.csv`` (``;``-separated, columns
``Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train``) and
``Images/<Image_name>.png``.

Planes map onto ours: "Fetal brain" with Brain_plane Trans-thalamic / Trans-ventricular /
Trans-cerebellum onto the three head planes (any other brain plane onto ``other``), "Fetal abdomen"
-> abdomen, "Fetal femur" -> femur, "Fetal thorax" -> thorax, "Maternal cervix" -> cervix,
"Other" -> other. Subject = ``Patient_num``, so splits never separate a patient's images; splits are
stratified by plane group (each group gives the same share of its patients to the held-out side).

The file names encode the class too (``PatientNNNNN_PlaneK_i_of_n``: K = 1 Other, 2 Fetal abdomen,
3 Fetal brain, 4 Maternal cervix, 5 Fetal femur, 6 Fetal thorax); the loader reads the class from the
CSV only.

Options (``fetal_planes_db:PATH?machine=Voluson E6&train=1``):
    machine: keep only images of this ``US_Machine`` (case-insensitive), for cross-scanner tests.
    exclude_machine: keep every image *except* this machine's (``+``-joined for several): with
        ``machine=`` on the same name it is the cross-scanner split (train on the other scanners,
        test on this one; ``pcbm bench backbones --data "...?exclude_machine=Voluson E6" --ood
        "...?machine=Voluson E6"``). A patient scanned on both sides appears on both.
    train: 1 keeps the official training rows (``Train`` = 1), 0 the official test rows.

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("fetal_planes_db:FETAL_PLANES_ZENODO?machine=Aloka")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcbm.concepts import get_plane
from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.io import read_image
from pcbm.data.sample import Sample
from pcbm.data.tables import CsvError, Problems, header_columns, new_file_name, read_csv
from pcbm.errors import InputError

CSV_NAME = "FETAL_PLANES_DB_data.csv"
REQUIRED_COLUMNS = ("Image_name", "Patient_num", "Plane", "Brain_plane", "US_Machine")
PLANE_MAP = {
    "fetal abdomen": "abdomen",
    "fetal femur": "femur",
    "fetal thorax": "thorax",
    "maternal cervix": "cervix",
    "other": "other",
}
BRAIN_PLANE_MAP = {
    "trans-thalamic": "trans_thalamic",
    "trans-ventricular": "trans_ventricular",
    "trans-cerebellum": "trans_cerebellar",
    "trans-cerebellar": "trans_cerebellar",
}


def map_plane(plane: str, brain_plane: str, where: str = "") -> str:
    """Our plane name for a FETAL_PLANES_DB (Plane, Brain_plane) pair.

    Raises:
        InputError: an unknown Plane value.
    """
    p = plane.strip().lower()
    if p == "fetal brain":
        return BRAIN_PLANE_MAP.get(brain_plane.strip().lower(), "other")
    if p not in PLANE_MAP:
        known = ", ".join(["Fetal brain", "Fetal abdomen", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"])
        raise InputError(f"{where}unknown Plane {plane!r}; known: {known}")
    return PLANE_MAP[p]


@dataclass(frozen=True)
class FPDBEntry:
    image: Path
    subject: str
    plane: str | None  # None only in a leniently read CSV with an unknown Plane
    original_plane: str
    brain_plane: str
    machine: str
    operator: str
    train: str
    line: int


class FetalPlanesDBDataset(EntriesDataset):
    """FETAL_PLANES_DB (see the module docstring)."""

    name = "fetal_planes_db"

    def __init__(self, root: str | os.PathLike[str], machine: str | None = None, train: int | None = None,
                 lenient: bool = False, exclude_machine: str | None = None):
        self.root = Path(root)
        csv_path = self.root / CSV_NAME
        if not self.root.is_dir():
            raise InputError(f"fetal_planes_db folder not found: {self.root}" if not self.root.exists()
                             else f"fetal_planes_db folder {self.root} is a file, not a folder")
        if not csv_path.is_file():
            raise InputError(f"{self.root}: no {CSV_NAME} (expected it with an Images/ folder)")
        self.csv_path = csv_path
        log = Problems(lenient)
        all_entries = self._read(csv_path, log)
        self.problems = log.items
        log.raise_any(f"fetal_planes_db:{self.root}")
        self.machines = sorted({e.machine for e in all_entries})
        entries = all_entries
        if machine is not None:
            want = str(machine).strip().lower()
            entries = [e for e in entries if e.machine.lower() == want]
            if not entries and all_entries:
                raise InputError(f"fetal_planes_db: no images from machine {machine!r}; known: {', '.join(self.machines)}")
        if exclude_machine is not None:
            drop = {m.strip().lower() for m in str(exclude_machine).split("+")}
            unknown = sorted(drop - {m.lower() for m in self.machines})
            if unknown and all_entries:
                raise InputError(f"fetal_planes_db: exclude_machine {unknown[0]!r} names no machine; known: "
                                 f"{', '.join(self.machines)}")
            entries = [e for e in entries if e.machine.lower() not in drop]
        if train is not None:
            if str(train) not in ("0", "1"):
                raise InputError(f"fetal_planes_db: option train must be 0 or 1, got {train!r}")
            entries = [e for e in entries if e.train == str(train)]
        self.entries = entries

    def _read(self, path: Path, log: Problems) -> list[FPDBEntry]:
        spec = f"fetal_planes_db:{self.root}"
        try:
            table = read_csv(path, delimiter=";", expect=f"a header with {', '.join(REQUIRED_COLUMNS)}")
        except CsvError as e:
            log.fatal(e.where, e.detail, spec)
            return []
        col = header_columns(table, path, REQUIRED_COLUMNS, log, spec, "; is it ';'-separated?")
        if col is None:
            return []
        header = table[0][1]
        out: list[FPDBEntry] = []
        seen: dict[str, int] = {}
        for line, values in table[1:]:
            at = f"{path}, line {line}"
            if len(values) < len(header):
                log.add(at, f"{len(values)} fields, expected {len(header)}")
                continue
            v = {h: values[i] for h, i in col.items()}
            name = v["Image_name"]
            if not new_file_name(name, "'Image_name'", seen, line, log, at):
                continue
            subject = v["Patient_num"]
            if not subject:
                log.add(at, "empty 'Patient_num' cell (splits keep a patient's images together; every row needs one)")
                subject = Path(name).stem
            try:
                plane: str | None = map_plane(v["Plane"], v["Brain_plane"], "column 'Plane': ")
            except InputError as e:
                log.add(at, e)
                plane = None
            train = v.get("Train", "")
            if train not in ("", "0", "1"):
                log.add(at, f"column 'Train': expected 0 or 1, got {train!r}")
                train = ""
            image = self.root / "Images" / (name if Path(name).suffix.lower() == ".png" else f"{name}.png")
            out.append(FPDBEntry(image, subject, plane, v["Plane"], v["Brain_plane"], v["US_Machine"],
                                 v.get("Operator", ""), train, line))
        return out

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        image, notes = read_image(e.image)
        meta: dict[str, Any] = {"path": str(e.image), "csv_line": e.line, "machine": e.machine,
                                "operator": e.operator, "original_plane": e.original_plane,
                                "brain_plane": e.brain_plane, "official_train": e.train}
        if notes:
            meta["notes"] = [f"{e.image.name}: {n}" for n in notes]
        return Sample(image=image, plane=e.plane, id=e.image.stem, subject=e.subject,
                      source="fetal_planes_db", meta=meta)


    def stratum_of(self, index: int) -> str | None:
        """Splits are stratified by plane group (a patient counts in the group of their first image)."""
        plane = self.entries[index].plane
        return "unlabelled" if plane is None else get_plane(plane).group


@register_dataset("fetal_planes_db")
def _open_fpdb(path: str | None, machine: str | None = None, train: int | None = None,
               lenient: bool = False, exclude_machine: str | None = None) -> FetalPlanesDBDataset:
    if not path:
        raise InputError("data spec 'fetal_planes_db:' needs a path, e.g. fetal_planes_db:FETAL_PLANES_ZENODO")
    return FetalPlanesDBDataset(path, machine=machine, train=train, lenient=lenient, exclude_machine=exclude_machine)
