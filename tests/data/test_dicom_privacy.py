"""Nothing leaks: DICOMs full of patient data (tags, private tags, sequences, overlays, burned into
the pixels, file and folder names) through the ETL and read_dicom_frame; every output searched."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pydicom = pytest.importorskip("pydicom")
from dicom_helpers import (  # noqa: E402
    FH,
    FW,
    NAME,
    PHI,
    PHI_REGION,
    PID,
    WHOLE_FRAME,
    fan_mask,
    make_dicom,
    phi_frame,
    text_pixels,
)

from pcbm.cli import app, main  # noqa: E402
from pcbm.data.deid import deidentify  # noqa: E402
from pcbm.data.dicom import read_dicom, read_dicom_frame  # noqa: E402
from pcbm.data.etl import read_manifest, run_etl  # noqa: E402
from pcbm.data.harmonise import harmonise  # noqa: E402
from pcbm.data.io import read_image  # noqa: E402
from pcbm.errors import InputError  # noqa: E402

SALT = "test-salt-3f9a"


def _phi_source(root: Path) -> Path:
    """A source folder whose folder and file names, tags and pixels all carry patient data."""
    frame = phi_frame()
    make_dicom(root / "DOE_JANE" / f"{PID}_region.dcm", pixels=frame, region=PHI_REGION, phi=True)
    make_dicom(root / "DOE_JANE" / "whole_frame.dcm", pixels=phi_frame(1), region=WHOLE_FRAME, phi=True)
    make_dicom(root / "DOE_JANE" / "no_region.dcm", pixels=phi_frame(2), region_cm=None, phi=True,
               pixel_spacing=[0.3, 0.3])
    make_dicom(root / "DOE_JANE" / "cine.dcm", pixels=np.stack([phi_frame(3), phi_frame(4)]), frames=2,
               region=PHI_REGION, phi=True)
    (root / "DOE_JANE" / "broken_DOE.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    return root


def _assert_no_phi(out: Path, also: tuple[str, ...] = ()) -> None:
    """No PHI string in any file or folder name nor in any file's bytes (CSV, JSON, PNG, …)."""
    needles = [*PHI, *also]
    files = [p for p in out.rglob("*")]
    assert files
    for p in files:
        rel = p.relative_to(out).as_posix()
        for n in needles:
            assert n.lower() not in rel.lower(), f"{n!r} in the name {rel}"
        if p.is_file():
            data = p.read_bytes()
            for n in needles:
                assert n.encode() not in data, f"{n!r} in {rel}"


def _assert_text_blank(image: np.ndarray, source: np.ndarray, crop: str) -> None:
    """The burned-in text of ``source`` (the raw frame) is black in ``image`` (cropped at ``crop``)."""
    x0, y0, x1, y1 = (int(v) for v in crop.split(","))
    text = text_pixels(source)[y0:y1, x0:x1]
    assert image.shape == text.shape
    assert image[text].max(initial=0) == 0, f"{int((image[text] > 0).sum())} burned-in text pixels survive"
    fan = fan_mask()[y0:y1, x0:x1]
    assert (image[fan] > 0).mean() > 0.97  # the scan itself is kept


def test_etl_leaks_no_patient_data_with_opaque_ids(tmp_path):
    src = _phi_source(tmp_path / "src")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["data", "etl", str(src), "--out", str(out), "--no-progress", "--opaque-ids",
                                 "--salt", SALT])
    assert r.exit_code == 1, r.output  # broken_DOE.dcm failed, the others went on
    assert "wrote 5 images" in r.output and "1 file(s) not converted" in r.output
    for n in (*PHI, "broken", "whole_frame", "no_region", "cine", str(src)):
        assert n not in r.output, f"{n!r} printed"
    _assert_no_phi(out, also=("broken", "whole_frame", "no_region", "cine", "region.dcm", str(src)))
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 5 and all(row["source"] == "" and row["image"].startswith("us_") for row in rows)
    masked = sorted(row["burned_in_masked"] for row in rows)
    assert masked == ["region+sector"] * 3 + ["sector"] * 2  # region ∩ sector, the whole-frame region, no region
    labels = (out / "labels.csv").read_text(encoding="utf-8")
    assert "meta.burned_in_masked" in labels and "anon-" in labels


