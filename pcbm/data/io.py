"""Reading images and masks from files, with clear errors and notes on any conversion.

:func:`read_input_image` is the one reader of an input image — for ``pcbm predict``, reports and
every dataset: PNG / JPEG / BMP / TIFF, or an ultrasound DICOM file (first frame, burned-in text
masked, spacing from its header). Images become 2-D uint8 grayscale, each conversion with a note the
caller keeps (``Sample.meta["notes"]``):

- RGB / RGBA become luma (alpha ignored); equal channels are read as gray.
- 16-bit images are scaled by the bit depth their values use, not by /257: the largest value
  decides 8, 10, 12, 14 or 16 bits and ``value * 255 / (2**bits - 1)`` keeps a 10-bit image's 1024
  levels spread over 0-255 (a /257 scaling left it 5 grey levels) while black stays black and
  images of one scanner keep one brightness scale. Float and signed images are scaled min..max.
- An all-black or constant image is read, with a note.

Refused with an :class:`~pcbm.errors.InputError` naming the file: missing, empty, not an image,
corrupt or truncated (a JPEG on whose data libjpeg warns, see :mod:`pcbm.data.codec`), more than :data:`MAX_PIXELS` pixels (checked from the header, before any
decoding), or under :data:`MIN_SIDE` pixels on a side. Masks become bool arrays (any channel > 0).

"From the header" holds for every format the service accepts: a PNG, JPEG or BMP whose size
cannot be read from its header (by Pillow, else from the IHDR / SOF / DIB header here) is refused
as corrupt without decoding, and a DICOM by :func:`pcbm.data.dicom.check_decode_size`. Only a TIFF
that Pillow cannot parse goes to OpenCV unchecked (under OpenCV's own cap of 2**30 pixels) and is
measured after decoding.

Example:
    >>> loaded = read_input_image("scan.png")  # doctest: +SKIP
    >>> loaded.image.shape, loaded.notes, loaded.pixel_spacing_mm  # doctest: +SKIP
    ((540, 800), [], 0.154)
    >>> mask = read_mask("scan_mask.png", like=loaded.image, image_path="scan.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# the readers' limits (pcbm.data.limits), named here too: pcbm.data.io.MAX_PIXELS
from pcbm.data.limits import MAX_CINE_PIXELS, MAX_FILE_BYTES, MAX_PIXELS  # noqa: F401
from pcbm.errors import InputError, unknown_name

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Under 16 px on a side there is no anatomy to see, and the models' encoders downsample 32x.
MIN_SIDE = 16
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
_FORMATS = "PNG, JPEG, BMP, TIFF or DICOM"


@dataclass(frozen=True)
class LoadedImage:
    """An input image read by :func:`read_input_image`.

    Example:
        >>> LoadedImage(np.zeros((32, 32), np.uint8), name="x.png").pixel_spacing_mm is None
        True
    """

    image: np.ndarray  # (H, W) uint8 grayscale
    notes: list[str] = field(default_factory=list)  # every conversion made, and anything odd (constant image)
    pixel_spacing_mm: float | None = None  # mm per pixel, when the file or its dataset says
    spacing_source: str | None = None  # where the spacing came from ("DICOM header (…)", "dataset (labels.csv, …)")
    name: str = ""  # the path as given, for reports and messages


def _open_checked(path: str | os.PathLike[str], what: str, limit_bytes: bool = True) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found: {p}" if not p.exists() else f"{what} is not a file: {p}")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise InputError(f"cannot read {what} {p}: {e.strerror or e}") from None
    if size == 0:
        raise InputError(f"cannot read {what} {p}: empty file")
    if limit_bytes and size > MAX_FILE_BYTES:
        raise InputError(f"cannot read {what} {p}: file of {size / 1e6:.0f} MB is larger than any image within the "
                         f"size limit ({MAX_PIXELS / 1e6:g} megapixels)")
    return p


def _too_large(p: Path, what: str, width: int | None, height: int | None, max_pixels: int,
               pixels: int | None = None) -> InputError:
    if width and height:
        dims = f"{width}x{height} px = {width * height / 1e6:.1f} megapixels"
    else:
        dims = f"{pixels / 1e6:.0f} megapixels" if pixels else "far too large"
    return InputError(f"{what} {p} is {dims}; the limit is {max_pixels / 1e6:g} megapixels "
                      f"({max_pixels} pixels); downscale it first")


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) from the image file's header without decoding the pixels, or None if unknown.

    Uses Pillow (installed with matplotlib), whose ``Image.open`` reads the header only.
    Raises OverflowError (its argument the pixel count, if known) for a header Pillow itself calls a
    decompression bomb.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - matplotlib requires pillow
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as e:  # "Image size (400000000 pixels) exceeds limit of …"
        found = re.search(r"\((\d+) pixels\)", str(e))
        raise OverflowError(int(found.group(1)) if found else None) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None


def own_header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) read from a PNG's IHDR, a JPEG's first SOF or a BMP's DIB header; None if
    the header is not there (a TIFF is not read here).

    Example:
        >>> own_header_size(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(4) + b"IHDR" + (60000).to_bytes(4, "big") * 2, "PNG")
        (60000, 60000)
    """
    if kind == "PNG":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    if kind == "BMP":
        if len(data) < 26:
            return None
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(int.from_bytes(data[22:26], "little", signed=True))
    if kind == "JPEG":  # markers after SOI, each with a 2-byte length, up to the first SOFn
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or SOS before any SOF
                return None
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_image(path: str | os.PathLike[str], what: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The file decoded by OpenCV, refused before decoding when its header gives more than ``max_pixels``
    pixels or (PNG, JPEG, BMP) no readable size at all (see the module docstring)."""
    p = _open_checked(path, what)
    try:
        dims = header_size(p)
    except OverflowError as e:
        raise _too_large(p, what, None, None, max_pixels, e.args[0] if e.args else None) from None
    if dims is not None and dims[0] * dims[1] > max_pixels:
        raise _too_large(p, what, dims[0], dims[1], max_pixels)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {what} {p}: {e.strerror or e}") from None
    head = data[:8].tobytes()
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    if kind is None:
        raise InputError(f"cannot read {what} {p}: not an image file (not {_FORMATS}; corrupt, or another format)")
    if kind == "PNG" and b"IEND" not in data[-12:].tobytes():  # libpng would only print a warning to stderr
        raise InputError(f"cannot read {what} {p}: truncated PNG file (no end marker)")
    if dims is None and kind != "TIFF":  # Pillow could not read the header: read the size here, or refuse
        dims = own_header_size(data[:1 << 20].tobytes(), kind)
        if dims is None or 0 in dims:
            raise InputError(f"cannot read {what} {p}: corrupt or truncated {kind} file (no readable size in its header)")
        if dims[0] * dims[1] > max_pixels:
            raise _too_large(p, what, dims[0], dims[1], max_pixels)
    if kind == "JPEG":  # libjpeg fills damaged data with grey and only warns: a warning refuses
        from pcbm.data.codec import imdecode

        arr, problem = imdecode(data)
        if problem is not None:
            raise InputError(f"cannot read {what} {p}: corrupt image data: {problem}")
    else:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise InputError(f"cannot read {what} {p}: corrupt or truncated {kind} file")
    if arr.shape[0] * arr.shape[1] > max_pixels:  # a TIFF whose header Pillow could not read
        raise _too_large(p, what, arr.shape[1], arr.shape[0], max_pixels)
    return arr


def _scale_uint16(arr: np.ndarray) -> tuple[np.ndarray, str]:
    """16-bit to 8-bit by the bit depth the values use (see the module docstring)."""
    hi = int(arr.max())
    bits = next(b for b in (8, 10, 12, 14, 16) if hi < 2**b)
    if bits == 8:
        return arr.astype(np.uint8), f"16-bit image holding 8-bit values (max {hi}) read as is"
    top = 2**bits - 1
    scaled = np.round(arr.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    return scaled, f"16-bit image with values up to {hi} read as {bits}-bit and scaled to 8 bits (x 255/{top})"


def to_gray_uint8(arr: np.ndarray, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """Convert a decoded image (OpenCV channel order) to 2-D uint8 grayscale.

    Returns:
        (image, notes) where notes describe any conversion made.
    """
    notes: list[str] = []
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels not in (3, 4):
            raise InputError(f"{name}: unsupported image with {channels} channels")
        kind = "RGBA" if channels == 4 else "RGB"
        arr = arr[:, :, :3]
        if np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2]):
            notes.append(f"{kind} image with equal channels read as 8-bit grayscale")
            arr = np.ascontiguousarray(arr[:, :, 0])
        else:
            notes.append(f"{kind} image converted to 8-bit grayscale (luma)")
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY)
        if channels == 4:
            notes[-1] += ", alpha ignored"
    if arr.ndim != 2:
        raise InputError(f"{name}: unsupported image shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr, notes
    if arr.dtype == np.uint16:
        arr, note = _scale_uint16(arr)
        return arr, [*notes, note]
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255, notes
    if np.issubdtype(arr.dtype, np.number):
        a = arr.astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        notes.append(f"{arr.dtype} image scaled from [{lo:g}, {hi:g}] to 8 bits")
        scaled = (np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo) - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8), notes
    raise InputError(f"{name}: unsupported pixel type {arr.dtype}")


def check_image(image: np.ndarray, name: str) -> list[str]:
    """Refuse an image under :data:`MIN_SIDE` px on a side; a note for a constant (e.g. all-black) one."""
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"image {name} is {w}x{h} px; an image needs at least {MIN_SIDE} px on each side")
    lo, hi = int(image.min()), int(image.max())
    if lo == hi:
        return ["all-black image (every pixel 0)" if hi == 0 else f"constant image (every pixel {hi})"]
    return []


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Read an image (or DICOM) file as 2-D uint8 grayscale: :func:`read_input_image` without the spacing.

    Returns:
        (image, notes): notes name any conversion (RGB/RGBA to gray, 16-bit to 8-bit) or oddity.

    Raises:
        InputError: missing, empty, corrupt, unsupported, too large or too small file, naming the path.
    """
    loaded = read_input_image(path, max_pixels, find_spacing=False)
    return loaded.image, loaded.notes


def read_input_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS, *,
                     find_spacing: bool = True) -> LoadedImage:
    """Read one input image — PNG, JPEG, BMP, TIFF or ultrasound DICOM — for prediction, reports and datasets.

    Args:
        path: the file. DICOM is recognised by its content (the ``DICM`` marker), not its name.
        max_pixels: refuse images with more pixels than this (checked from the header, before decoding).
        find_spacing: for image files, look the pixel spacing up in the dataset the file sits in
            (:func:`find_pixel_spacing`); DICOM files take it from their header either way.

    Raises:
        InputError: naming the file and the problem (see the module docstring).
    """
    if not max_pixels > 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    p = _open_checked(path, "image", limit_bytes=False)  # a DICOM cine may be large; its first frame is read
    from pcbm.data.dicom import is_dicom_file

    if is_dicom_file(p):
        from pcbm.data.dicom import read_dicom_frame

        image, notes, spacing, source = read_dicom_frame(p, max_pixels)  # refused from the header if too large
        if image.size > max_pixels:
            raise _too_large(p, "image", image.shape[1], image.shape[0], max_pixels)
        source = f"DICOM header ({source})" if source else None
        return LoadedImage(image, [*notes, *check_image(image, str(p))], spacing, source, str(path))
    image, notes = to_gray_uint8(decode_image(p, "image", max_pixels), str(p))
    notes += check_image(image, str(p))
    spacing, source = find_pixel_spacing(p) if find_spacing else (None, None)
    return LoadedImage(image, notes, spacing, source, str(path))


