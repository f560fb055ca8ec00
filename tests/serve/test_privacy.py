"""DICOM uploads: read in memory (first frame, burned-in text masked, header de-identified, spacing
from the header); nothing of an upload reaches the disk, a log or a response but what is meant to."""

from __future__ import annotations

import builtins
import json
import logging
import os
import re

import pytest
from conftest import AUTH, phantom_png  # noqa: F401 - fixture

pytest.importorskip("pydicom")
from dicom_helpers import PHI, PHI_REGION, PID, make_dicom, phi_frame, text_pixels  # noqa: E402


@pytest.fixture
def phi_dicom(tmp_path) -> bytes:
    return make_dicom(tmp_path / "DOE_JANE" / f"{PID}.dcm", pixels=phi_frame(), region=PHI_REGION, phi=True).read_bytes()


def test_dicom_spacing_from_the_header_and_no_identifier_in_any_answer(client, phi_dicom) -> None:
    files = {"image": (f"DOE_JANE_{PID}.dcm", phi_dicom, "application/dicom")}
    r = client.post("/v1/predict", files=files, headers=AUTH)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["input"]["kind"] == "DICOM" and d["input"]["pixel_spacing_mm"] == pytest.approx(0.2)
    assert "DICOM header" in d["input"]["spacing_source"]
    assert any("burned-in text masked" in n for n in d["input"]["notes"])
    given = client.post("/v1/predict", files=files, data={"pixel_spacing_mm": "0.3"}, headers=AUTH).json()
    assert given["input"]["pixel_spacing_mm"] == 0.3  # the form field wins
    rep = client.post("/v1/report", files=files, headers=AUTH).text
    rep_json = client.post("/v1/report?format=json", files=files, headers=AUTH).text
    iv = client.post("/v1/intervene", files=files, data={"erase": ["kidney"]}, headers=AUTH).text
    window = client.get("/v1/monitor/window", headers=AUTH).text
    rep = re.sub(r"base64,[A-Za-z0-9+/=]+", "", rep)  # embedded PNGs: 'DOE' may occur in base64 by chance
    for text in (r.text, json.dumps(given), rep, rep_json, iv, window):
        for needle in (*PHI, "DOE_JANE", PID, "/proc/self"):
            assert needle not in text, needle


def test_the_frame_read_is_masked(client, phi_dicom) -> None:
    from pcbm.serve.uploads import Form

    up = client.app.state.service.read(Form(image=phi_dicom, image_type="application/dicom"))
    assert up.image.shape == phi_frame().shape and up.image[text_pixels(phi_frame())].max() == 0


def test_nothing_of_an_upload_is_written_or_logged(client, phi_dicom, phantom_png, monkeypatch, caplog) -> None:  # noqa: F811
    written: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *a, **k):
        if any(c in str(mode) for c in "wax+"):
            written.append(str(file))
        return real_open(file, mode, *a, **k)

    def spy_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(str(path))
        return real_os_open(path, flags, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    caplog.set_level(logging.DEBUG)
    for data, ctype in ((phi_dicom, "application/dicom"), (phantom_png, "image/png"),
                        (phi_dicom[:-3000], "application/dicom"), (phantom_png[:300], "image/png")):
        for path in ("/v1/predict", "/v1/report"):
            client.post(path, files={"image": ("DOE_JANE.dcm", data, ctype)}, headers=AUTH)
    assert written and all(os.path.basename(p).startswith("window-") for p in written), written  # concept values only
    for needle in (*PHI, "DOE_JANE", PID):
        assert needle not in caplog.text
