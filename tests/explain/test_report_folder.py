"""`write_reports`: earlier reports are kept and listed, nothing is replaced without overwrite, a bad
image is reported and the rest goes on, a folder that is not a report folder is left alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pcbm.errors import InputError
from pcbm.explain.build import write_reports
from pcbm.explain.interventions import parse_intervention


def test_index_accumulates_and_nothing_is_replaced(tiny_model, phantom_png, tmp_path) -> None:
    out = tmp_path / "reports"
    first = write_reports(tiny_model, [phantom_png], out, heatmap=None)
    assert [s for s, _ in first.written] == ["phantom_tt"] and not first.failures
    html_before = (out / "phantom_tt.html").read_bytes()
    with pytest.raises(InputError, match=r"phantom_tt\.html.*--overwrite"):
        write_reports(tiny_model, [phantom_png], out, heatmap=None)
    assert (out / "phantom_tt.html").read_bytes() == html_before
    other = tmp_path / "other.png"
    other.write_bytes(phantom_png.read_bytes())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    second = write_reports(tiny_model, [other, broken], out, heatmap=None)
    assert [s for s, _ in second.written] == ["other"]
    assert second.failures and second.failures[0][0] == "broken" and "broken.png" in second.failures[0][1]
    index = json.loads((out / "index.json").read_text())
    assert [e["stem"] for e in index] == ["phantom_tt", "other"]  # the first run's report is still listed
    html = (out / "index.html").read_text()
    assert "phantom_tt.html" in html and "other.html" in html and "broken" not in html
    third = write_reports(tiny_model, [phantom_png], out, heatmap=None, overwrite=True)
    assert [s for s, _ in third.written] == ["phantom_tt"]
    assert len(json.loads((out / "index.json").read_text())) == 2


def test_a_users_folder_is_not_mixed_into(tiny_model, phantom_png, tmp_path) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "NOTES.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a folder of pcbm reports"):
        write_reports(tiny_model, [phantom_png], user, heatmap=None)
    assert sorted(p.name for p in user.iterdir()) == ["NOTES.txt"]
    with pytest.raises(InputError, match="is a file"):
        write_reports(tiny_model, [phantom_png], user / "NOTES.txt", heatmap=None)


def test_array_images_get_numbered_stems(tiny_model, tmp_path) -> None:
    img = (np.random.default_rng(0).random((80, 90)) * 255).astype(np.uint8)
    run = write_reports(tiny_model, [img, img], tmp_path / "r", heatmap=None, formats=("json",))
    assert [s for s, _ in run.written] == ["image_000", "image_001"]


@pytest.mark.parametrize("item", ["hc_mm=inf", "hc_mm=nan", "hc_mm=-260", "csp_visible=nan", "csp_visible=2",
                                  "hc_mm=1e6"])
def test_nonsense_intervention_values_are_refused_before_the_model_loads(item) -> None:
    with pytest.raises(InputError, match=item.split("=")[0]):
        parse_intervention([item], [])


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -0.1, float("inf"), 50.0])
def test_python_api_refuses_nonsense_spacing(tiny_model, bad) -> None:
    from pcbm.models import predict_images

    img = np.zeros((60, 80), np.uint8)
    with pytest.raises(InputError, match="pixel_spacing_mm"):
        predict_images(tiny_model, [img], pixel_spacing_mm=bad)
    with pytest.raises(InputError, match=r"pixel_spacing_mm\[1\]"):
        predict_images(tiny_model, [img, img], pixel_spacing_mm=[0.1, bad])