def test_etl_masks_text_in_the_band_the_corners_and_a_whole_frame_region(tmp_path):
    src = _phi_source(tmp_path / "src")
    result = run_etl(src, tmp_path / "out", salt=SALT, progress=False)
    by_source = {row["source"]: row for row in result.rows}
    frames = {"DOE_JANE/PID12345_region.dcm": phi_frame(), "DOE_JANE/whole_frame.dcm": phi_frame(1),
              "DOE_JANE/no_region.dcm": phi_frame(2)}
    for rel, frame in frames.items():
        assert (frame[text_pixels(frame)] > 128).sum() > 500  # there is text to find
        row = by_source[rel]
        image, _ = read_image(tmp_path / "out" / "images" / row["image"])
        _assert_text_blank(image, frame, row["crop"])
    assert by_source["DOE_JANE/PID12345_region.dcm"]["burned_in_masked"] == "region+sector"
    assert by_source["DOE_JANE/whole_frame.dcm"]["burned_in_masked"] == "sector"
    assert by_source["DOE_JANE/no_region.dcm"]["burned_in_masked"] == "sector"
    assert by_source["DOE_JANE/PID12345_region.dcm"]["pixel_spacing_mm"] == "0.2"
    cine = [row for row in result.rows if row["source"] == "DOE_JANE/cine.dcm"]
    assert len(cine) == 2 and len({row["crop"] for row in cine}) == 1
    for row, seed in zip(sorted(cine, key=lambda r: r["frame"]), (3, 4), strict=True):
        _assert_text_blank(read_image(tmp_path / "out" / "images" / row["image"])[0], phi_frame(seed), row["crop"])
    assert [f[0] for f in result.failures] == ["DOE_JANE/broken_DOE.dcm"]


def test_region_alone_would_leave_the_corner_text():
    """The header's region rectangle is not enough: its corners hold text outside the fan."""
    from pcbm.data.sample import Sample

    frame = phi_frame()
    region = np.zeros((FH, FW), bool)
    x0, y0, x1, y1 = PHI_REGION
    region[y0:y1 + 1, x0:x1 + 1] = True
    assert (frame[region & text_pixels(frame)] > 128).sum() > 100
    s = harmonise(Sample(image=frame, id="x", field_of_view=region, meta={"fov_source": "dicom:r"}), crop=False)
    assert s.image[text_pixels(frame)].max() == 0 and s.meta["burned_in_masked"] == "region+sector"
    assert s.meta["fov_source"] == "dicom:r+estimated"


def test_read_dicom_frame_is_masked_like_the_etl_and_says_nothing_else(tmp_path):
    path = make_dicom(tmp_path / "DOE_JANE" / f"{PID}.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True)
    image, notes, spacing, source = read_dicom_frame(path)
    assert image.shape == (FH, FW) and image.dtype == np.uint8  # not cropped
    assert image[text_pixels(phi_frame())].max() == 0
    assert spacing == pytest.approx(0.2) and source == "dicom:SequenceOfUltrasoundRegions"
    text = repr(notes)
    for n in (*PHI, str(path), path.name, "DOE_JANE", str(tmp_path)):
        assert n not in text
    assert any("region+sector" in n for n in notes)
    out = run_etl(path.parent, tmp_path / "out", salt=SALT, progress=False)
    (row,) = out.rows
    x0, y0, x1, y1 = (int(v) for v in row["crop"].split(","))
    etl_image, _ = read_image(tmp_path / "out" / "images" / row["image"])
    np.testing.assert_array_equal(etl_image, image[y0:y1, x0:x1])  # exactly the ETL's masking

    whole = make_dicom(tmp_path / "whole.dcm", pixels=phi_frame(1), region=WHOLE_FRAME, phi=True)
    image, notes, _, _ = read_dicom_frame(whole)
    assert image[text_pixels(phi_frame(1))].max() == 0 and any("(sector)" in n for n in notes)
    plain = make_dicom(tmp_path / "plain.dcm", pixels=phi_frame(2), region_cm=None, pixel_spacing=[0.25, 0.25])
    image, _, spacing, source = read_dicom_frame(plain)
    assert image[text_pixels(phi_frame(2))].max() == 0 and spacing == 0.25 and source == "dicom:PixelSpacing"


def test_read_dicom_frame_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 200)
    with pytest.raises(InputError, match="broken.dcm"):
        read_dicom_frame(bad)
    dark = make_dicom(tmp_path / "dark.dcm", pixels=np.zeros((FH, FW), np.uint8), region_cm=None)
    with pytest.raises(InputError, match=r"dark\.dcm: no scan sector found"):
        read_dicom_frame(dark)
    off = make_dicom(tmp_path / "off.dcm", region=(500, 500, 600, 600))
    with pytest.raises(InputError, match=r"off\.dcm: ultrasound region .* outside"):
        read_dicom_frame(off)


