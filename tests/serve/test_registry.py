"""The optional MLflow model registry: register packages as versions, move aliases, serve
``models:/NAME@ALIAS``. Skipped where MLflow is not installed (CI installs 'all', which leaves it out)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from pcbm.cli import main
from pcbm.errors import InputError


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="MLflow is installed")
def test_without_mlflow_the_registry_says_how_to_get_it(package, capsys) -> None:
    assert _run(["models", "list"]) == 2
    assert "pip install 'pcbm[mlflow]'" in capsys.readouterr().err


def test_bad_models_uri() -> None:
    from pcbm.registry import parse_models_uri

    assert parse_models_uri("models:/pcbm/3") == ("pcbm", None, "3")
    with pytest.raises(InputError, match="models:/NAME@ALIAS"):
        parse_models_uri("models:/pcbm@")


def test_register_promote_list_and_serve_a_version(package, tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("mlflow")
    from pcbm.predictor import package_for
    from pcbm.registry import register, versions
    from pcbm.runtime import Engine

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    first = register(package, "pcbm-test", alias="staging")
    assert first["version"] == 1
    assert _run(["models", "register", str(package), "--name", "pcbm-test"]) == 0
    assert "version 2" in capsys.readouterr().out
    assert _run(["models", "promote", "pcbm-test", "1", "--alias", "production"]) == 0
    assert _run(["models", "promote", "pcbm-test", "9"]) == 2
    rows = versions("pcbm-test")
    assert [r["version"] for r in rows] == [2, 1] and set(rows[1]["aliases"]) == {"staging", "production"}
    assert rows[0]["sha256"] == Engine(package).metadata["model"]["weights_sha256"]
    assert _run(["models", "list"]) == 0 and "@production" in capsys.readouterr().out
    pkg, tmp = package_for("models:/pcbm-test@production", lambda m: None)
    try:
        assert Engine(pkg).identity["sha256"] == Engine(package).identity["sha256"]
    finally:
        shutil.rmtree(tmp)
    with pytest.raises(InputError, match="not in the registry"):
        package_for("models:/pcbm-test@nowhere", lambda m: None)
