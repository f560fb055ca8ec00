"""Every image reader refuses an image too large for the pixel limit from its header, before any
decoding: a DICOM bomb (a few kB that claim gigapixels), a deflated DICOM dataset that would inflate
to gigabytes, a PNG / JPEG whose header claims 60000 x 60000 (issue 35, deliverable 2).

"Before decoding" is checked by making the decoders fail the test if they are reached."""

from __future__ import annotations

import struct
import time
import warnings
import zlib

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from dicom_helpers import make_dicom, us_image  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless  # noqa: E402

import pcbm.data.dicom  # noqa: E402
import pcbm.data.io  # noqa: E402
from pcbm.data.dicom import check_decode_size, check_inflated_size, read_dicom, read_dicom_frame  # noqa: E402
from pcbm.data.io import read_input_image  # noqa: E402
from pcbm.data.limits import MAX_CINE_PIXELS  # noqa: E402
from pcbm.errors import InputError  # noqa: E402


def _never(*args, **kwargs):
    raise AssertionError("the pixel decoder was reached")


@pytest.fixture()
def no_decoding(monkeypatch):
    """Any pixel decoding fails the test (DICOM through pydicom, image files through OpenCV)."""
    monkeypatch.setattr(pcbm.data.dicom, "_decoder", _never)
    monkeypatch.setattr(pcbm.data.io.cv2, "imdecode", _never)


def rle_bomb(path, rows: int, cols: int, frames: int = 1):
    """An RLE-compressed ultrasound DICOM of about 48 kB whose header claims rows x cols x frames:
    one segment of runs of 128 zeros (2 bytes each). Decoded, 40000 x 40000 would be 1.6 GB."""
    def edit(ds: Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = RLELossless
        header = np.zeros(16, "<u4")
        header[:2] = 1, 64  # one segment, starting after the 64-byte header
        ds.PixelData = encapsulate([header.tobytes() + bytes([0x81, 0]) * 24_000])
        ds["PixelData"].VR = "OB"
        ds.Rows, ds.Columns = rows, cols
        if frames > 1:
            ds.NumberOfFrames = frames

    return make_dicom(path, edit=edit)


def test_a_dicom_bomb_is_refused_from_its_header_in_milliseconds(tmp_path, no_decoding) -> None:
    bomb = rle_bomb(tmp_path / "bomb.dcm", 30000, 30000, frames=50)
    assert bomb.stat().st_size < 60_000
    message = r"bomb.dcm: 30000x30000 px = 900.0 megapixels a frame \(Columns x Rows in its header; nothing decoded\)"
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=message + r"; the limit is 40 megapixels"):
        read_input_image(bomb)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(InputError, match=message + r"; the limit is 9 megapixels"):
        read_input_image(bomb, max_pixels=9_000_000)  # the service's limit
    for read in (read_dicom_frame, lambda p: read_dicom(p, frames="all"), lambda p: read_dicom(p, frames=3)):
        with pytest.raises(InputError, match=message):
            read(bomb)
    with pytest.raises(InputError, match=message):  # a dataset lists the file as one bad entry
        pcbm.data.dicom.DicomDataset(tmp_path)[0]


