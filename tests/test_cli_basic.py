import subprocess
import sys

from typer.testing import CliRunner

from pcbm import __version__
from pcbm.cli import app

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_concepts_list_plane():
    r = runner.invoke(app, ["concepts", "list", "--plane", "femur"])
    assert r.exit_code == 0, r.output
    assert "femur_horizontal" in r.output and "csp_visible" not in r.output


def test_unknown_plane_is_a_clean_error():
    r = subprocess.run([sys.executable, "-m", "pcbm", "concepts", "list", "--plane", "femr"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "did you mean 'femur'" in r.stderr and "Traceback" not in r.stderr


def test_import_is_light():
    code = "import sys, pcbm, pcbm.concepts, pcbm.data; bad = [m for m in ('torch', 'captum', 'fastapi', 'onnx') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
