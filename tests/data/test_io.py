"""Reading images and masks: formats, conversions with notes, and clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.data.io import read_image, read_mask, to_gray_uint8, write_png
from pcbm.errors import InputError


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_read_gray_formats(tmp_path, ext) -> None:
    img = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    path = tmp_path / f"x{ext}"
    cv2.imwrite(str(path), img)
    out, notes = read_image(path)
    assert out.dtype == np.uint8 and out.shape == img.shape and notes == []
    if ext != ".jpg":
        np.testing.assert_array_equal(out, img)


def test_rgb_rgba_16bit_converted_with_note(tmp_path) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    out, notes = read_image(tmp_path / "rgb.png")
    assert out.shape == (10, 12) and out.dtype == np.uint8 and "RGB" in notes[0] and "grayscale" in notes[0]
    rgba = np.dstack([rgb, np.full((10, 12), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    out, notes = read_image(tmp_path / "rgba.png")
    assert out.shape == (10, 12) and "RGBA" in notes[0]
    deep = np.full((10, 12), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    out, notes = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.max() == 255 and "16-bit" in notes[0]
    gray3 = np.repeat(np.arange(120, dtype=np.uint8).reshape(10, 12, 1), 3, axis=2)
    out, notes = to_gray_uint8(gray3)
    np.testing.assert_array_equal(out, gray3[..., 0])
    assert "equal channels" in notes[0]
    f = to_gray_uint8(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5))[0]
    assert f.min() == 0 and f.max() == 255


def test_missing_corrupt_empty_files(tmp_path) -> None:
    with pytest.raises(InputError, match="not found: .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(InputError, match="corrupt.*bad.png|bad.png.*corrupt"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(InputError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        read_image(tmp_path / "empty.png")
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
