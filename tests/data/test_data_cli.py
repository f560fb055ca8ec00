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
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "hed").mkdir(parents=True)
    for args, needle in [
        (["data", "check", f"hc18:{tmp_path / 'missing'}"], "not found"),
        (["data", "check", f"folder:{tmp_path}"], "did you mean 'head'"),
        (["data", "summary", "nosuchkind:x"], "unknown dataset kind"),
    ]:
        r = _pcbm(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
    (folder_ds / "images" / "im0.png").write_bytes(b"garbage")
    r = _pcbm("data", "check", f"folder:{folder_ds}", "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