def find_pixel_spacing(path: str | os.PathLike[str]) -> tuple[float | None, str | None]:
    """Pixel spacing of an image file from the dataset it sits in, or (None, None).

    Knows HC18 (``pixel_size_and_hc.csv``, or the challenge's ``training_set_pixel_size_and_HC.csv``
    / ``test_set_pixel_size.csv``, in the image's folder or its parent) and the folder format
    (``ROOT/images/NAME`` with ``ROOT/labels.csv`` having a ``pixel_spacing_mm`` cell for NAME).

    Returns:
        (mm per pixel, source) or (None, None) when no dataset lists the file.

    Raises:
        InputError: the dataset's CSV lists the file with a spacing that is not a valid number
        (naming the CSV, line and column), or the CSV cannot be read.
    """
    from pcbm.validate import pixel_spacing

    row = _dataset_row(Path(path))
    if row is None:
        return None, None
    where, table, header, cells, line = row
    if header is None:  # HC18: filename, pixel size, [HC]
        if len(cells) < 2:
            return None, None
        return pixel_spacing(cells[1], f"{where}, line {line}, column 2 (pixel size)"), f"dataset ({table}, HC18)"
    if "pixel_spacing_mm" not in header:
        return None, None
    j = header.index("pixel_spacing_mm")
    if len(cells) <= j or not cells[j]:
        return None, None
    value = pixel_spacing(cells[j], f"{where}, line {line}, column 'pixel_spacing_mm'")
    return value, "dataset (labels.csv, folder format)"


