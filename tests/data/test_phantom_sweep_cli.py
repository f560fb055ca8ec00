"""Phantom sweep mode, the synth / contact-sheet commands and the folder round trip."""

from __future__ import annotations

import importlib.util

import numpy as np
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.concepts import get_plane
from pcbm.data.phantom import sweep
from pcbm.data.phantom.sweep import SWEEP_PLANES

runner = CliRunner()


def test_sweep_is_smooth_and_labelled():
    frames = sweep(56, seed=0, size=96)
    assert len(frames) == 56
    assert [f.meta["frame"] for f in frames] == list(range(56))
    assert {f.meta["target_plane"] for f in frames} == set(SWEEP_PLANES)
    for f in frames:
        assert f.standard == get_plane(f.plane).check(f.properties)[0]
    dwell = [f for f in frames if f.meta["phase"] == "dwell"]
    assert dwell and all(f.standard for f in dwell)
    approach = [f for f in frames if f.meta["phase"] == "approach"]
    assert any(not f.standard for f in approach)
    # consecutive approach frames of one segment move a little, not jump
    for a, b in zip(approach, approach[1:], strict=False):
        if a.meta["segment"] == b.meta["segment"] and a.plane == b.plane and a.plane.startswith("trans"):
            ia, ib = a.masks["head"], b.masks["head"]
            assert (ia & ib).sum() / max((ia | ib).sum(), 1) > 0.5
    assert np.array_equal(sweep(8, seed=1, size=64)[3].image, sweep(8, seed=1, size=64)[3].image)


def test_synth_writes_a_checkable_folder(tmp_path):
    out = tmp_path / "syn"
    r = runner.invoke(app, ["data", "synth", "--out", str(out), "--n", "24", "--seed", "2", "--size", "64",
                            "--style", "portable", "--standard-fraction", "0.5"])
    assert r.exit_code == 0, r.output
    assert "trans_thalamic" in r.output and (out / "labels.csv").exists()
    assert len(list((out / "images").glob("*.png"))) == 24
    if importlib.util.find_spec("pcbm.data.check") is not None:
        from pcbm.data.check import check_dataset

        report = check_dataset(f"folder:{out}", progress=False)
        assert report.ok, [str(p) for p in report.problems]


def test_contact_sheet_command(tmp_path):
    png = tmp_path / "sheet.png"
    r = runner.invoke(app, ["data", "contact-sheet", "--out", str(png), "--size", "48", "--style", "heldout"])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synth_plane_subset_random_scanners_and_a_bad_plane(tmp_path):
    out = tmp_path / "heads"
    r = runner.invoke(app, ["data", "synth", "--out", str(out), "--n", "6", "--size", "64", "--style", "random",
                            "--planes", "head"])
    assert r.exit_code == 0, r.output
    import csv

    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert [r["plane"] for r in rows] == ["trans_thalamic", "trans_ventricular", "trans_cerebellar"] * 2
    assert {r["meta.style"] for r in rows} == {"random"}
    r = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "bad"), "--n", "2", "--planes", "head+brain"])
    from pcbm.errors import InputError  # `pcbm` (cli.main) prints it as one line and exits 2

    assert r.exit_code != 0 and isinstance(r.exception, InputError) and "unknown plane 'brain'" in str(r.exception)
