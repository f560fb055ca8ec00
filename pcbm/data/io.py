"""Reading images and masks from files, with clear errors and notes on any conversion.

Images become 2-D uint8 grayscale: RGB/RGBA are converted (luma), 16-bit and float images are
scaled to 8 bits — each with a note the caller can keep (``Sample.meta["notes"]``). Masks become
bool arrays (any channel > 0). Missing, unreadable or corrupt files raise
:class:`~pcbm.errors.InputError` naming the path.

Example:
    >>> img, notes = read_image("scan.png")  # doctest: +SKIP
    >>> mask = read_mask("scan_mask.png", like=img, image_path="scan.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pcbm.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _decode(path: str | os.PathLike[str], what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found: {p}" if not p.exists() else f"{what} is not a file: {p}")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {what} {p}: {e.strerror or e}") from None
    if data.size == 0:
        raise InputError(f"cannot read {what} {p}: empty file")
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise InputError(f"cannot read {what} {p}: corrupt file or unsupported format (PNG, JPEG, BMP, TIFF)")
    return arr


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
        notes.append("16-bit image scaled to 8 bits (value / 257)")
        return np.round(arr.astype(np.float32) / 257.0).astype(np.uint8), notes
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255, notes
    if np.issubdtype(arr.dtype, np.number):
        a = arr.astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        notes.append(f"{arr.dtype} image scaled from [{lo:g}, {hi:g}] to 8 bits")
        scaled = (np.nan_to_num(a, nan=lo) - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8), notes
    raise InputError(f"{name}: unsupported pixel type {arr.dtype}")


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read an image file as 2-D uint8 grayscale.

    Returns:
        (image, notes): notes name any conversion (RGB/RGBA to gray, 16-bit to 8-bit), prefixed
        with nothing — the caller knows the path.

    Raises:
        InputError: missing, empty, corrupt or unsupported file, naming the path.
    """
    arr = _decode(path, "image")
    return to_gray_uint8(arr, str(path))


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
        InputError: missing/corrupt file, or a size that differs from the image (naming both files).
    """
    arr = _decode(path, "mask")
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
    buf.tofile(str(path))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension) directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
