"""Reading images and masks: formats, conversions with notes, size limits, and clear errors."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

import pcbm.data.dicom
from pcbm.data.io import (
    MAX_PIXELS,
    MIN_SIDE,
    LoadedImage,
    find_pixel_spacing,
    read_image,
    read_input_image,
    read_mask,
    to_gray_uint8,
    write_png,
)
from pcbm.errors import InputError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but that holds (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_read_gray_formats(tmp_path, ext) -> None:
    img = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    path = tmp_path / f"x{ext}"
    cv2.imwrite(str(path), img)
    out, notes = read_image(path)
    assert out.dtype == np.uint8 and out.shape == img.shape and notes == []
    if ext != ".jpg":
        np.testing.assert_array_equal(out, img)
    loaded = read_input_image(path)
    assert isinstance(loaded, LoadedImage) and loaded.name == str(path) and loaded.pixel_spacing_mm is None


def test_rgb_rgba_converted_with_note(tmp_path) -> None:
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 2] = 200  # red in OpenCV's BGR order
    rgb[0, 0] = 0
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    out, notes = read_image(tmp_path / "rgb.png")
    assert out.shape == (20, 24) and out.dtype == np.uint8 and "RGB" in notes[0] and "grayscale" in notes[0]
    rgba = np.dstack([rgb, np.full((20, 24), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    out, notes = read_image(tmp_path / "rgba.png")
    assert out.shape == (20, 24) and "RGBA" in notes[0] and "alpha ignored" in notes[0]
    gray3 = np.repeat(np.arange(120, dtype=np.uint8).reshape(10, 12, 1), 3, axis=2)
    out, notes = to_gray_uint8(gray3)
    np.testing.assert_array_equal(out, gray3[..., 0])
    assert "equal channels" in notes[0]
    f = to_gray_uint8(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5))[0]
    assert f.min() == 0 and f.max() == 255


@pytest.mark.parametrize("top,bits", [(1023, 10), (4095, 12), (65535, 16)])
def test_16bit_scaled_by_the_bit_depth_used(tmp_path, top, bits) -> None:
    ramp = np.linspace(0, top, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "deep.png"), ramp)
    out, notes = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) == 256  # a 10-bit image keeps its levels (/257 left it 5 grey levels)
    assert f"{bits}-bit" in notes[0] and "scaled" in notes[0]


def test_16bit_holding_8bit_values_read_as_is(tmp_path) -> None:
    img = np.tile(np.arange(0, 200, dtype=np.uint16), (20, 1))
    cv2.imwrite(str(tmp_path / "deep8.png"), img)
    out, notes = read_image(tmp_path / "deep8.png")
    np.testing.assert_array_equal(out, img.astype(np.uint8))
    assert "8-bit values" in notes[0]


def test_huge_image_refused_from_its_header(tmp_path) -> None:
    (tmp_path / "huge.png").write_bytes(header_only_png(20000, 20000))
    with pytest.raises(InputError, match=r"huge.png is 400 megapixels; the limit is 40 megapixels"):
        read_input_image(tmp_path / "huge.png")
    (tmp_path / "big.png").write_bytes(header_only_png(8000, 8000))
    with pytest.raises(InputError, match=r"big.png is 8000x8000 px = 64.0 megapixels; the limit is 40"):
        read_image(tmp_path / "big.png")
    assert MAX_PIXELS == 40_000_000
    write_png(tmp_path / "ok.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(InputError, match=r"100x100 px.*limit is 0.005 megapixels"):
        read_input_image(tmp_path / "ok.png", max_pixels=5000)
    with pytest.raises(InputError, match="mask .*huge.png is 400 megapixels"):
        read_mask(tmp_path / "huge.png")


def test_tiny_refused_and_constant_noted(tmp_path) -> None:
    write_png(tmp_path / "one.png", np.zeros((1, 1), np.uint8))
    with pytest.raises(InputError, match=rf"one.png is 1x1 px; an image needs at least {MIN_SIDE} px"):
        read_input_image(tmp_path / "one.png")
    write_png(tmp_path / "thin.png", np.zeros((200, 8), np.uint8))
    with pytest.raises(InputError, match="8x200 px"):
        read_image(tmp_path / "thin.png")
    write_png(tmp_path / "black.png", np.zeros((32, 32), np.uint8))
    assert read_input_image(tmp_path / "black.png").notes == ["all-black image (every pixel 0)"]
    write_png(tmp_path / "grey.png", np.full((32, 32), 90, np.uint8))
    assert read_image(tmp_path / "grey.png")[1] == ["constant image (every pixel 90)"]


def test_missing_corrupt_empty_and_wrong_files(tmp_path) -> None:
    with pytest.raises(InputError, match="not found: .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(InputError, match="bad.png.*truncated PNG"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(InputError, match="bad.jpg: corrupt or truncated JPEG"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty.png: empty file"):
        read_input_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("these are my notes, renamed")
    with pytest.raises(InputError, match="notes.png: not an image file"):
        read_input_image(tmp_path / "notes.png")
    write_png(tmp_path / "real.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data = (tmp_path / "real.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png: truncated PNG"):
        read_input_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="not a file"):
        read_image(tmp_path)


def test_mask_bool_and_size_mismatch(tmp_path) -> None:
    m = np.zeros((8, 10), bool)
    m[2:4, 3:6] = True
    write_png(tmp_path / "m.png", m)
    out = read_mask(tmp_path / "m.png", like=np.zeros((8, 10), np.uint8))
    assert out.dtype == bool and (out == m).all()
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[2:4, 3:6, 1] = 255
    cv2.imwrite(str(tmp_path / "rgbmask.png"), rgb)
    assert (read_mask(tmp_path / "rgbmask.png") == m).all()
    with pytest.raises(InputError, match=r"m.png has size 10x8.*img.png has 12x8"):
        read_mask(tmp_path / "m.png", like=(8, 12), image_path=tmp_path / "img.png")


def test_spacing_from_hc18_and_folder_layouts(tmp_path) -> None:
    img = np.random.default_rng(0).integers(0, 255, (32, 40), dtype=np.uint8)
    hc = tmp_path / "hc"
    write_png(hc / "images" / "001_HC.png", img)
    (hc / "pixel_size_and_hc.csv").write_text("filename,pixel_size_mm,head_circumference_mm\n001_HC.png,0.15,50\n")
    loaded = read_input_image(hc / "images" / "001_HC.png")
    assert loaded.pixel_spacing_mm == 0.15 and "HC18" in loaded.spacing_source
    official = tmp_path / "official"
    write_png(official / "002_HC.png", img)
    (official / "training_set_pixel_size_and_HC.csv").write_text("filename,pixel size(mm),head circumference (mm)\n"
                                                                 "002_HC.png,0.2,60\n")
    assert find_pixel_spacing(official / "002_HC.png")[0] == 0.2
    folder = tmp_path / "folder"
    write_png(folder / "images" / "a.png", img)
    write_png(folder / "images" / "b.png", img)
    (folder / "labels.csv").write_text("image,pixel_spacing_mm\na.png,0.3\nb.png,\n")
    loaded = read_input_image(folder / "images" / "a.png")
    assert loaded.pixel_spacing_mm == 0.3 and "labels.csv" in loaded.spacing_source
    assert find_pixel_spacing(folder / "images" / "b.png") == (None, None)
    assert read_input_image(folder / "images" / "a.png", find_spacing=False).pixel_spacing_mm is None
    (folder / "labels.csv").write_text("image,pixel_spacing_mm\na.png,nan\n")
    with pytest.raises(InputError, match=r"labels.csv, line 2, column 'pixel_spacing_mm' must be a finite"):
        read_input_image(folder / "images" / "a.png")


@pytest.mark.skipif(not hasattr(pcbm.data.dicom, "read_dicom_frame"),
                    reason="pcbm.data.dicom.read_dicom_frame is not written yet (another helper's part)")
def test_dicom_through_the_one_reader(tmp_path) -> None:
    pytest.importorskip("pydicom")
    from dicom_helpers import make_dicom

    path = make_dicom(tmp_path / "scan.dcm", region_cm=0.02)
    loaded = read_input_image(path)
    assert loaded.image.dtype == np.uint8 and loaded.image.ndim == 2 and loaded.name == str(path)
    assert loaded.pixel_spacing_mm == pytest.approx(0.2) and loaded.spacing_source.startswith("DICOM header")
    renamed = tmp_path / "scan.png"  # recognised by content, not by name
    renamed.write_bytes(path.read_bytes())
    np.testing.assert_array_equal(read_image(renamed)[0], loaded.image)
