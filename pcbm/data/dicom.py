"""Ultrasound DICOM: read pixels and pixel spacing, de-identified, and the ``dicom:PATH`` dataset.

:func:`read_dicom` reads one file into :class:`~pcbm.data.sample.Sample` s (one per frame of a
cine), *after* :func:`~pcbm.data.deid.deidentify` has cleaned the header, so no patient identifier
reaches a sample. Pixels become 2-D uint8 grayscale, with a note for every conversion
(MONOCHROME1 inverted, RGB / YBR / palette colour to luma, more than 8 bits scaled).

Pixel spacing, first found wins (``meta["pixel_spacing_source"]`` says which):

1. ``dicom:SequenceOfUltrasoundRegions`` — the region containing the image centre whose
   physical units are cm (``PhysicalUnitsX/YDirection == 3``): ``PhysicalDeltaX/Y`` × 10 mm. That
   region's rectangle becomes the sample's field of view.
2. ``dicom:PixelSpacing``, 3. ``dicom:ImagerPixelSpacing`` (mm, row then column).

Otherwise the spacing is None (measurements stay in pixels). The raw sample keeps burned-in text;
:func:`pcbm.data.etl.harmonise` masks it and crops to the scan sector, and the ``dicom:PATH``
dataset yields harmonised samples.

Unreadable input — not DICOM, truncated or corrupt, no pixel data, a compressed transfer syntax
with no decoder installed — raises :class:`~pcbm.errors.InputError` naming the file and the reason.

Example:
    >>> samples = read_dicom("cine.dcm", frames="first")  # doctest: +SKIP
    >>> samples[0].pixel_spacing_mm, samples[0].meta["pixel_spacing_source"]  # doctest: +SKIP
    (0.2, 'dicom:SequenceOfUltrasoundRegions')
    >>> ds = open_dataset("dicom:my_dicoms?frames=first&size=512")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.sample import Sample
from pcbm.errors import InputError

DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")
CM_UNITS = 3  # PhysicalUnitsX/YDirection code for centimetres
ANISOTROPY_TOLERANCE = 0.01
SOURCE_REGIONS = "dicom:SequenceOfUltrasoundRegions"


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True when the file carries the DICOM Part 10 marker (``DICM`` after a 128-byte preamble)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def find_dicom_files(root: str | os.PathLike[str]) -> list[Path]:
    """DICOM files under ``root`` (recursively), sorted: any file with the ``DICM`` marker, plus files
    named ``*.dcm``/``*.dicom``/``*.dic`` (so a broken one is reported, not silently skipped).
    Hidden files and ``DICOMDIR`` indexes are skipped. ``root`` may also be a single file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"DICOM folder not found: {root}")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts) or p.name.upper() == "DICOMDIR":
            continue
        if p.suffix.lower() in DICOM_EXTENSIONS or is_dicom_file(p):
            out.append(p)
    return out


def sample_id_for(path: Path, root: Path | None = None) -> str:
    """A file-system-safe id from the path relative to ``root`` (``a/b/scan.dcm`` → ``a_b_scan``)."""
    rel = path.relative_to(root) if root is not None and root.is_dir() else Path(path.name)
    stem = "_".join([*rel.parts[:-1], rel.stem if rel.suffix.lower() in DICOM_EXTENSIONS else rel.name])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"