def find_recorded(path: str | os.PathLike[str]) -> tuple[dict[str, float], str | None]:
    """The measurements a dataset records for an image file (``{"hc": 171.3}``, mm) and where from:
    HC18's CSV (its HC column) or a folder-format ``labels.csv`` (columns named after continuous
    property concepts, ``hc_mm``); ({}, None) when none. A malformed cell is skipped, not guessed."""
    from pcbm.concepts import CONTINUOUS_PROPERTIES, get_property_concept

    row = _dataset_row(Path(path))
    if row is None:
        return {}, None
    where, table, header, cells, _ = row
    columns = {2: "hc_mm"} if header is None else {header.index(n): n for n in CONTINUOUS_PROPERTIES if n in header}
    found: dict[str, float] = {}
    for j, name in columns.items():
        try:
            v = float(cells[j]) if j < len(cells) and cells[j] else None
        except ValueError:
            v = None
        if v is not None and v > 0:
            found[get_property_concept(name).measurement_keys[0]] = v
    return found, (f"dataset ({table})" if found else None)


def _dataset_row(p: Path) -> tuple[Path, str, list[str] | None, list[str], int] | None:
    """(CSV path, table name, header or None for HC18's headerless use, the file's cells, line) of
    the dataset table that lists image file ``p``; None when none does."""
    from pcbm.data.tables import read_csv

    for folder in (p.parent, p.parent.parent):
        for table in ("pixel_size_and_hc.csv", "training_set_pixel_size_and_HC.csv", "test_set_pixel_size.csv"):
            csv_path = folder / table
            if csv_path.is_file():
                for line, cells in read_csv(csv_path):
                    if cells and cells[0] == p.name:
                        return csv_path, table, None, cells, line
    labels = p.parent.parent / "labels.csv"
    if p.parent.name == "images" and labels.is_file():
        rows = read_csv(labels)
        header = rows[0][1]
        if "image" in header:
            i = header.index("image")
            for line, cells in rows[1:]:
                if len(cells) > i and cells[i] == p.name:
                    return labels, "labels.csv", header, cells, line
    return None


