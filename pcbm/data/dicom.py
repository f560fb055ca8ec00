"""Ultrasound DICOM: read pixels and pixel spacing, de-identified, and the ``dicom:PATH`` dataset.

:func:`read_dicom` reads one file into :class:`~pcbm.data.sample.Sample` s (one per frame of a
cine), *after* :func:`~pcbm.data.deid.deidentify` has cleaned the header, so no patient identifier
reaches a sample. Pixels become 2-D uint8 grayscale, with a note for every conversion
(MONOCHROME1 inverted, RGB / YBR / palette colour to luma, more than 8 bits scaled).

Pixel spacing, first valid found wins (``meta["pixel_spacing_source"]`` says which; a NaN, zero,
negative or implausible value is ignored with a note):

1. ``dicom:SequenceOfUltrasoundRegions`` — the region containing the image centre whose
   physical units are cm (``PhysicalUnitsX/YDirection == 3``): ``PhysicalDeltaX/Y`` × 10 mm. That
   region's rectangle (clipped to the image) becomes the sample's field of view. A header whose cm
   regions all lie outside the image, or are degenerate, does not describe it: InputError.
2. ``dicom:PixelSpacing``, 3. ``dicom:ImagerPixelSpacing`` (mm, row then column).

Otherwise the spacing is None (measurements stay in pixels). The raw sample keeps burned-in text;
:func:`pcbm.data.harmonise.harmonise` masks it and crops to the scan sector, and the ``dicom:PATH``
dataset yields harmonised samples. :func:`read_dicom_frame` gives the first frame masked (not
cropped) for a report: nothing from the header but the spacing, no file name.

Unreadable input — not DICOM, truncated or corrupt, no pixel data, a compressed transfer syntax
with no decoder installed, odd values that break decoding — raises
:class:`~pcbm.errors.InputError` naming the file and the reason.

Nothing is decoded that its header says is too large (:func:`check_decode_size`, before any pixel
decoding): Rows × Columns over the pixel limit (:data:`pcbm.data.limits.MAX_PIXELS` unless given),
every frame of a cine over :data:`pcbm.data.limits.MAX_CINE_PIXELS`, a SamplesPerPixel or
BitsAllocated the reader cannot use, or a deflated dataset that inflates past
:data:`pcbm.data.limits.MAX_FILE_BYTES`; a cine read whole is decoded one frame at a time. A
48 kB file claiming 40000 × 40000 pixels is refused in milliseconds.

Example:
    >>> samples = read_dicom("cine.dcm", frames="first")  # doctest: +SKIP
    >>> samples[0].pixel_spacing_mm, samples[0].meta["pixel_spacing_source"]  # doctest: +SKIP
    (0.2, 'dicom:SequenceOfUltrasoundRegions')
    >>> ds = open_dataset("dicom:my_dicoms?frames=first&size=512")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.harmonise import harmonise
from pcbm.data.limits import MAX_CINE_PIXELS, MAX_FILE_BYTES, MAX_PIXELS
from pcbm.data.sample import Sample
from pcbm.errors import InputError

DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")
CM_UNITS = 3  # PhysicalUnitsX/YDirection code for centimetres
ANISOTROPY_TOLERANCE = 0.01
MIN_REGION_PX = 8  # an ultrasound region narrower or lower than this (inside the image) is degenerate
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
    check_inflated_size(p)
    # pydicom's warnings about malformed header values quote the values (a name in a date, an ID):
    # they are held back until the header is de-identified and reported as a count, never quoted
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=header_only)
        except InvalidDicomError:
            raise InputError(f"{p}: not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from None
        except Exception as e:  # pydicom raises many kinds on truncated/corrupt files
            raise InputError(f"{p}: corrupt DICOM file ({type(e).__name__}: {short_message(e)})") from None
        if not header_only and "PixelData" not in ds and "FloatPixelData" not in ds:
            sop = ds.get("SOPClassUID")
            what = f" (SOP class {sop.name})" if sop is not None else ""
            raise InputError(f"{p}: no pixel data{what}; not an image")
        try:
            out = deidentify(ds, salt=salt, date_shift_days=date_shift_days)
        except Exception as e:  # its message could quote a header value: name the kind only
            raise InputError(f"{p}: cannot de-identify the header ({type(e).__name__})") from None
    if held:
        warnings.warn(f"{p.name}: {len(held)} header value(s) do not follow their DICOM value rules "
                      "(not shown: they may identify the patient); the header was de-identified", stacklevel=2)
    return out


def short_message(e: BaseException, n: int = 160) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return s if len(s) <= n else s[: n - 1] + "…"


def n_frames(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def check_inflated_size(path: Path, limit: int | None = None) -> None:
    """Refuse a deflated DICOM (transfer syntax 1.2.840.10008.1.2.1.99) whose dataset inflates past
    ``limit`` bytes (default :data:`pcbm.data.limits.MAX_FILE_BYTES`), counted while streaming, before
    pydicom inflates it whole into memory (it would: 32 MB of deflated zeros become 33 GB). Any
    other transfer syntax, or a file that is not DICOM, passes untouched (pydicom names the fault)."""
    import zlib

    from pydicom.filereader import read_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    if not is_dicom_file(path):  # not DICOM Part 10: dcmread says so
        return
    try:
        with warnings.catch_warnings():  # they may quote header values; dcmread reports them as a count
            warnings.simplefilter("ignore")
            meta = read_file_meta_info(path)
    except Exception:  # a broken file meta: dcmread says what is wrong
        return
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    limit = MAX_FILE_BYTES if limit is None else limit
    try:  # the deflated stream starts after the preamble, the group length element (12 bytes) and the group
        start = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    except Exception:
        raise InputError(f"{path}: deflated DICOM without a valid FileMetaInformationGroupLength") from None
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                while chunk:
                    total += len(inflater.decompress(chunk, 1 << 20))
                    if total > limit:
                        raise InputError(f"{path}: deflated DICOM dataset inflates to more than {limit / 1e6:.0f} MB "
                                         "(larger than any image within the size limit); nothing decoded")
                    chunk = inflater.unconsumed_tail
    except zlib.error:
        raise InputError(f"{path}: corrupt deflated DICOM dataset") from None


BITS_ALLOCATED = (1, 8, 16, 32, 64)  # what pydicom decodes
MAX_BYTES_PER_PIXEL = 8  # 16-bit RGBA: the most an image file within the pixel limit holds per pixel


def _header_int(ds: Any, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # a malformed value: as good as missing
        return None


def check_decode_size(ds: Any, path: Path, max_pixels: int | None = None, frames: int = 1) -> None:
    """Refuse, from the header alone, pixel data too large to decode; nothing is decoded here.

    Args:
        ds: the dataset (read with or without its pixels: only group 0028 is looked at).
        path: the file, named in the errors.
        max_pixels: the most pixels one frame may hold, Rows × Columns (default
            :data:`pcbm.data.limits.MAX_PIXELS`, the limit of every image reader).
        frames: the frames one read decodes: 1 for a frame, NumberOfFrames for the whole cine (then
            all of them together may hold at most :data:`pcbm.data.limits.MAX_CINE_PIXELS`).

    Raises:
        InputError: naming the numbers: Rows or Columns missing, zero or negative; SamplesPerPixel not
            1 or 3; BitsAllocated not one of :data:`BITS_ALLOCATED`; Rows × Columns over
            ``max_pixels``; the frames over MAX_CINE_PIXELS; or a decoded frame over
            :data:`MAX_BYTES_PER_PIXEL` bytes a pixel.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset()
        >>> ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 30000, 30000, 1, 8
        >>> check_decode_size(ds, Path("bomb.dcm"))
        Traceback (most recent call last):
        ...
        pcbm.errors.InputError: bomb.dcm: 30000x30000 px = 900.0 megapixels a frame (Columns x Rows in its header; nothing decoded); the limit is 40 megapixels (40000000 pixels)
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    rows, cols = _header_int(ds, "Rows"), _header_int(ds, "Columns")
    if rows is None or cols is None or rows < 1 or cols < 1:
        shown = ", ".join(f"{k} {'missing or unreadable' if v is None else v}" for k, v in (("Rows", rows), ("Columns", cols)))
        raise InputError(f"{path}: no valid image size in the header ({shown}; both must be positive integers)")
    samples = _header_int(ds, "SamplesPerPixel")
    if samples not in (1, 3):
        raise InputError(f"{path}: SamplesPerPixel {'missing or unreadable' if samples is None else samples} "
                         "is not supported (1 for grayscale or 3 for colour)")
    bits = _header_int(ds, "BitsAllocated")
    if bits not in BITS_ALLOCATED:
        raise InputError(f"{path}: BitsAllocated {'missing or unreadable' if bits is None else bits} is not supported "
                         f"({', '.join(map(str, BITS_ALLOCATED))})")
    pixels = rows * cols
    if pixels > limit:
        raise InputError(f"{path}: {cols}x{rows} px = {pixels / 1e6:.1f} megapixels a frame (Columns x Rows in its "
                         f"header; nothing decoded); the limit is {limit / 1e6:g} megapixels ({limit} pixels)")
    if frames > 1 and frames * pixels > MAX_CINE_PIXELS:
        raise InputError(f"{path}: {frames} frames of {cols}x{rows} px = {frames * pixels / 1e6:.0f} megapixels "
                         f"(NumberOfFrames x Columns x Rows in its header; nothing decoded); reading every frame is "
                         f"limited to {MAX_CINE_PIXELS / 1e6:g} megapixels: read one frame, or split the cine")
    per_pixel = samples * max(1, bits // 8)
    if per_pixel > MAX_BYTES_PER_PIXEL:
        raise InputError(f"{path}: {samples} samples of {bits} bits a pixel ({per_pixel} bytes; SamplesPerPixel x "
                         f"BitsAllocated in its header) is more than the {MAX_BYTES_PER_PIXEL} bytes a pixel "
                         "the reader decodes")


@dataclass(frozen=True)
class Region:
    """An ultrasound region (inclusive pixel bounds) and its spacing in mm (x, y), if spatial.

    ``units_cm`` says the header gives both axes in cm; ``spacing_mm`` is None when it does not, or
    when its PhysicalDeltaX/Y are unusable (``problem`` then says why).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spacing_mm: tuple[float, float] | None
    units_cm: bool = False
    problem: str = ""

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    @property
    def area(self) -> int:
        return (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)

    @property
    def box(self) -> str:
        return f"({self.x0},{self.y0})-({self.x1},{self.y1})"


def _region_spacing(item: Any) -> tuple[bool, tuple[float, float] | None, str]:
    """(units in cm, spacing in mm or None, problem) of one region item."""
    from pcbm.validate import MAX_PIXEL_SPACING_MM, MIN_PIXEL_SPACING_MM, is_pixel_spacing

    try:
        units_cm = int(item.PhysicalUnitsXDirection) == CM_UNITS and int(item.PhysicalUnitsYDirection) == CM_UNITS
    except Exception:  # missing or malformed unit codes: not a spatial region
        return False, None, ""
    if not units_cm:
        return False, None, ""
    try:
        dx, dy = float(item.PhysicalDeltaX) * 10.0, float(item.PhysicalDeltaY) * 10.0
    except Exception:
        return True, None, "unreadable PhysicalDeltaX/Y in SequenceOfUltrasoundRegions"
    if not (is_pixel_spacing(dx) and is_pixel_spacing(dy)):  # the values are not quoted (header values never are)
        return True, None, (f"PhysicalDeltaX/Y in SequenceOfUltrasoundRegions outside the plausible range "
                            f"({MIN_PIXEL_SPACING_MM / 10:g}-{MAX_PIXEL_SPACING_MM / 10:g} cm per pixel)")
    return True, (dx, dy), ""


def ultrasound_regions(ds: Any) -> list[Region]:
    """The regions of ``SequenceOfUltrasoundRegions``; spacing only where both axes are in cm and the
    deltas are finite, positive and plausible. Items with unreadable coordinates are skipped."""
    out = []
    try:
        items = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    except Exception:
        return out
    for item in items:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except Exception:
            continue
        units_cm, spacing, problem = _region_spacing(item)
        out.append(Region(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), spacing, units_cm, problem))
    return out


def fit_regions(regions: list[Region], shape: tuple[int, int]) -> tuple[list[Region], list[str]]:
    """The cm regions clipped to the image, and notes on those clipped or dropped.

    Raises:
        InputError: the header has cm regions but every one lies outside the image or is degenerate
            (narrower or lower than ``MIN_REGION_PX`` pixels inside it) — the header does not
            describe this image.
    """
    h, w = shape
    kept: list[Region] = []
    notes: list[str] = []
    bad: list[str] = []
    for r in (r for r in regions if r.units_cm):
        c = replace(r, x0=max(r.x0, 0), y0=max(r.y0, 0), x1=min(r.x1, w - 1), y1=min(r.y1, h - 1))
        if c.x1 < c.x0 or c.y1 < c.y0:
            bad.append(f"ultrasound region {r.box} lies outside the {w}x{h} image")
        elif c.x1 - c.x0 + 1 < MIN_REGION_PX or c.y1 - c.y0 + 1 < MIN_REGION_PX:
            bad.append(f"ultrasound region {r.box} is degenerate ({c.x1 - c.x0 + 1}x{c.y1 - c.y0 + 1} pixels "
                       f"inside the {w}x{h} image)")
        else:
            if c != r:
                notes.append(f"ultrasound region {r.box} reaches outside the {w}x{h} image; clipped to {c.box}")
            kept.append(c)
    if bad and not kept:
        raise InputError(f"{bad[0]}; the header does not describe this image")
    notes += [f"ignored: {b}" for b in bad]
    return kept, notes


def pick_region(regions: list[Region], shape: tuple[int, int]) -> Region | None:
    """The cm region containing the image centre (the smallest such); else the largest cm region."""
    spatial = [r for r in regions if r.units_cm or r.spacing_mm is not None]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    containing = [r for r in spatial if r.contains(cx, cy)]
    if containing:
        return min(containing, key=lambda r: r.area)
    return max(spatial, key=lambda r: r.area) if spatial else None


def _mean_spacing(dx: float, dy: float, what: str, notes: list[str]) -> float:
    if abs(dx - dy) > ANISOTROPY_TOLERANCE * max(dx, dy):
        notes.append(f"anisotropic pixels in {what} (the two spacings differ by more than "
                     f"{ANISOTROPY_TOLERANCE:.0%}); using the mean")
    return (dx + dy) / 2


def _header_spacing(ds: Any, keyword: str, notes: list[str]) -> float | None:
    """PixelSpacing / ImagerPixelSpacing in mm (mean of row and column), or None with a note if invalid.

    The note never quotes the value: a text in a number field can be a patient's name.
    """
    from pcbm.validate import SPACING_RANGE, is_pixel_spacing

    try:
        value = ds.get(keyword)
    except Exception:
        notes.append(f"ignored unreadable {keyword}")
        return None
    if value is None or value == "":
        return None
    try:
        row, col = (float(v) for v in value)
    except Exception:
        notes.append(f"ignored header {keyword}: not two numbers (row and column spacing in mm); lengths in px")
        return None
    if is_pixel_spacing(row) and is_pixel_spacing(col):
        return _mean_spacing(col, row, keyword, notes)
    notes.append(f"ignored header {keyword}: outside the plausible range ({SPACING_RANGE} mm); lengths in px")
    return None


def find_spacing(ds: Any, shape: tuple[int, int]) -> tuple[float | None, str | None, Region | None, list[str]]:
    """Pixel spacing (mm), its source, the chosen ultrasound region (or None) and notes.

    Invalid values (NaN, zero, negative, implausibly large) are ignored with a note, and the next
    source is tried; none valid means unknown spacing (None, None).

    Raises:
        InputError: the header's ultrasound regions all lie outside the image or are degenerate
            (see :func:`fit_regions`).
    """
    regions, notes = fit_regions(ultrasound_regions(ds), shape)
    region = pick_region(regions, shape)
    if region is not None:
        cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
        if not region.contains(cx, cy):
            notes.append("no ultrasound region contains the image centre; using the largest one in cm")
        if region.spacing_mm is not None:
            dx, dy = region.spacing_mm
            return _mean_spacing(dx, dy, "SequenceOfUltrasoundRegions", notes), SOURCE_REGIONS, region, notes
        notes.append(f"ignored {region.problem}")
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _header_spacing(ds, keyword, notes)
        if spacing is not None:
            return spacing, f"dicom:{keyword}", region, notes
    if any(n.startswith("ignored") for n in notes):
        notes.append("pixel spacing unknown (measurements stay in pixels)")
    return None, None, region, notes


def _decoder(ds: Any, path: Path) -> Any:
    """pydicom's decoder for the file's transfer syntax; InputError when there is none."""
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
    return decoder


def _photometric(ds: Any, info: dict[str, Any]) -> str:
    return str(info.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))


def decode_pixels(ds: Any, path: Path, index: int | None = None) -> tuple[np.ndarray, str]:
    """Decoded pixel data (all frames, or frame ``index``) and its photometric interpretation.
    Check the size first (:func:`check_decode_size`): this decodes whatever the header says."""
    decoder = _decoder(ds, path)
    try:
        arr, info = decoder.as_array(ds, index=index)
    except Exception as e:
        raise InputError(f"{path}: cannot decode pixel data ({type(e).__name__}: {short_message(e)})") from None
    return arr, _photometric(ds, info)


def iter_pixels(ds: Any, path: Path) -> Iterator[tuple[np.ndarray, str]]:
    """Every frame, decoded one at a time (a cine's peak memory is one decoded frame), with its
    photometric interpretation. Check the size first (:func:`check_decode_size`)."""
    frames = iter(_decoder(ds, path).iter_array(ds))
    while True:
        try:
            arr, info = next(frames)
        except StopIteration:
            return
        except Exception as e:
            raise InputError(f"{path}: cannot decode pixel data ({type(e).__name__}: {short_message(e)})") from None
        yield arr, _photometric(ds, info)


def _int_tag(ds: Any, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except Exception:
        return default


def to_gray(frame: np.ndarray, ds: Any, photometric: str) -> tuple[np.ndarray, list[str]]:
    """One decoded frame → 2-D uint8 grayscale, with notes on the conversions made."""
    import cv2

    notes: list[str] = []
    original = str(ds.get("PhotometricInterpretation", photometric))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            frame = apply_color_lut(frame, ds)
        except Exception as e:
            raise InputError(f"cannot apply the PALETTE COLOR table ({type(e).__name__}: {short_message(e)})") from None
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
    bits, signed = _int_tag(ds, "BitsStored", 8), _int_tag(ds, "PixelRepresentation", 0) == 1
    depth = frame.dtype.itemsize * 8
    if np.issubdtype(frame.dtype, np.integer) and not 1 <= bits <= depth:
        notes.append(f"ignored BitsStored {bits} (pixels are {depth}-bit)")
        bits = depth
    if not np.issubdtype(frame.dtype, np.integer) and not np.isfinite(frame).all():
        frame = np.nan_to_num(frame.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        notes.append("non-finite pixel values set to 0")
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
    """Frame indices to read (None: all, decoded one at a time)."""
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
               date_shift_days: int | None = None, sample_id: str | None = None,
               max_pixels: int | None = None) -> list[Sample]:
    """Read an ultrasound DICOM file as de-identified grayscale samples, one per frame read.

    Args:
        path: the DICOM file.
        frames: "all" (one sample per frame of a cine), "first", or a frame number.
        salt: secret for the patient pseudonym (the samples' subject) and UIDs; see pcbm.data.deid.
        date_shift_days: passed to :func:`~pcbm.data.deid.deidentify`.
        sample_id: id of the samples (default the file stem); frames of a cine get ``_f0003`` etc.
        max_pixels: the most pixels a frame may have (default :data:`pcbm.data.limits.MAX_PIXELS`),
            checked from the header before decoding, as :func:`check_decode_size` says.

    Returns:
        Samples with the raw (uncropped, unmasked) image, ``pixel_spacing_mm``, the ultrasound
        region as ``field_of_view`` when the header has one, ``subject`` = patient pseudonym (or the
        id), and ``meta`` with path, frame, pixel_spacing_source, fov_source, photometric, notes
        (each starting with the sample id, never the file name unless the id is), ….

    Raises:
        InputError: unreadable or corrupt file, no pixel data, no decoder, too large by its header,
            an ultrasound region outside the image; naming the file.
    """
    p = Path(path)
    base_id = sample_id or sample_id_for(p)
    return _guarded(p, lambda: _read(p, frames, salt, date_shift_days, base_id, f"{base_id}: ", max_pixels))


def read_dicom_frame(path: str | os.PathLike[str], max_pixels: int | None = None,
                     ) -> tuple[np.ndarray, list[str], float | None, str | None]:
    """The first frame of an ultrasound DICOM, de-identified and with burned-in text masked, for a
    report or a prediction.

    The frame is masked exactly as ``pcbm data etl`` masks it (outside the header's ultrasound
    region ∩ the scan sector estimated from the pixels, see :mod:`pcbm.data.harmonise`) but not
    cropped or resized, so the pixel spacing applies as it is. Nothing from the header but the
    spacing reaches the result: no patient data, no UID, no file name or path.

    Args:
        path: the DICOM file.
        max_pixels: the most pixels the frame may have (default :data:`pcbm.data.limits.MAX_PIXELS`),
            checked from the header before decoding.

    Returns:
        (image, notes, pixel_spacing_mm, spacing_source): the masked first frame as 2-D uint8; notes
        on the conversions and the masking (no file name, no patient data); mm per pixel or None
        when the header has no valid spacing; where the spacing comes from
        ("dicom:SequenceOfUltrasoundRegions", "dicom:PixelSpacing", "dicom:ImagerPixelSpacing") or
        None.

    Raises:
        InputError: naming the file — not DICOM, corrupt or truncated, no pixel data, no decoder
            for its compression, too large by its header, an ultrasound region outside the image, or no scan sector found
            (so burned-in text could not be masked and the raw frame is not returned).

    Example:
        >>> image, notes, spacing, source = read_dicom_frame("scan.dcm")  # doctest: +SKIP
        >>> spacing, source  # doctest: +SKIP
        (0.2, 'dicom:SequenceOfUltrasoundRegions')
    """
    import secrets

    from pcbm.data.harmonise import harmonise

    p = Path(path)

    def read() -> tuple[np.ndarray, list[str], float | None, str | None]:
        # a throw-away salt: nothing derived from the patient ID or the UIDs leaves this function
        (raw,) = _read(p, "first", secrets.token_hex(16), None, "frame", "", max_pixels)
        raw = replace(raw, id="", subject="", meta={k: v for k, v in raw.meta.items() if k != "path"})
        s = harmonise(raw, crop=False)
        if s.field_of_view is None:
            raise InputError(f"{p}: no scan sector found in the first frame, so burned-in text cannot be masked; "
                             "refusing to use the raw frame")
        masked = s.meta["burned_in_masked"]
        notes = list(s.meta.get("notes", []))
        if masked != "none":
            notes.append(f"burned-in text masked outside the scan sector ({masked})")
        return s.image, notes, s.pixel_spacing_mm, s.meta.get("pixel_spacing_source") or None

    return _guarded(p, read)


def _guarded(p: Path, read: Any) -> Any:
    """``read()``, with any unexpected failure on odd input turned into an InputError naming the file."""
    try:
        return read()
    except (InputError, KeyboardInterrupt):
        raise
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    except Exception as e:
        raise InputError(f"{p}: cannot read this DICOM file ({type(e).__name__}: {short_message(e)})") from e


def _read(p: Path, frames: str | int, salt: str, date_shift_days: int | None, base_id: str,
          note_prefix: str, max_pixels: int | None = None) -> list[Sample]:
    ds = load_dataset(p, salt=salt, date_shift_days=date_shift_days)
    count = n_frames(ds)
    wanted = _frame_indices(frames, count, p)
    check_decode_size(ds, p, max_pixels, count if wanted is None else 1)  # before any decoding
    if wanted is None:
        decoded: Any = iter_pixels(ds, p)
    else:
        decoded = [decode_pixels(ds, p, index=wanted[0] if count > 1 else None)]
    subject = str(ds.get("PatientID", "") or "") or base_id
    samples: list[Sample] = []
    region_notes: list[str] | None = None
    for k, (frame, photometric) in enumerate(decoded):
        index = k if wanted is None else wanted[0]
        try:
            image, notes = to_gray(frame, ds, photometric)
            if region_notes is None:  # every frame has the same shape
                spacing, source, region, region_notes = find_spacing(ds, image.shape)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None
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
        all_notes = notes + region_notes
        if all_notes:
            meta["notes"] = [f"{note_prefix}{n}" for n in all_notes]
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
                check_decode_size(ds, path, frames=n_frames(ds) if frames == "all" else 1)
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
