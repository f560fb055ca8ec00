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


def test_a_bug_shows_its_traceback_not_a_user_error(monkeypatch, capsys) -> None:
    """Only InputError and usage errors are one line with exit 2; anything else is a bug in pcbm."""
    import pytest

    import pcbm.concepts
    from pcbm.cli import main

    def broken(*args, **kwargs):
        raise KeyError("internal bookkeeping")  # a KeyError from pcbm's own code is not the user's fault

    monkeypatch.setattr(pcbm.concepts, "list_concepts", broken)
    with pytest.raises(KeyError, match="internal bookkeeping"):
        main(["concepts", "list"])


def test_user_errors_are_one_line_with_exit_2(capsys) -> None:
    import pytest

    from pcbm.cli import main

    for argv in (["concepts", "list", "--plane", "femr"], ["bogus"], ["predict"],
                 ["predict", "default", "x.png", "--pixel-spacing", "abc"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("error:") and len(err.splitlines()) == 1, (argv, err)


def test_evaluation_and_train_config_do_not_import_lightning() -> None:
    code = ("import sys; import pcbm.training.evaluation; from pcbm.training import TrainConfig; "
            "TrainConfig(data=('phantom',), out='x'); print('lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_the_cli_starts_without_torch_and_training_names_are_functions() -> None:
    code = ("import sys, pcbm.cli; print('torch' in sys.modules); import pcbm.training.trainer, pcbm.training.evaluation; "
            "from pcbm.training import train, resume, evaluate; print(all(callable(f) and f.__class__.__name__ == 'function' "
            "for f in (train, resume, evaluate)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