def read_mask(
    path: str | os.PathLike[str],
    like: np.ndarray | tuple[int, int] | None = None,
    image_path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Read a mask file as bool (True where any channel is > 0).

    Args:
        path: the mask file.
        like: the image (or its (H, W) shape) the mask must match.
        image_path: the image's file, named in the size-mismatch error.

    Raises:
        InputError: missing/corrupt/too large file, or a size that differs from the image (naming both files).
    """
    arr = decode_image(path, "mask")
    mask = arr.any(axis=2) if arr.ndim == 3 else arr > 0
    if like is not None:
        shape = tuple(like.shape[:2]) if isinstance(like, np.ndarray) else tuple(like)
        if mask.shape != shape:
            img = f"image {image_path}" if image_path is not None else "its image"
            raise InputError(f"mask {path} has size {mask.shape[1]}x{mask.shape[0]} (WxH) but {img} has "
                             f"{shape[1]}x{shape[0]}")
    return mask


def write_png(path: str | os.PathLike[str], arr: np.ndarray) -> None:
    """Write a uint8 image or a bool mask (as 0/255) as PNG; raises InputError if it fails."""
    a = arr.astype(np.uint8) * 255 if arr.dtype == bool else arr
    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise InputError(f"cannot encode PNG for {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # not ndarray.tofile: its OSError on a full disk carries no errno
        f.write(buf.tobytes())


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension) directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


#: dataset tables whose presence makes a folder given to ``report`` / ``predict`` a dataset
_DATASET_TABLES = {"labels.csv": "folder", "pixel_size_and_hc.csv": "hc18", "training_set_pixel_size_and_HC.csv": "hc18"}


def expand_inputs(args: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """What ``pcbm report`` / ``pcbm predict`` were given, as a list of image files and
    :class:`~pcbm.data.base.DatasetItem` s (read lazily, each with its own spacing and recorded values).

    An existing file stays a file; a folder that is a dataset (``labels.csv``, HC18's CSV) becomes
    its samples, any other folder its image and DICOM files (an empty one stays as given); a data spec (``hc18:PATH?split=val``,
    ``folder:PATH``, ``phantom:n=4``) its samples. Anything else stays as given, so the reader names
    the missing file for that image alone.

    Example:
        >>> [type(x).__name__ for x in expand_inputs(["phantom:n=2,size=64"])]
        ['DatasetItem', 'DatasetItem']
    """
    from pcbm.data.base import DatasetItem, dataset_kinds, open_dataset, parse_spec
    from pcbm.data.dicom import is_dicom_file

    out: list[Any] = []
    for arg in args:
        p = Path(arg)
        spec: str | None = None
        if p.is_dir():
            kind = next((k for t, k in _DATASET_TABLES.items() if (p / t).is_file()), None)
            if kind is None:
                files = [f for f in sorted(p.iterdir()) if f.is_file() and (
                    f.suffix.lower() in (*IMAGE_EXTENSIONS, ".dcm") or is_dicom_file(f))]
                out += files or [p]  # an empty folder: the reader names it, that input alone fails
                continue
            spec = f"{kind}:{p}"
        elif not p.exists() and ":" in str(arg):
            kinds = dataset_kinds()
            kind = parse_spec(str(arg))[0]
            looks_like_spec = re.fullmatch(r"[a-z_][a-z0-9_]*", kind) and p.suffix.lower() not in IMAGE_EXTENSIONS
            if kind not in kinds and looks_like_spec:
                raise unknown_name(kind, kinds, "dataset kind", f" in data spec {str(arg)!r}")
            spec = str(arg) if kind in kinds else None
        if spec is None:
            out.append(p)
            continue
        ds = open_dataset(spec)
        out += [DatasetItem(ds, i, spec) for i in range(len(ds))]
    return out