def load_dataset(path: str | os.PathLike[str], header_only: bool = False, salt: str = "",
                 date_shift_days: int | None = None) -> Any:
    """Read a DICOM file with pydicom and de-identify it; InputError (naming the file) if unreadable."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from pcbm.data.deid import deidentify

    p = Path(path)
    if not p.is_file():
        raise InputError(f"DICOM file not found: {p}")
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=header_only)
    except InvalidDicomError:
        raise InputError(f"{p}: not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from None
    except Exception as e:  # pydicom raises many kinds on truncated/corrupt files
        raise InputError(f"{p}: corrupt DICOM file ({type(e).__name__}: {_short(e)})") from None
    if not header_only and "PixelData" not in ds and "FloatPixelData" not in ds:
        sop = ds.get("SOPClassUID")
        what = f" (SOP class {sop.name})" if sop is not None else ""
        raise InputError(f"{p}: no pixel data{what}; not an image")
    try:
        return deidentify(ds, salt=salt, date_shift_days=date_shift_days)
    except Exception as e:
        raise InputError(f"{p}: cannot de-identify the header ({type(e).__name__}: {_short(e)})") from None


def _short(e: BaseException, n: int = 160) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return s if len(s) <= n else s[: n - 1] + "…"


def n_frames(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class Region:
    """An ultrasound region (inclusive pixel bounds) and its spacing in mm (x, y), if spatial."""

    x0: int
    y0: int
    x1: int
    y1: int
    spacing_mm: tuple[float, float] | None

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    @property
    def area(self) -> int:
        return (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)


def ultrasound_regions(ds: Any) -> list[Region]:
    """The regions of ``SequenceOfUltrasoundRegions``; spacing only where both axes are in cm."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            continue
        spacing = None
        try:
            if int(item.PhysicalUnitsXDirection) == CM_UNITS and int(item.PhysicalUnitsYDirection) == CM_UNITS:
                dx, dy = abs(float(item.PhysicalDeltaX)) * 10.0, abs(float(item.PhysicalDeltaY)) * 10.0
                if np.isfinite(dx) and np.isfinite(dy) and dx > 0 and dy > 0:
                    spacing = (dx, dy)
        except (AttributeError, TypeError, ValueError):
            pass
        out.append(Region(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), spacing))
    return out


def pick_region(regions: list[Region], shape: tuple[int, int]) -> Region | None:
    """The spatial (cm) region containing the image centre; else the largest spatial region."""
    spatial = [r for r in regions if r.spacing_mm is not None]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    containing = [r for r in spatial if r.contains(cx, cy)]
    if containing:
        return min(containing, key=lambda r: r.area)
    return max(spatial, key=lambda r: r.area) if spatial else None


def _mean_spacing(dx: float, dy: float, what: str, notes: list[str]) -> float:
    if abs(dx - dy) > ANISOTROPY_TOLERANCE * max(dx, dy):
        notes.append(f"anisotropic pixels in {what} ({dx:.4g} x {dy:.4g} mm); using the mean")
    return (dx + dy) / 2


def find_spacing(ds: Any, shape: tuple[int, int]) -> tuple[float | None, str | None, Region | None, list[str]]:
    """Pixel spacing (mm), its source, the chosen ultrasound region (or None) and notes."""
    notes: list[str] = []
    region = pick_region(ultrasound_regions(ds), shape)
    if region is not None:
        dx, dy = region.spacing_mm  # type: ignore[misc]
        cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
        if not region.contains(cx, cy):
            notes.append("no ultrasound region contains the image centre; using the largest one in cm")
        return _mean_spacing(dx, dy, "SequenceOfUltrasoundRegions", notes), SOURCE_REGIONS, region, notes
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = (float(v) for v in value)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            continue
        if np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0:
            return _mean_spacing(col, row, keyword, notes), f"dicom:{keyword}", None, notes
        notes.append(f"ignored invalid {keyword} {list(value)}")  # type: ignore[arg-type]
    return None, None, None, notes


def decode_pixels(ds: Any, path: Path, index: int | None = None) -> tuple[np.ndarray, str]:
    """Decoded pixel data (all frames, or frame ``index``) and its photometric interpretation."""
    from pydicom.pixels import get_decoder

    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is None:
        raise InputError(f"{path}: no transfer syntax in the file meta information")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise InputError(f"{path}: unsupported transfer syntax {tsyntax} ({tsyntax.name})") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise InputError(f"{path}: pixel data compressed as {tsyntax.name}, and no decoder is installed "
                         f"(install one of: {missing})")
    try:
        arr, info = decoder.as_array(ds, index=index)
    except Exception as e:
        raise InputError(f"{path}: cannot decode pixel data ({type(e).__name__}: {_short(e)})") from None
    return arr, str(info.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))


