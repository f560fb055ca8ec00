"""DICOMs full of patient data, and a scan of output folders for any of it (names, bytes, pixels).

Shared by tests/explain/test_report_dicom.py and bench/bench_bad_inputs.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from dicom_helpers import PHI, PHI_REGION, PID, WHOLE_FRAME, make_dicom, phi_frame, text_pixels

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
    from pcbm.data.io import read_image

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
            frames = {0: phi_frame(), 1: phi_frame(1), 2: phi_frame(2)}
            with open(manifest, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    image, _ = read_image(folder / "images" / row["image"])
                    x0, y0, x1, y1 = (int(v) for v in row["crop"].split(","))
                    if any(np.array_equal(frames[k][y0:y1, x0:x1] > 0, image > 0) for k in frames):
                        found.append((row["image"], "raw frame unmasked"))
                    for k, frame in frames.items():  # whichever frame it came from, its text must be black
                        text = text_pixels(frame)[y0:y1, x0:x1]
                        if text.shape == image.shape and np.array_equal(
                                (image > 0) & ~text, (frame[y0:y1, x0:x1] > 0) & ~text) and image[text].any():
                            found.append((row["image"], f"burned-in text pixels survive (frame {k})"))
    return {"files": n_files, "identifiers": len(needles), "found": found}
