"""`pcbm data check` / `pcbm data summary` through typer's CliRunner and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.data import Sample
from pcbm.data.folder import write_folder

runner = CliRunner()


@pytest.fixture
def folder_ds(tmp_path):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        head = np.zeros((40, 50), bool)
        head[10:30, 10:40] = True
        samples.append(Sample(image=rng.integers(0, 255, (40, 50), dtype=np.uint8), masks={"head": head},
                              properties={"head_visible": 1.0}, plane="trans_thalamic", id=f"im{i}"))
    return write_folder(samples, tmp_path / "ds", progress=False)


def test_check_ok_writes_json(folder_ds, tmp_path) -> None:
    out = tmp_path / "r" / "check.json"
    res = runner.invoke(app, ["data", "check", f"folder:{folder_ds}", "--json", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "check OK" in res.output
    d = json.loads(out.read_text())
    assert d["ok"] and d["n_samples"] == 3 and d["agreement"]["head_visible"]["accuracy"] == 1.0
    assert [p.name for p in out.parent.iterdir()] == ["check.json"]  # no temporary left behind


def test_check_fails_with_errors(folder_ds) -> None:
    (folder_ds / "images" / "im1.png").write_bytes(b"garbage")
    res = runner.invoke(app, ["data", "check", f"folder:{folder_ds}", "--no-progress"])
    assert res.exit_code == 1 and "FAILED" in res.output and "im1.png" in res.output


def test_summary_writes_picture(folder_ds, tmp_path) -> None:
    out = tmp_path / "samples.png"
    res = runner.invoke(app, ["data", "summary", f"folder:{folder_ds}", f"folder:{folder_ds}", "--out", str(out),
                              "--per-dataset", "2"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000 and "trans_thalamic" in res.output


def _pcbm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "pcbm", *args], capture_output=True, text=True, env=env, timeout=120)


def test_user_errors_exit_nonzero_without_traceback(tmp_path, folder_ds) -> None:
    for args, needle in [
        (["data", "check", f"hc18:{tmp_path / 'missing'}"], "not found"),
        (["data", "summary", "nosuchkind:x"], "unknown dataset kind"),
    ]:
        r = _pcbm(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
    (folder_ds / "images" / "im0.png").write_bytes(b"garbage")
    (folder_ds / "masks" / "hed").mkdir()
    r = _pcbm("data", "check", f"folder:{folder_ds}", "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    flat = " ".join(r.stdout.split())
    assert "did you mean 'head'" in flat and "im0.png" in flat, r.stdout  # both reported, not the first


def _main(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in-process: (exit code, stdout + stderr)."""
    from pcbm.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out + out.err


@pytest.mark.parametrize("spec,needle", [
    ("phantom:n=abc", r"option n in data spec 'phantom:n=abc' must be an integer, got 'abc'"),
    ("phantom:n=-1", r"n >= 1.*n=-1"),
    ("phantom:n=2.5", r"must be an integer, got 2.5"),
    ("phantom:style=nope", r"unknown phantom style 'nope'; choose one of default"),
    ("phantom:sise=64", r"unknown option 'sise'.*did you mean 'size'.*known: n, seed"),
    ("phantom:n=2?split=bogus", r"unknown split 'bogus' in data spec .*; choose train, val, all"),
    ("phantom?split=bogus", r"unknown split 'bogus'"),
    ("hc18:/nonexistent/hc18", r"hc18 folder not found: /nonexistent/hc18"),
    ("fetal_planes_db:/nonexistent", r"not found: /nonexistent"),
    ("unknown:x", r"unknown dataset kind 'unknown' in data spec 'unknown:x'; known: .*folder, hc18"),
    ("folder:", r"data spec 'folder:' needs a path"),
    ("folder:x?colour=red", r"unknown option 'colour' in data spec"),
    ("", r"empty data spec"),
    ("phantom:n", r"bad option 'n'.*key=value"),
])
def test_bad_specs_one_line_exit_2(capsys, spec, needle) -> None:
    import re

    rc, out = _main(capsys, "data", "summary", spec)
    assert rc == 2 and "Traceback" not in out, out
    assert re.search(needle, out), out
    assert len(out.strip().splitlines()) == 1, out


def test_synth_never_deletes_or_mixes_a_users_folder(capsys, tmp_path) -> None:
    out = tmp_path / "d"
    args = ["data", "synth", "--out", str(out), "--n", "2", "--size", "32"]
    assert _main(capsys, *args)[0] == 0
    (out / "NOTES.txt").write_text("mine")
    rc, text = _main(capsys, *args)
    assert rc == 2 and "not empty" in text and "--overwrite" in text
    assert (out / "NOTES.txt").read_text() == "mine"
    rc, _ = _main(capsys, *args, "--overwrite", "--n", "3")
    assert rc == 0 and not (out / "NOTES.txt").exists() and len(list((out / "images").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary left behind
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("x")
    rc, text = _main(capsys, "data", "synth", "--out", str(user), "--n", "2", "--size", "32", "--overwrite")
    assert rc == 2 and "not a folder dataset" in text and (user / "thesis.tex").exists()


def test_outputs_checked_before_the_work(capsys, tmp_path, folder_ds) -> None:
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"my picture")
    rc, text = _main(capsys, "data", "synth", "--out", str(tmp_path / "new"), "--n", "2", "--size", "32",
                     "--contact-sheet", str(sheet))
    assert rc == 2 and "--contact-sheet" in text and "already exists" in text
    assert not (tmp_path / "new").exists() and sheet.read_bytes() == b"my picture"  # nothing rendered
    (tmp_path / "afile").write_text("x")
    rc, text = _main(capsys, "data", "synth", "--out", str(tmp_path / "afile" / "set"), "--n", "2")
    assert rc == 2 and "is a file, not a folder" in text
    rc, text = _main(capsys, "data", "contact-sheet", "--out", str(sheet))
    assert rc == 2 and "already exists" in text and sheet.read_bytes() == b"my picture"
    report = tmp_path / "check.json"
    report.write_text("{}")
    rc, text = _main(capsys, "data", "check", f"folder:{folder_ds}", "--json", str(report), "--no-progress")
    assert rc == 2 and "--json" in text and report.read_text() == "{}"
    assert _main(capsys, "data", "check", f"folder:{folder_ds}", "--json", str(report), "--no-progress",
                 "--overwrite")[0] == 0
    assert json.loads(report.read_text())["ok"]
    rc, text = _main(capsys, "data", "summary", f"folder:{folder_ds}", "--out", str(sheet))
    assert rc == 2 and "--out" in text and sheet.read_bytes() == b"my picture"
    rc, text = _main(capsys, "data", "summary", f"folder:{folder_ds}", "--out", str(tmp_path))
    assert rc == 2 and "is a folder" in text
    rc, text = _main(capsys, "data", "synth", "--out", str(tmp_path / "new"), "--n", "0")
    assert rc == 2 and "--n" in text and not (tmp_path / "new").exists()


def test_summary_goes_on_past_an_unreadable_sample(folder_ds, tmp_path) -> None:
    (folder_ds / "images" / "im1.png").write_bytes(b"garbage")
    out = tmp_path / "s.png"
    res = runner.invoke(app, ["data", "summary", f"folder:{folder_ds}", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 unreadable" in " ".join(res.output.split()) and out.stat().st_size > 1000
