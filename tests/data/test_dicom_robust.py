"""Nothing lost: odd DICOMs fail one by one (the rest go on), bad spacing is unknown spacing, and the
ETL never overwrites or half-writes an output folder."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("pydicom")
from dicom_helpers import make_dicom, us_image  # noqa: E402

from pcbm.cli import app, main  # noqa: E402
from pcbm.data.dicom import read_dicom  # noqa: E402
from pcbm.data.etl import read_manifest, run_etl  # noqa: E402
from pcbm.errors import InputError  # noqa: E402

SALT = "robust-salt"


def _drop_pixels(ds) -> None:
    del ds.PixelData


def _odd_source(root):
    """Two good files and one of each kind of broken file; {name: expected reason}."""
    make_dicom(root / "good.dcm")
    make_dicom(root / "good_cine.dcm", pixels=np.stack([us_image(k) for k in range(2)]), frames=2)
    make_dicom(root / "nan_spacing.dcm", region_cm=float("nan"))  # converts, spacing unknown
    make_dicom(root / "zero_spacing.dcm", region_cm=None, pixel_spacing=[0.0, 0.0])  # converts, spacing unknown
    (root / "corrupt.dcm").write_bytes(np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8).tobytes())
    data = make_dicom(root / "truncated.dcm").read_bytes()
    (root / "truncated.dcm").write_bytes(data[: len(data) - 3000])
    make_dicom(root / "no_pixels.dcm", edit=_drop_pixels)
    make_dicom(root / "frames_missing.dcm", pixels=np.stack([us_image(k) for k in range(2)]), frames=3)
    make_dicom(root / "region_outside.dcm", region=(200, 200, 300, 300))
    make_dicom(root / "region_degenerate.dcm", region=(10, 10, 10, 50))
    return {
        "corrupt.dcm": "not a DICOM file",
        "truncated.dcm": "cannot decode pixel data",
        "no_pixels.dcm": "no pixel data",
        "frames_missing.dcm": "cannot decode pixel data",
        "region_outside.dcm": "lies outside the 80x64 image",
        "region_degenerate.dcm": "is degenerate",
    }


def test_etl_lists_each_broken_file_and_converts_the_rest(tmp_path):
    expected = _odd_source(tmp_path / "src")
    out = tmp_path / "out"
    result = run_etl(tmp_path / "src", out, salt=SALT, progress=False)
    failures = dict(result.failures)
    assert set(failures) == set(expected)
    for name, reason in expected.items():
        assert failures[name].startswith(str(tmp_path / "src" / name)) and reason in failures[name], failures[name]
        assert "\n" not in failures[name]
    rows = {row["image"]: row for row in read_manifest(out / "manifest.csv")}
    assert set(rows) == {"good.png", "good_cine_f0000.png", "good_cine_f0001.png", "nan_spacing.png",
                         "zero_spacing.png"}
    assert rows["nan_spacing.png"]["pixel_spacing_mm"] == "" and "PhysicalDeltaX/Y in SequenceOfUltrasoundRegions outside the plausible range" in rows["nan_spacing.png"]["notes"]
    assert rows["zero_spacing.png"]["pixel_spacing_mm"] == "" and "PixelSpacing: outside the plausible range" in rows["zero_spacing.png"]["notes"]
    assert rows["nan_spacing.png"]["burned_in_masked"] == "region"  # the region still masks the text
    r = CliRunner().invoke(app, ["data", "etl", str(tmp_path / "src"), "--out", str(tmp_path / "out2"),
                                 "--no-progress", "--salt", SALT])
    assert r.exit_code == 1 and "6 file(s) not converted" in r.output and "wrote 5 images" in r.output
    assert all(name in r.output for name in expected)


def test_bad_spacing_values_are_unknown_spacing_with_a_note(tmp_path):
    for value in (float("nan"), -0.02, 0.0, 5.0):  # 5 cm per pixel: a unit mistake
        (s,) = read_dicom(make_dicom(tmp_path / "a.dcm", region_cm=value))
        assert s.pixel_spacing_mm is None and s.meta["pixel_spacing_source"] == ""
        assert s.field_of_view is not None  # the region still says where the image is
        assert any("ignored PhysicalDeltaX/Y" in n and "plausible range" in n for n in s.meta["notes"])
    (s,) = read_dicom(make_dicom(tmp_path / "b.dcm", region_cm=-0.02, pixel_spacing=[0.3, 0.3]))
    assert s.pixel_spacing_mm == pytest.approx(0.3) and s.meta["pixel_spacing_source"] == "dicom:PixelSpacing"
    (s,) = read_dicom(make_dicom(tmp_path / "c.dcm", region_cm=None, pixel_spacing=[float("nan"), 0.3]))
    assert s.pixel_spacing_mm is None and any("PixelSpacing: outside the plausible range" in n for n in s.meta["notes"])
    (s,) = read_dicom(make_dicom(tmp_path / "d.dcm", region=(10, 8, 500, 59)))
    assert s.pixel_spacing_mm == pytest.approx(0.2) and s.field_of_view[:, -1].any()  # clipped, not refused
    assert any("clipped" in n for n in s.meta["notes"])


def test_read_dicom_names_the_file_for_a_region_outside_the_image(tmp_path):
    with pytest.raises(InputError, match=r"off\.dcm: ultrasound region \(200,200\)-\(300,300\) lies outside"):
        read_dicom(make_dicom(tmp_path / "off.dcm", region=(200, 200, 300, 300)))


def test_etl_refuses_a_non_empty_out_unless_overwrite(tmp_path, capsys):
    src = tmp_path / "src"
    make_dicom(src / "a.dcm")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    with pytest.raises(SystemExit) as e:
        main(["data", "etl", str(src), "--out", str(out), "--no-progress", "--salt", SALT])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]
    main(["data", "etl", str(src), "--out", str(out), "--no-progress", "--salt", SALT, "--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == ["images", "labels.csv", "manifest.csv", "masks"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        run_etl(src, tmp_path / "afile", salt=SALT, progress=False)
    with pytest.raises(InputError, match="contains the source folder"):
        run_etl(src, tmp_path, salt=SALT, progress=False, overwrite=True)
    assert (src / "a.dcm").is_file()


def test_etl_checks_the_output_before_converting(tmp_path, monkeypatch):
    import os

    import pcbm.data.etl as etl

    src = tmp_path / "src"
    make_dicom(src / "a.dcm")
    calls = []
    monkeypatch.setattr(etl, "_read_file", lambda *a: calls.append(a))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile is a file, not a folder"):
        run_etl(src, tmp_path / "afile" / "out", salt=SALT, progress=False)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        if not os.access(tmp_path / "ro", os.W_OK):  # (root may write anywhere)
            with pytest.raises(InputError, match="not writable"):
                run_etl(src, tmp_path / "ro" / "out", salt=SALT, progress=False)
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert not calls


def test_a_failure_midway_leaves_the_old_folder_and_no_debris(tmp_path, monkeypatch):
    import pcbm.data.etl as etl

    src = tmp_path / "src"
    for k in range(3):
        make_dicom(src / f"s{k}.dcm", pixels=us_image(k))
    out = tmp_path / "out"
    first = run_etl(src, out, salt=SALT, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    make_dicom(src / "s3.dcm", pixels=us_image(3))

    def full_disk(rows, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(etl, "_write_manifest", full_disk)
    with pytest.raises(OSError, match="No space"):
        run_etl(src, out, salt=SALT, progress=False, overwrite=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and first.n_images == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no partial folder left
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    monkeypatch.setattr(etl, "_write_manifest", full_disk)
    with pytest.raises(OSError):
        run_etl(src, fresh, salt=SALT, progress=False)
    assert not fresh.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
