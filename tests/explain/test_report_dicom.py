"""`pcbm report` / `pcbm predict` on a DICOM: the masked frame, never the raw one, never its path."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("pydicom")
from dicom_helpers import PHI, PHI_REGION, PID, make_dicom, phi_frame, text_pixels  # noqa: E402
from dicom_leaks import scan_outputs, write_phi_dicoms  # noqa: E402

from pcbm.cli import main  # noqa: E402


def test_report_on_dicom_embeds_the_masked_frame_and_no_identifier(tmp_path) -> None:
    from pcbm.explain import explain_image
    from pcbm.models import load_model

    model, info = load_model("default")
    path = make_dicom(tmp_path / "DOE_JANE" / f"{PID}.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True)
    report = explain_image(model, path, info, heatmap=None)
    assert report.image[text_pixels(phi_frame())].max() == 0  # the burned-in text is black
    assert report.source.startswith("dicom_") and "DOE" not in report.source
    assert report.pixel_spacing_mm == pytest.approx(0.2)
    text = json.dumps(report.to_dict()) + report.to_html() + report.to_markdown()
    # embedded images are base64, where a short name like "DOE" turns up by chance: search the text around them
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,…", text)
    for needle in (*PHI, str(path), "DOE_JANE", PID):
        assert needle not in text


def test_report_and_etl_outputs_hold_no_identifier(tmp_path, capsys) -> None:
    src = write_phi_dicoms(tmp_path / "src")
    files = sorted(map(str, src.rglob("*.dcm")))
    for argv in (["report", "default", *files, "--out", str(tmp_path / "rep"), "--formats", "html,json,md,png",
                  "--heatmap", "none"],
                 ["data", "etl", str(src), "--out", str(tmp_path / "etl"), "--salt", "s3cret", "--opaque-ids",
                  "--no-progress"]):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code in (0, None), capsys.readouterr()
    scan = scan_outputs([tmp_path / "rep", tmp_path / "etl"], src)
    assert scan["files"] >= 3 * 4 + 3 and scan["found"] == []


def test_predict_on_dicom_reads_the_header_spacing_and_notes_the_masking(tmp_path, capsys) -> None:
    path = make_dicom(tmp_path / "DOE_JANE" / f"{PID}.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True)
    main(["predict", "default", str(path)])  # returns: exit 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixel_spacing_mm"] == pytest.approx(0.2) and "DICOM header" in out["pixel_spacing_source"]
    assert any("masked" in n for n in out["notes"])