def to_gray(frame: np.ndarray, ds: Any, photometric: str) -> tuple[np.ndarray, list[str]]:
    """One decoded frame → 2-D uint8 grayscale, with notes on the conversions made."""
    import cv2

    notes: list[str] = []
    original = str(ds.get("PhotometricInterpretation", photometric))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        frame = apply_color_lut(frame, ds)
        notes.append("PALETTE COLOR image mapped through its colour table")
        photometric = "RGB"
    if frame.ndim == 3:
        if frame.shape[2] != 3:
            raise InputError(f"unsupported pixel data with {frame.shape[2]} samples per pixel")
        via = f" (decoded as {photometric})" if original != photometric else ""
        if np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 1], frame[..., 2]):
            frame = np.ascontiguousarray(frame[..., 0])
            notes.append(f"{original} image{via} with equal channels read as grayscale")
        else:
            frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) if frame.dtype == np.uint8 else \
                frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            notes.append(f"{original} image{via} converted to grayscale (luma)")
    if frame.ndim != 2:
        raise InputError(f"unsupported pixel data shape {frame.shape}")
    bits = int(ds.get("BitsStored", 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if photometric == "MONOCHROME1":
        if np.issubdtype(frame.dtype, np.unsignedinteger):
            top = min(2 ** bits - 1, int(np.iinfo(frame.dtype).max))
            frame = (top - np.minimum(frame, top)).astype(frame.dtype)
        else:  # signed or float: mirror within the value range
            frame = float(frame.max()) + float(frame.min()) - frame.astype(np.float64)
        notes.append("MONOCHROME1 inverted (0 is white in the file)")
    if frame.dtype == np.uint8:
        return frame, notes
    if np.issubdtype(frame.dtype, np.unsignedinteger) and bits > 8:
        notes.append(f"{bits}-bit pixels scaled to 8 bits")
        return np.clip(np.round(frame.astype(np.float64) * 255.0 / (2 ** bits - 1)), 0, 255).astype(np.uint8), notes
    a = frame.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if bits > 8 or signed or not np.issubdtype(frame.dtype, np.integer):
        notes.append(f"pixels scaled from [{lo:g}, {hi:g}] to 8 bits")
        scaled = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8), notes
    return np.clip(np.round(a), 0, 255).astype(np.uint8), notes


def _frame_indices(frames: str | int, count: int, path: Path) -> list[int] | None:
    """Frame indices to read (None: all, decoded at once)."""
    if frames == "all":
        return None
    if frames == "first":
        return [0]
    if isinstance(frames, int) and not isinstance(frames, bool):
        if not 0 <= frames < count:
            raise InputError(f"{path}: frame {frames} out of range (the file has {count} frames)")
        return [frames]
    raise InputError(f"frames must be 'all', 'first' or a frame number, got {frames!r}")


def read_dicom(path: str | os.PathLike[str], frames: str | int = "all", *, salt: str = "",
               date_shift_days: int | None = None, sample_id: str | None = None) -> list[Sample]:
    """Read an ultrasound DICOM file as de-identified grayscale samples, one per frame read.

    Args:
        path: the DICOM file.
        frames: "all" (one sample per frame of a cine), "first", or a frame number.
        salt: secret for the patient pseudonym (the samples' subject) and UIDs; see pcbm.data.deid.
        date_shift_days: passed to :func:`~pcbm.data.deid.deidentify`.
        sample_id: id of the samples (default the file stem); frames of a cine get ``_f0003`` etc.

    Returns:
        Samples with the raw (uncropped, unmasked) image, ``pixel_spacing_mm``, the ultrasound
        region as ``field_of_view`` when the header has one, ``subject`` = patient pseudonym (or the
        id), and ``meta`` with frame, pixel_spacing_source, fov_source, photometric, notes, ….

    Raises:
        InputError: unreadable or corrupt file, no pixel data, no decoder; naming the file.
    """
    p = Path(path)
    ds = load_dataset(p, salt=salt, date_shift_days=date_shift_days)
    count = n_frames(ds)
    wanted = _frame_indices(frames, count, p)
    if wanted is None:
        arr, photometric = decode_pixels(ds, p)
        stack = arr if count > 1 else arr[None]
        indices = list(range(stack.shape[0]))
    else:
        arr, photometric = decode_pixels(ds, p, index=wanted[0] if count > 1 else None)
        stack, indices = arr[None], wanted
    base_id = sample_id or sample_id_for(p)
    subject = str(ds.get("PatientID", "") or "") or base_id
    samples: list[Sample] = []
    for frame, index in zip(stack, indices, strict=True):
        try:
            image, notes = to_gray(frame, ds, photometric)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None
        spacing, source, region, spacing_notes = find_spacing(ds, image.shape)
        fov = None
        meta: dict[str, Any] = {"path": str(p), "frame": index, "n_frames": count,
                                "photometric": str(ds.get("PhotometricInterpretation", "")),
                                "pixel_spacing_source": source or "", "deidentified": "PS3.15-basic"}
        if region is not None:
            fov = np.zeros(image.shape, bool)
            fov[region.y0:region.y1 + 1, region.x0:region.x1 + 1] = True
            meta["fov_source"] = SOURCE_REGIONS
        for key, keyword in (("manufacturer", "Manufacturer"), ("model", "ManufacturerModelName")):
            if ds.get(keyword):
                meta[key] = str(ds.get(keyword))
        all_notes = notes + spacing_notes
        if all_notes:
            meta["notes"] = [f"{p.name}: {n}" for n in all_notes]
        samples.append(Sample(image=image, pixel_spacing_mm=spacing, id=base_id if count == 1 else f"{base_id}_f{index:04d}",
                              subject=subject, source="dicom", field_of_view=fov, meta=meta))
    return samples


@dataclass(frozen=True)
class DicomEntry:
    """One sample of a :class:`DicomDataset`: a file and a frame (``image`` names the file)."""

    image: Path
    frame: int
    id: str
    base: str  # the file's id; frames of a cine add _fNNNN
    subject: str
    error: str | None = None


class DicomDataset(EntriesDataset):
    """A folder of ultrasound DICOM files (``dicom:PATH``), de-identified and harmonised.

    Options (``dicom:PATH?frames=first&size=512&salt=…``): ``frames`` "all" (default; one sample
    per frame) or "first"; ``size`` long side in pixels after cropping (default: no resize);
    ``salt`` for the patient pseudonyms; ``harmonise`` 0 to get raw, unmasked images.
    Samples' subject is the patient pseudonym (``anon-…``) or, without a PatientID, the file's id.
    """

    name = "dicom"

    def __init__(self, root: str | os.PathLike[str], frames: str = "all", size: int | None = None, salt: str = "",
                 harmonise: bool = True):
        if frames not in ("all", "first"):
            raise InputError(f"dicom: frames must be 'all' or 'first', got {frames!r}")
        if size is not None and (not isinstance(size, int) or size < 8):
            raise InputError(f"dicom: size must be an integer >= 8, got {size!r}")
        self.root, self.frames, self.size, self.salt, self.harmonise = Path(root), frames, size, str(salt), harmonise
        self.entries: list[DicomEntry] = []
        seen: set[str] = set()
        for path in find_dicom_files(self.root):
            base = unique_id(sample_id_for(path, self.root), seen)
            try:
                ds = load_dataset(path, header_only=True, salt=self.salt)
            except InputError as e:
                self.entries.append(DicomEntry(path, 0, base, base, base, str(e)))
                continue
            count = n_frames(ds) if frames == "all" else 1
            subject = str(ds.get("PatientID", "") or "") or base
            for k in range(count):
                sid = base if n_frames(ds) == 1 else f"{base}_f{k:04d}"
                self.entries.append(DicomEntry(path, k, sid, base, subject))

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        if e.error:
            raise InputError(e.error)
        (s,) = read_dicom(e.image, frames=e.frame, salt=self.salt, sample_id=e.base)
        if self.harmonise:
            from pcbm.data.etl import harmonise

            s = harmonise(s, size=self.size)
        return s


def unique_id(base: str, seen: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, … if taken; records the result in ``seen``."""
    out, k = base, 2
    while out in seen:
        out, k = f"{base}_{k}", k + 1
    seen.add(out)
    return out


@register_dataset("dicom")
def _open_dicom(path: str | None, **options: Any) -> DicomDataset:
    if not path:
        raise InputError("dicom: needs a path, e.g. dicom:my_dicom_folder")
    known = {"frames", "size", "salt", "harmonise"}
    unknown = set(options) - known
    if unknown:
        raise InputError(f"dicom: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    if "harmonise" in options:
        options["harmonise"] = bool(options["harmonise"])
    return DicomDataset(path, **options)
