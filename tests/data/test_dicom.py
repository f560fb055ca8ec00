"""DICOM reading, de-identification and ETL on tiny DICOM files built here with pydicom."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pydicom = pytest.importorskip("pydicom")
from dicom_helpers import NAME, PID, REGION, TEXT, H, W, make_dicom  # noqa: E402
from dicom_helpers import us_image as _image  # noqa: E402

from pcbm.cli import app  # noqa: E402
from pcbm.data.check import check_dataset  # noqa: E402
from pcbm.data.deid import deidentify, hash_uid  # noqa: E402
from pcbm.data.dicom import find_dicom_files, read_dicom  # noqa: E402
from pcbm.data.etl import read_manifest, run_etl  # noqa: E402
from pcbm.data.harmonise import cine_field_of_view, estimate_sector, harmonise  # noqa: E402
from pcbm.data.io import read_image  # noqa: E402
from pcbm.data.sample import Sample  # noqa: E402
from pcbm.errors import InputError  # noqa: E402


def test_spacing_from_regions_cm_to_mm_and_identifiers_gone(tmp_path):
    (s,) = read_dicom(make_dicom(tmp_path / "a.dcm", region_cm=0.02))
    assert s.pixel_spacing_mm == pytest.approx(0.2)
    assert s.meta["pixel_spacing_source"] == "dicom:SequenceOfUltrasoundRegions"
    x0, y0, x1, y1 = REGION
    assert s.field_of_view.sum() == (x1 - x0 + 1) * (y1 - y0 + 1) and s.field_of_view[y0, x0]
    assert s.subject.startswith("anon-") and PID not in s.subject
    assert NAME not in repr(s.meta) and PID not in repr(s.meta)


def test_pixel_spacing_fallback_and_none(tmp_path):
    (s,) = read_dicom(make_dicom(tmp_path / "b.dcm", region_cm=None, pixel_spacing=[0.3, 0.3]))
    assert s.pixel_spacing_mm == pytest.approx(0.3) and s.meta["pixel_spacing_source"] == "dicom:PixelSpacing"
    (s,) = read_dicom(make_dicom(tmp_path / "c.dcm", region_cm=None))
    assert s.pixel_spacing_mm is None and s.field_of_view is None


def test_deidentify_tags(tmp_path):
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm"))
    uid = ds.StudyInstanceUID
    deidentify(ds, salt="s")
    assert str(ds.PatientName) == "" and ds.PatientBirthDate == "" and ds.AccessionNumber == ""
    for kw in ("PatientAddress", "InstitutionName", "DeviceSerialNumber"):
        assert kw not in ds
    assert str(ds.OperatorsName) == "" and str(ds.ReferringPhysicianName) == "" and ds.StudyDate == ""
    assert ds.PatientID.startswith("anon-") and ds.PatientIdentityRemoved == "YES"
    assert not any(e.tag.is_private for e in ds)
    assert ds.StudyInstanceUID == hash_uid(uid, "s") != uid  # consistent replacement
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"  # class UIDs kept
    assert ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX == 0.02


def test_burned_in_text_masked_outside_region(tmp_path):
    (raw,) = read_dicom(make_dicom(tmp_path / "a.dcm"))
    assert raw.image[TEXT].min() == 255
    s = harmonise(raw, crop=False)
    assert s.image[TEXT].max() == 0 and s.meta["burned_in_masked"] == "region"
    assert harmonise(raw, mask=False).meta["burned_in_masked"] == "none"
    x0, y0, x1, y1 = REGION
    np.testing.assert_array_equal(s.image[y0:y1 + 1, x0:x1 + 1], raw.image[y0:y1 + 1, x0:x1 + 1])
    c = harmonise(raw, size=30)
    assert max(c.image.shape) == 30 and c.pixel_spacing_mm == pytest.approx(0.2 * 60 / 30)


def test_estimated_sector_masks_text_inside_bounding_box():
    import cv2

    img = np.zeros((H, W), np.uint8)
    fan = np.zeros_like(img)
    cv2.ellipse(fan, (40, 2), (58, 58), 0, 45, 135, 1, -1)
    img[fan > 0] = np.random.default_rng(1).integers(60, 200, int(fan.sum()))
    img[2:6, 2:14] = 255  # text in a corner of the sector's bounding box
    sector = estimate_sector(img)
    assert sector is not None and not sector[2:6, 2:14].any() and sector[fan > 0].mean() > 0.98
    s = harmonise(Sample(image=img, id="x"))
    assert s.meta["fov_source"] == "estimated" and s.image.max() < 255
    left, right = img.copy(), img.copy()  # a cine whose frames each show half the fan
    left[:, 40:], right[:, :40] = 0, 0
    fov = cine_field_of_view([Sample(image=left, id="a"), Sample(image=right, id="b")])
    assert fov.source == "estimated:cine" and fov.masked == "sector"
    assert fov.mask[fan > 0].mean() > 0.98 and not fov.mask[2:6, 2:14].any()


def test_rgb_to_gray_with_note_and_multiframe(tmp_path):
    gray = _image()
    rgb = np.stack([gray, gray // 2, gray // 3], axis=-1)
    (s,) = read_dicom(make_dicom(tmp_path / "rgb.dcm", pixels=rgb, photometric="RGB"))
    assert s.image.shape == (H, W) and any("RGB" in n and "grayscale" in n for n in s.meta["notes"])
    ybr = np.stack([gray, np.full_like(gray, 128), np.full_like(gray, 128)], axis=-1)
    (y,) = read_dicom(make_dicom(tmp_path / "ybr.dcm", pixels=ybr, photometric="YBR_FULL"))
    assert np.abs(y.image.astype(int) - gray).max() <= 1 and "YBR_FULL" in y.meta["notes"][0]
    cine = np.stack([_image(k) for k in range(3)])
    path = make_dicom(tmp_path / "cine.dcm", pixels=cine, frames=3)
    samples = read_dicom(path)
    assert [x.id for x in samples] == ["cine_f0000", "cine_f0001", "cine_f0002"]
    np.testing.assert_array_equal(samples[2].image, _image(2))
    assert len({x.subject for x in samples}) == 1
    (first,) = read_dicom(path, frames="first")
    np.testing.assert_array_equal(first.image, _image(0))


def test_monochrome1_16bit_inverted_and_scaled(tmp_path):
    raw = (_image().astype(np.uint16) * 16)  # 12-bit values
    (s,) = read_dicom(make_dicom(tmp_path / "m1.dcm", pixels=raw, photometric="MONOCHROME1", bits=12))
    expected = np.round((4095 - raw.astype(float)) * 255 / 4095).astype(np.uint8)
    np.testing.assert_array_equal(s.image, expected)
    assert any("MONOCHROME1" in n for n in s.meta["notes"]) and any("12-bit" in n for n in s.meta["notes"])


def test_corrupt_and_non_image_files_raise_input_error(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="broken.dcm"):
        read_dicom(bad)
    path = make_dicom(tmp_path / "trunc.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(InputError, match="trunc.dcm"):
        read_dicom(path)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_etl_cli_writes_deidentified_folder_with_manifest(tmp_path):
    src = tmp_path / "src"
    make_dicom(src / "p1" / "scan.dcm")
    make_dicom(src / "noext", region_cm=None, pixel_spacing=[0.25, 0.25])  # no extension: found by marker
    make_dicom(src / "cine.dcm", pixels=np.stack([_image(k) for k in range(2)]), frames=2)
    (src / "broken.dcm").write_bytes(b"\x00" * 64 + b"garbage")
    (src / "notes.txt").write_text("not dicom")
    assert len(find_dicom_files(src)) == 4
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["data", "etl", str(src), "--out", str(out), "--no-progress", "--salt", "s"])
    assert r.exit_code == 1, r.output
    assert "broken.dcm" in r.output and "wrote 4 images" in r.output
    rows = read_manifest(out / "manifest.csv")
    assert {row["source"] for row in rows} == {"p1/scan.dcm", "noext", "cine.dcm"}
    for row in rows:
        assert row["png_sha256"] == _sha(out / "images" / row["image"])
        assert row["source_sha256"] == _sha(src / row["source"])
    by_src = {row["source"]: row for row in rows}
    assert by_src["p1/scan.dcm"]["pixel_spacing_mm"] == "0.2"
    assert by_src["noext"]["pixel_spacing_source"] == "dicom:PixelSpacing"
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert NAME.encode() not in data and b"DOE" not in data and PID.encode() not in data
    img, _ = read_image(out / "images" / "p1_scan.png")
    assert img.shape == (52, 60) and img.min() < 255
    assert read_image(out / "images" / "noext.png")[0].shape == (52, 60)  # estimated sector leaves the text out
    labels = list(csv.DictReader(open(out / "labels.csv", encoding="utf-8")))
    assert all(row["plane"] == "" and row["standard"] == "" for row in labels)
    report = check_dataset(f"folder:{out}", progress=False)
    assert report.ok and report.n_read == 4 and report.with_spacing == 4


def test_etl_opaque_ids_keep_patient_names_in_paths_out(tmp_path):
    src = tmp_path / "src"
    make_dicom(src / "DOE_JOHN" / "scan.dcm")
    make_dicom(src / "DOE_JOHN" / "scan2.dcm")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["data", "etl", str(src), "--out", str(out), "--no-progress", "--opaque-ids",
                                 "--salt", "s3cret"])
    assert r.exit_code == 0, r.output
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 2 and all(row["source"] == "" for row in rows)
    assert len({row["image"] for row in rows}) == 2 and all(row["image"].startswith("us_") for row in rows)
    assert {row["source_sha256"] for row in rows} == {_sha(src / "DOE_JOHN" / n) for n in ("scan.dcm", "scan2.dcm")}
    for f in out.rglob("*"):
        assert "DOE" not in f.name
        if f.is_file():
            assert b"DOE" not in f.read_bytes()
    again = run_etl(src, tmp_path / "out2", salt="s3cret", progress=False, opaque_ids=True)
    assert [row["image"] for row in again.rows] == [row["image"] for row in rows]  # stable for a salt
    other = run_etl(src, tmp_path / "out3", salt="other", progress=False, opaque_ids=True)
    assert {row["image"] for row in other.rows}.isdisjoint(row["image"] for row in rows)


def test_etl_all_failing_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.dcm").write_bytes(b"nope")
    result = run_etl(src, tmp_path / "out", progress=False, salt="s")
    assert result.failures and not result.rows and not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM files"):
        run_etl(tmp_path / "empty", tmp_path / "o", progress=False, salt="s")


def test_dicom_dataset_spec(tmp_path):
    src = tmp_path / "src"
    make_dicom(src / "a.dcm")
    make_dicom(src / "cine.dcm", pixels=np.stack([_image(k) for k in range(2)]), frames=2)
    from pcbm.data.base import open_dataset

    ds = open_dataset(f"dicom:{src}?size=32")
    assert len(ds) == 3 and ds.subject_of(1) == ds.subject_of(2)
    s = ds[0]
    assert max(s.image.shape) == 32 and s.source == "dicom" and s.subject.startswith("anon-")
    assert len(open_dataset(f"dicom:{src}?frames=first")) == 2
    assert check_dataset(f"dicom:{src}", progress=False).ok


def test_estimated_sector_leaves_out_text_that_touches_it():
    import cv2

    h, w = 420, 560
    img = np.zeros((h, w), np.uint8)
    fan = np.zeros_like(img)
    cv2.ellipse(fan, (280, 20), (380, 380), 0, 50, 130, 1, -1)
    img[fan > 0] = np.random.default_rng(2).integers(40, 220, int(fan.sum()))
    edge_x = int(np.nonzero(fan[200])[0].max())  # the fan's right edge on row 200
    cv2.putText(img, "TIS0.4 MI 1.1", (edge_x - 2, 205), cv2.FONT_HERSHEY_PLAIN, 1.2, 255, 1)
    outside = np.zeros_like(fan, dtype=bool)
    outside[180:215] = fan[180:215] == 0
    outside[:, : edge_x + 4] = False  # right of the fan, in the rows of the text
    assert (img > 0)[outside].sum() > 100  # the text reaches well outside the fan
    sector = estimate_sector(img)
    assert sector is not None and sector[fan > 0].mean() > 0.98
    assert sector[outside].sum() < 30, f"text joined the sector ({sector[outside].sum()} px outside the fan)"
