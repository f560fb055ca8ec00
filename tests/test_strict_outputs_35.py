"""Issue 35: NaN never reaches JSON, and --opaque-ids hides file names on the console too."""

from __future__ import annotations

import math
import warnings

import pytest
from bad_input_corpus_35 import SECRET_NAME, strict_json, write_dicom
from typer.testing import CliRunner

from pcbm.cli import app


def _nan_result():
    from pcbm.explain.interventions import DecisionSummary, InterventionResult

    probs = {"femur": math.nan, "other": math.inf}
    before = DecisionSummary("femur", "standard", math.nan, [], probs, {"fl_mm": math.nan, "femur_visible": math.inf})
    after = DecisionSummary("other", "not_a_known_plane", 0.5, [], probs, {"fl_mm": 3.0, "femur_visible": 0.1})
    return InterventionResult(before, after, ["fl_mm = 3"])


def test_intervention_to_dict_is_strict_json() -> None:
    import json

    d = strict_json(json.dumps(_nan_result().to_dict(), allow_nan=False))
    assert d["before"]["confidence"] is None and d["before"]["plane_probs"]["femur"] is None


def test_intervene_json_output_is_strict_json(tmp_path, monkeypatch, tiny_package) -> None:
    import cv2
    import numpy as np

    import pcbm.explain.interventions as iv

    monkeypatch.setattr(iv, "intervene", lambda *a, **k: _nan_result())
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64), 90, np.uint8))
    r = CliRunner().invoke(app, ["intervene", str(tiny_package), str(tmp_path / "a.png"), "--set", "fl_mm=3",
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert strict_json(r.stdout)["before"]["properties"]["fl_mm"] is None


def test_write_json_writes_nan_as_null(tmp_path) -> None:
    from pcbm._io import write_json

    write_json(tmp_path / "m.json", {"a": math.nan, "b": [math.inf, 1.0]})
    assert strict_json((tmp_path / "m.json").read_text()) == {"a": None, "b": [None, 1.0]}


def test_opaque_ids_hide_the_file_name_in_console_warnings(tmp_path, monkeypatch) -> None:
    import pcbm.data.deid as deid_mod

    write_dicom(tmp_path / "src" / f"{SECRET_NAME}.dcm", "0.2\\0.2")
    real = deid_mod.deidentify

    def chatty(ds, **kw):
        warnings.warn("Invalid value for VR DA: 'x'", UserWarning, stacklevel=1)
        return real(ds, **kw)

    monkeypatch.setattr(deid_mod, "deidentify", chatty)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        r = CliRunner().invoke(app, ["data", "etl", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                                     "--salt", "s", "--no-progress", "--opaque-ids"])
    assert r.exit_code == 0, r.output
    text = r.output + " ".join(str(w.message) for w in shown)
    assert "header value(s) do not follow" in text and SECRET_NAME not in text


@pytest.mark.parametrize("spacing", [1e-300, 0.009, 10.5, -1.0, math.nan])
def test_one_spacing_range(spacing) -> None:
    from pcbm.errors import InputError
    from pcbm.validate import MAX_PIXEL_SPACING_MM, MIN_PIXEL_SPACING_MM, is_pixel_spacing, pixel_spacing

    assert (MIN_PIXEL_SPACING_MM, MAX_PIXEL_SPACING_MM) == (0.01, 10.0)
    assert not is_pixel_spacing(spacing)
    with pytest.raises(InputError, match=r"\[0\.01, 10\]"):
        pixel_spacing(spacing)