def test_a_cine_read_whole_is_bounded_and_decoded_a_frame_at_a_time(tmp_path, monkeypatch) -> None:
    long = rle_bomb(tmp_path / "long.dcm", 2000, 2000, frames=MAX_CINE_PIXELS // 4_000_000 + 1)  # 4 MP a frame
    with monkeypatch.context() as m:
        m.setattr(pcbm.data.dicom, "_decoder", _never)
        with pytest.raises(InputError, match=r"long.dcm: 101 frames of 2000x2000 px = 404 megapixels "
                                             r"\(NumberOfFrames x Columns x Rows in its header; nothing decoded\); "
                                             r"reading every frame is limited to 400 megapixels"):
            read_dicom(long, frames="all")
    cine = make_dicom(tmp_path / "cine.dcm", pixels=np.stack([us_image(k) for k in range(3)]), frames=3)
    seen = []
    iter_pixels = pcbm.data.dicom.iter_pixels

    def counted(ds, path):
        for frame, photometric in iter_pixels(ds, path):
            seen.append(frame.shape)
            yield frame, photometric

    monkeypatch.setattr(pcbm.data.dicom, "iter_pixels", counted)
    samples = read_dicom(cine, frames="all")
    assert seen == [us_image().shape] * 3 and [s.meta["frame"] for s in samples] == [0, 1, 2]
    np.testing.assert_array_equal(samples[1].image, us_image(1))


def _header(**values) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 64, 80, 1, 8
    with warnings.catch_warnings():  # pydicom warns of a negative or text US value; a header may hold one
        warnings.simplefilter("ignore")
        for k, v in values.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(("values", "message"), [
    ({"Rows": None}, r"no valid image size in the header \(Rows missing or unreadable, Columns 80;"),
    ({"Columns": 0}, r"\(Rows 64, Columns 0; both must be positive integers\)"),
    ({"Rows": -5}, r"\(Rows -5, Columns 80;"),
    ({"Rows": "abc"}, r"Rows missing or unreadable"),
    ({"SamplesPerPixel": 65535}, r"SamplesPerPixel 65535 is not supported \(1 for grayscale or 3 for colour\)"),
    ({"SamplesPerPixel": None}, r"SamplesPerPixel missing or unreadable"),
    ({"BitsAllocated": 4096}, r"BitsAllocated 4096 is not supported \(1, 8, 16, 32, 64\)"),
    ({"SamplesPerPixel": 3, "BitsAllocated": 32}, r"3 samples of 32 bits a pixel \(12 bytes"),
    ({"Rows": 10_000, "Columns": 5_000}, r"5000x10000 px = 50.0 megapixels a frame"),
], ids=["no-rows", "zero-columns", "negative-rows", "text-rows", "65535-samples", "no-samples", "4096-bits",
        "rgb-32-bit", "50-megapixels"])
def test_header_sizes_that_cannot_be_decoded_are_named(tmp_path, values, message) -> None:
    with pytest.raises(InputError, match=message):
        check_decode_size(_header(**values), tmp_path / "x.dcm")


def test_header_sizes_within_the_limits_pass(tmp_path) -> None:
    check_decode_size(_header(), tmp_path / "x.dcm")
    check_decode_size(_header(SamplesPerPixel=3, BitsAllocated=16), tmp_path / "x.dcm", max_pixels=64 * 80)
    check_decode_size(_header(Rows=768, Columns=1024), tmp_path / "x.dcm", frames=500)  # a 17 s clip read whole
    with pytest.raises(InputError, match="the limit is 0.005 megapixels"):
        check_decode_size(_header(), tmp_path / "x.dcm", max_pixels=5000)


def _deflated(path, body: bytes):
    """A DICOM file whose dataset (``body``, before deflation) is deflated, as PS3.5 A.5 says."""
    ref = make_dicom(path.with_suffix(".plain.dcm"))
    ds = pydicom.dcmread(ref)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    meta_end = 132 + 12 + int(pydicom.filereader.read_file_meta_info(path).FileMetaInformationGroupLength)
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    path.write_bytes(path.read_bytes()[:meta_end] + squeeze.compress(body) + squeeze.flush())
    return path


def test_a_deflated_dataset_is_inflated_within_a_bound(tmp_path) -> None:
    ok = make_dicom(tmp_path / "src.dcm")
    ds = pydicom.dcmread(ok)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    (s,) = read_dicom(tmp_path / "deflated.dcm")  # a real deflated file reads as before
    np.testing.assert_array_equal(s.image, read_dicom(ok)[0].image)
    check_inflated_size(tmp_path / "deflated.dcm", limit=1 << 20)

    bomb = _deflated(tmp_path / "bomb.dcm", bytes(4 << 20))  # 4 MB of zeros in about 4 kB
    assert bomb.stat().st_size < 10_000
    with pytest.raises(InputError, match=r"bomb.dcm: deflated DICOM dataset inflates to more than 1 MB"):
        check_inflated_size(bomb, limit=1 << 20)
    broken = _deflated(tmp_path / "broken.dcm", b"")
    broken.write_bytes(broken.read_bytes()[:-2] + b"\xff" * 64)
    with pytest.raises(InputError, match="corrupt deflated DICOM dataset"):
        check_inflated_size(broken)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, good_crc: bool = True) -> bytes:
    """A tiny PNG whose IHDR claims width x height."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if not good_crc:  # Pillow then cannot read the header: the reader reads the IHDR itself
        ihdr = ihdr[:-4] + bytes(4)
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", zlib.compress(bytes(64))) + _chunk(b"IEND", b"")


def _jpeg(width: int, height: int) -> bytes:
    """A tiny JPEG (SOI, a baseline SOF claiming width x height, EOI)."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


BOMBS = {"huge.png": lambda: _png(60000, 60000), "bad_crc.png": lambda: _png(60000, 60000, good_crc=False),
         "huge.jpg": lambda: _jpeg(60000, 60000)}


@pytest.mark.parametrize("name", list(BOMBS))
def test_png_and_jpeg_bombs_are_refused_from_the_header(tmp_path, no_decoding, name) -> None:
    data = BOMBS[name]()
    (tmp_path / name).write_bytes(data)
    assert len(data) < 200
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=rf"{name} is (60000x60000 px = 3600.0|3600) megapixels; the limit is 40"):
        read_input_image(tmp_path / name)
    assert time.perf_counter() - t0 < 1.0


def test_an_image_without_a_readable_size_is_not_decoded(tmp_path, no_decoding) -> None:
    no_ihdr = b"\x89PNG\r\n\x1a\n" + _chunk(b"IDAT", zlib.compress(bytes(64))) + _chunk(b"IEND", b"")
    (tmp_path / "no_ihdr.png").write_bytes(no_ihdr)
    with pytest.raises(InputError, match=r"no_ihdr.png: corrupt or truncated PNG file \(no readable size"):
        read_input_image(tmp_path / "no_ihdr.png")
    (tmp_path / "no_sof.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9")
    with pytest.raises(InputError, match=r"no_sof.jpg: corrupt or truncated JPEG file \(no readable size"):
        read_input_image(tmp_path / "no_sof.jpg")


def test_the_own_header_reader_agrees_with_pillow(tmp_path) -> None:
    import cv2

    from pcbm.data.io import header_size, own_header_size

    image = np.zeros((37, 53, 3), np.uint8)
    for ext, kind in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP")):
        path = tmp_path / f"x{ext}"
        cv2.imwrite(str(path), image)
        assert own_header_size(path.read_bytes(), kind) == header_size(path) == (53, 37)
