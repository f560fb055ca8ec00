"""DICOM → folder-format ETL: harmonise (mask burned-in text, crop to the sector, resize) and write
images, ``labels.csv`` and a ``manifest.csv`` of hashes.

:func:`harmonise` blacks out everything outside the ultrasound field of view — the
``SequenceOfUltrasoundRegions`` region of the header, or, without one, the sector estimated from
the image (:func:`estimate_sector`: the convex hull of the largest bright connected component
after a morphological closing; for a cine, from the maximum over its frames) — crops to its
bounding box and optionally resizes so the long side is ``size`` pixels, updating the pixel
spacing.

:func:`run_etl` walks a folder for DICOM files, converts each (de-identified by
:func:`pcbm.data.deid.deidentify` before anything is used), writes the folder format with
:func:`pcbm.data.folder.write_folder`, and writes ``manifest.csv`` (atomically) with, per image:
the source file relative to the source folder, the source's and the PNG's SHA-256, the frame, the
spacing and its source, the field-of-view source, the crop box and scale. A file that fails is
reported and the others go on. File and folder names can carry patient names: with ``opaque_ids``
the images are named by a salted hash of the source path and the manifest keeps no source path
(its ``source_sha256`` still ties each image to its file for whoever holds the originals).

Example:
    >>> result = run_etl("dicoms/", "my_data", size=512, frames="first")  # doctest: +SKIP
    >>> result.n_images, result.failures  # doctest: +SKIP
    (12, [])
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.data.sample import Sample
from pcbm.errors import InputError

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("image", "source", "frame", "n_frames", "source_sha256", "png_sha256", "width", "height",
                    "pixel_spacing_mm", "pixel_spacing_source", "fov_source", "crop", "scale", "deidentified",
                    "burned_in_masked", "notes")
BRIGHT_THRESHOLD = 10  # gray level above which a pixel counts as "signal" for the sector estimate
MIN_SECTOR_FRACTION = 0.05  # a sector smaller than this fraction of the image is not trusted


def estimate_sector(image: np.ndarray, threshold: int = BRIGHT_THRESHOLD) -> np.ndarray | None:
    """The scan sector as a bool mask: convex hull of the largest bright component after an opening
    and a closing.

    The opening (a disc about 1.5 % of the image wide) first removes thin strokes, so burned-in
    text and calipers that touch the sector do not join it; the closing then fills the dark gaps
    inside it. Text and scale markers apart from the sector are separate components and fall
    outside. Returns None when no component covers ``MIN_SECTOR_FRACTION`` of the image.
    """
    import cv2

    h, w = image.shape
    k = max(3, round(0.03 * max(h, w))) | 1
    k_open = max(3, round(0.015 * max(h, w))) | 1
    bright = (image > threshold).astype(np.uint8)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open)))
    closed = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if n < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_SECTOR_FRACTION * h * w:
        return None
    ys, xs = np.nonzero(labels == best)
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def field_of_view(sample: Sample) -> tuple[np.ndarray | None, str]:
    """The field of view used to mask ``sample`` and where it comes from: the header's region if
    the sample has one, else the sector estimated from the image (None, "" when none is found)."""
    if sample.field_of_view is not None:
        return sample.field_of_view, str(sample.meta.get("fov_source", "dicom"))
    sector = estimate_sector(sample.image)
    return (sector, "estimated") if sector is not None else (None, "")


def cine_field_of_view(samples: list[Sample]) -> tuple[np.ndarray | None, str]:
    """One field of view for all frames of a cine (so they share one crop): the header's region, or
    the sector estimated from the per-pixel maximum over the frames (which fills dark gaps)."""
    if not samples or samples[0].field_of_view is not None or len(samples) == 1:
        return field_of_view(samples[0]) if samples else (None, "")
    sector = estimate_sector(np.max(np.stack([s.image for s in samples]), axis=0))
    return (sector, "estimated:cine") if sector is not None else (None, "")


def harmonise(sample: Sample, size: int | None = None, mask: bool = True, crop: bool = True,
              fov: tuple[np.ndarray | None, str] | None = None) -> Sample:
    """Mask outside the field of view to black, crop to its bounding box, optionally resize.

    Args:
        sample: a raw sample (e.g. from :func:`pcbm.data.dicom.read_dicom`).
        size: resize so that the long side is ``size`` pixels (aspect kept); None keeps the size.
        mask: black out pixels outside the field of view (burned-in text, scale bars).
        crop: crop to the field of view's bounding box.
        fov: (field of view, source) to use instead of :func:`field_of_view` (e.g. one per cine).

    Returns:
        A new sample; its ``field_of_view`` is the (cropped) field of view, its pixel spacing is
        scaled with any resize, and ``meta`` gains ``fov_source``, ``crop`` ("x0,y0,x1,y1" in the
        original image, end exclusive), ``scale`` and ``burned_in_masked``.
    """
    import cv2

    fov, source = field_of_view(sample) if fov is None else fov
    image, masks = sample.image, dict(sample.masks)
    meta = dict(sample.meta)
    notes = list(meta.get("notes", []))
    h, w = image.shape
    x0, y0, x1, y1 = 0, 0, w, h
    if fov is None:
        notes.append(f"{sample.id}: no scan sector found; image kept whole and burned-in text NOT masked")
    else:
        if mask:
            image = np.where(fov, image, 0).astype(np.uint8)
        if crop:
            ys, xs = np.nonzero(fov)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            image, fov = image[y0:y1, x0:x1], fov[y0:y1, x0:x1]
            masks = {k: m[y0:y1, x0:x1] for k, m in masks.items()}
    spacing, scale = sample.pixel_spacing_mm, 1.0
    if size is not None:
        if size < 8:
            raise InputError(f"size must be at least 8 pixels, got {size}")
        ch, cw = image.shape
        scale = size / max(ch, cw)
        new = (max(1, round(cw * scale)), max(1, round(ch * scale)))  # (W, H) for OpenCV
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        masks = {k: cv2.resize(m.astype(np.uint8), new, interpolation=cv2.INTER_NEAREST) > 0 for k, m in masks.items()}
        if fov is not None:
            fov = cv2.resize(fov.astype(np.uint8), new, interpolation=cv2.INTER_NEAREST) > 0
        spacing = None if spacing is None else spacing / scale
    meta.update({"fov_source": source, "crop": f"{x0},{y0},{x1},{y1}", "scale": round(scale, 6),
                 "burned_in_masked": bool(mask and fov is not None)})
    if notes:
        meta["notes"] = notes
    return replace(sample, image=np.ascontiguousarray(image), masks=masks, pixel_spacing_mm=spacing,
                   field_of_view=fov, meta=meta)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class EtlResult:
    """What :func:`run_etl` did: files found, images written, manifest rows and per-file failures."""

    out: Path
    n_files: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source relative path, message)

    @property
    def n_images(self) -> int:
        return len(self.rows)

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.rows)


def run_etl(src: str | os.PathLike[str], out: str | os.PathLike[str], size: int | None = None,
            frames: str = "all", salt: str = "", date_shift_days: int | None = None,
            progress: bool = True, opaque_ids: bool = False) -> EtlResult:
    """Convert every DICOM file under ``src`` into the folder format at ``out`` (see module docstring).

    Args:
        src: folder searched recursively for DICOM files (by the DICM marker or a .dcm extension).
        out: folder dataset to write (replaced if it is one already).
        size: resize so the long side is this many pixels after cropping; None keeps the size.
        frames: "all" (every frame of a cine) or "first".
        salt: secret for patient pseudonyms and UIDs (see :mod:`pcbm.data.deid`).
        date_shift_days: shift header dates instead of removing them.
        progress: show a progress bar over the files.
        opaque_ids: name images ``us_<hash>`` (salted SHA-256 of the source path) instead of after the
            path, and leave the manifest's ``source`` column empty.

    Raises:
        InputError: ``src`` missing or holding no DICOM files, or a bad option. Per-file problems
        do not raise; they are in ``result.failures``. Nothing is written when no file converts.
    """
    from pcbm.data.dicom import find_dicom_files
    from pcbm.data.folder import write_folder

    if frames not in ("all", "first"):
        raise InputError(f"frames must be 'all' or 'first', got {frames!r}")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"DICOM source folder not found: {src}")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise InputError(f"--out {out} must not be inside the source folder {src}")
    files = find_dicom_files(src)
    if not files:
        raise InputError(f"no DICOM files in {src} (looked for the 'DICM' marker and .dcm/.dicom files)")
    result = EtlResult(out=out, n_files=len(files))
    pending: list[dict[str, Any]] = []
    stream = _convert(files, src, size, frames, salt, date_shift_days, result, pending, progress, opaque_ids)
    first = next(stream, None)
    if first is None:
        return result
    write_folder(itertools.chain([first], stream), out, progress=False)
    for row in pending:
        row["png_sha256"] = sha256_file(out / "images" / row["image"])
    result.rows = pending
    _write_manifest(pending, out / MANIFEST)
    return result


def _opaque_id(rel: str, salt: str) -> str:
    return "us_" + hashlib.sha256(f"{salt}\0{rel}".encode()).hexdigest()[:16]


def _convert(files: list[Path], src: Path, size: int | None, frames: str, salt: str, date_shift_days: int | None,
             result: EtlResult, rows: list[dict[str, Any]], progress: bool,
             opaque_ids: bool = False) -> Iterator[Sample]:
    from rich.progress import track

    from pcbm.data.dicom import read_dicom, sample_id_for, unique_id

    seen: set[str] = set()
    items = track(files, description=f"converting {src.name or src}", transient=True) if progress else files
    for path in items:
        rel = path.relative_to(src).as_posix()
        try:
            raw = read_dicom(path, frames=frames, salt=salt, date_shift_days=date_shift_days,
                             sample_id=unique_id(_opaque_id(rel, salt) if opaque_ids else sample_id_for(path, src),
                                                 seen))
            fov = cine_field_of_view(raw)
            samples = [harmonise(s, size=size, fov=fov) for s in raw]
            source_hash = sha256_file(path)
        except InputError as e:
            result.failures.append((rel, str(e)))
            continue
        except OSError as e:
            result.failures.append((rel, f"{path}: cannot read ({e.strerror or e})"))
            continue
        for s in samples:
            m = s.meta
            rows.append({
                "image": f"{s.id}.png", "source": "" if opaque_ids else rel, "frame": m["frame"], "n_frames": m["n_frames"],
                "source_sha256": source_hash, "png_sha256": "", "width": s.image.shape[1], "height": s.image.shape[0],
                "pixel_spacing_mm": "" if s.pixel_spacing_mm is None else f"{s.pixel_spacing_mm:.6g}",
                "pixel_spacing_source": m.get("pixel_spacing_source", ""), "fov_source": m.get("fov_source", ""),
                "crop": m["crop"], "scale": m["scale"], "deidentified": m["deidentified"],
                "burned_in_masked": int(m["burned_in_masked"]), "notes": " | ".join(m.get("notes", [])),
            })
            yield s


def _write_manifest(rows: list[dict[str, Any]], path: Path) -> None:
    from pcbm._io import atomic_open

    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        w.writerows(rows)


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a ``manifest.csv`` written by :func:`run_etl`."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
