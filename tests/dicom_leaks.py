"""DICOMs full of patient data, and a scan of output folders for any of it (names, bytes, pixels).

Shared by tests/explain/test_report_dicom.py and bench/bench_bad_inputs.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from dicom_helpers import PHI, PHI_REGION, PID, WHOLE_FRAME, fan_mask, make_dicom, phi_frame, text_pixels

SOURCE_NAMES = ("DOE_JANE", PID, "whole_frame", "no_region")


def write_phi_dicoms(root: Path) -> Path:
    """A folder whose folder names, file names, tags, private tags and pixels all carry patient data."""
    make_dicom(root / "DOE_JANE" / f"{PID}_region.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True)
    make_dicom(root / "DOE_JANE" / "whole_frame.dcm", pixels=phi_frame(1), region=WHOLE_FRAME, phi=True)
    make_dicom(root / "DOE_JANE" / "no_region.dcm", pixels=phi_frame(2), region_cm=None, phi=True,
               pixel_spacing=[0.3, 0.3])
    return root


def scan_outputs(folders: list[Path], src: Path) -> dict:
    """Every identifier (PHI strings, source names and paths) in any file name or file's bytes under
    ``folders``, and burned-in text pixels surviving in the ETL's images (checked through manifest.csv).

    Returns:
        {"files": n files searched, "identifiers": n strings, "found": [(file, what), …]}
    """

    needles = [*PHI, *SOURCE_NAMES, str(src), str(src.resolve())]
    found: list[tuple[str, str]] = []
    n_files = 0
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder).as_posix()
            found += [(rel, f"name has {n!r}") for n in needles if n.lower() in rel.lower()]
            if p.is_file():
                n_files += 1
                data = p.read_bytes()
                found += [(rel, f"holds {n!r}") for n in needles if n.encode() in data]
        manifest = folder / "manifest.csv"
        if manifest.is_file():
            found += _surviving_text(folder, manifest)
    return {"files": n_files, "identifiers": len(needles), "found": found}


def _surviving_text(folder: Path, manifest: Path) -> list[tuple[str, str]]:
    """ETL images (found through manifest.csv) whose burned-in text pixels are not black."""
    from pcbm.data.io import read_image

    frames = [phi_frame(), phi_frame(1), phi_frame(2)]
    found = []
    with open(manifest, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            image, _ = read_image(folder / "images" / row["image"])
            x0, y0, x1, y1 = (int(v) for v in row["crop"].split(","))
            fan = fan_mask()[y0:y1, x0:x1]
            for frame in frames:  # the source frame is the one whose scan pixels are these
                raw = frame[y0:y1, x0:x1]
                if raw.shape == image.shape and np.array_equal(raw[fan], image[fan]):
                    if image[text_pixels(frame)[y0:y1, x0:x1]].any():
                        found.append((row["image"], "burned-in text pixels survive"))
    return found