def test_deidentify_finds_identifiers_in_private_tags_sequences_and_overlays(tmp_path):
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm", phi=True))
    assert any(e.tag.is_private for e in ds) and "ProcedureCodeSequence" in ds
    deidentify(ds, salt=SALT)
    del ds.PixelData  # (random pixels might spell a name by chance)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    for n in PHI:
        assert n.encode() not in data, n
    assert not any(e.tag.is_private for e in ds) and not any(e.tag.group in (0x5000, 0x6000) for e in ds)
    step = ds.ProcedureCodeSequence[0]
    assert str(step.PerformingPhysicianName) == "" and "InstitutionName" not in step and step.PatientBirthDate == ""


def test_etl_refuses_to_run_without_a_salt(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PCBM_DEID_SALT", raising=False)
    src = tmp_path / "src"
    make_dicom(src / "a.dcm")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["data", "etl", str(src), "--out", str(out), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--salt" in err and "--insecure-no-salt" in err
    assert not out.exists()
    with pytest.raises(InputError, match="salt"):
        run_etl(src, out, salt="   ", progress=False)
    monkeypatch.setenv("PCBM_DEID_SALT", SALT)
    main(["data", "etl", str(src), "--out", str(out), "--no-progress"])  # returns: exit 0
    assert (out / "manifest.csv").is_file()
    monkeypatch.delenv("PCBM_DEID_SALT")
    insecure = run_etl(src, tmp_path / "out2", progress=False, insecure_no_salt=True)
    assert insecure.ok


def test_raw_read_keeps_no_file_name_in_notes_with_an_opaque_id(tmp_path):
    path = make_dicom(tmp_path / "DOE_JANE.dcm", region=(10, 8, 500, 59))  # clipped: a note
    (s,) = read_dicom(path, salt=SALT, sample_id="us_0123")
    assert s.meta["notes"] and all(n.startswith("us_0123: ") and "DOE" not in n for n in s.meta["notes"])
    assert NAME not in repr(s.meta) and "DOE" not in s.subject


def test_header_value_warnings_are_counted_never_quoted(tmp_path, monkeypatch):
    """A library warning raised while the header is read or de-identified can quote a value (a
    name in a date field): it is held back and reported as a count, without the value."""
    import warnings

    import pcbm.data.deid as deid_mod

    path = make_dicom(tmp_path / "scan.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True)
    real = deid_mod.deidentify

    def chatty(ds, **kw):
        warnings.warn(f"Invalid value for VR DA: '{NAME}'", UserWarning, stacklevel=1)
        return real(ds, **kw)

    monkeypatch.setattr(deid_mod, "deidentify", chatty)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        read_dicom_frame(path)
    text = " ".join(str(w.message) for w in shown)
    assert NAME not in text
    assert "1 header value(s) do not follow their DICOM value rules" in text

    def broken(ds, **kw):
        raise ValueError(f"cannot parse {NAME}")

    monkeypatch.setattr(deid_mod, "deidentify", broken)
    with pytest.raises(InputError, match="cannot de-identify the header") as e:
        read_dicom_frame(path)
    assert NAME not in str(e.value)
