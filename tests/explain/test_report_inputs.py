"""`pcbm report` / `pcbm predict` given folders and data specs: per-image spacing and recorded HC,
one HC value, and contributions that show what the decision read (issue 15, deliverable 4)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.data.base import DatasetItem
from pcbm.data.io import expand_inputs
from pcbm.errors import InputError

runner = CliRunner()


def _hc18(root: Path, spacings=(0.1, 0.2, 0.3)) -> Path:
    """An HC18-layout folder (images + filled masks + the CSV) with a different spacing per image."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    for i, sp in enumerate(spacings):
        img = np.full((200, 300), 30, np.uint8)
        cv2.ellipse(img, (150, 100), (80, 60), 0, 0, 360, 200, 3)
        cv2.imwrite(str(root / "images" / f"{i:03d}_HC.png"), img)
        m = np.zeros((200, 300), np.uint8)
        cv2.ellipse(m, (150, 100), (80, 60), 0, 0, 360, 255, -1)
        cv2.imwrite(str(root / "masks" / f"{i:03d}_HC_Annotation.png"), m)
        lines.append(f"{i:03d}_HC.png,{sp},{100 + i}.5")
    (root / "pixel_size_and_hc.csv").write_text("\n".join(lines) + "\n")
    return root


def test_expand_inputs_files_folders_and_specs(tmp_path) -> None:
    root = _hc18(tmp_path / "hc")
    items = expand_inputs([f"hc18:{root}"])
    assert [type(x) for x in items] == [DatasetItem] * 3 and [x.name for x in items] == ["000_HC", "001_HC", "002_HC"]
    assert len(expand_inputs([str(root)])) == 3  # a dataset folder is its samples
    plain = tmp_path / "plain"
    plain.mkdir()
    cv2.imwrite(str(plain / "b.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(plain / "a.jpg"), np.zeros((8, 8), np.uint8))
    (plain / "notes.txt").write_text("x")
    assert [p.name for p in expand_inputs([str(plain)])] == ["a.jpg", "b.png"]
    assert expand_inputs([str(tmp_path / "missing.png")]) == [tmp_path / "missing.png"]  # that image's error, later
    (tmp_path / "empty").mkdir()
    assert expand_inputs([str(tmp_path / "empty")]) == [tmp_path / "empty"]  # the reader says it is a folder
    with pytest.raises(InputError, match="unknown dataset kind"):
        expand_inputs(["hc81:/nowhere"])


def test_report_on_a_data_spec_gives_each_image_its_spacing_and_recorded_hc(tiny_run, tmp_path) -> None:
    root = _hc18(tmp_path / "hc")
    out = tmp_path / "reports"
    r = runner.invoke(app, ["report", str(tiny_run), f"hc18:{root}", "--out", str(out), "--heatmap", "none"])
    assert r.exit_code == 0, r.output
    for i, sp in enumerate((0.1, 0.2, 0.3)):
        d = json.loads((out / f"{i:03d}_HC.json").read_text())
        assert d["pixel_spacing_mm"] == pytest.approx(sp) and d["recorded"] == {"hc": 100 + i + 0.5}
        for m in d["measurements"].values():
            if m["name"] in d["recorded"]:
                assert m["recorded"] == d["recorded"][m["name"]]
        for name, m in d["measurements"].items():  # one HC: the property shown is the measurement
            prop = {"hc": "hc_mm", "bpd": "bpd_mm", "ofd": "ofd_mm"}.get(name)
            if prop:
                assert d["properties"][prop] == m["value"]
        assert set(d["decision_inputs"]) == set(d["properties"])
        for c in d["contributions"]["top"]:
            assert c["input"] == d["decision_inputs"][c["concept"]]
    # a second call into the same folder adds to index.html; the first reports are kept
    r = runner.invoke(app, ["report", str(tiny_run), str(root / "images" / "000_HC.png"), "--out", str(tmp_path / "r2"),
                            "--heatmap", "none", "--formats", "json"])
    d = json.loads((tmp_path / "r2" / "000_HC.json").read_text())
    assert d["recorded"] == {"hc": 100.5} and "pixel_size_and_hc.csv" in d["recorded_source"]


def test_predict_on_a_dataset_folder_prints_recorded_beside_measured(tiny_run, tmp_path) -> None:
    root = _hc18(tmp_path / "hc")
    r = runner.invoke(app, ["predict", str(tiny_run), str(root)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["image"] for x in lines] == ["000_HC", "001_HC", "002_HC"]
    assert [x["pixel_spacing_mm"] for x in lines] == pytest.approx([0.1, 0.2, 0.3])
    assert lines[1]["recorded"] == {"hc": 101.5}
