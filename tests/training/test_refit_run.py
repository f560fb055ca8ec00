"""pcbm refit: checked weights, a new folder built aside (never mixed into a user's), the run's files kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcbm.errors import InputError
from pcbm.models import build_model, load_model, save_model
from pcbm.models.io import write_run_config
from pcbm.training.refit import refit_run

DATA = "phantom:n=16,size=64"


def _run(path: Path) -> Path:
    model = build_model("tiny")
    save_model(model, path)
    write_run_config(path, {"model": model.config.to_dict(), "note": "source"})
    (path / "MODEL_CARD.md").write_text("card\n")
    return path


@pytest.mark.parametrize(("weights", "message"), [
    ((float("nan"),), "--weights must be a finite number"),
    ((-1.0,), "--weights must not be negative"),
    ((1.0, 0.1), "--weights has 2 weights for 1 data sources"),
    ((0.0,), "all 0"),
])
def test_bad_weights_refused_before_work(tmp_path, weights, message) -> None:
    src = _run(tmp_path / "src")
    with pytest.raises(InputError, match=message):
        refit_run(src, [DATA], tmp_path / "out", per_source=8, steps=2, weights=weights)
    assert not (tmp_path / "out").exists()


def test_refit_writes_a_whole_new_run_and_never_mixes(tmp_path, capsys) -> None:
    from pcbm.cli import main

    src = _run(tmp_path / "src")
    out = tmp_path / "out"
    result = refit_run(src, [DATA], out, per_source=8, steps=3, weights=[1.0])
    assert result["n"] > 0 and result["refitted_from"] == str(src)
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "decision_refit.json", "model.pt"]
    assert json.loads((out / "config.json").read_text())["note"] == "source"
    load_model(out)
    # a user's folder is neither replaced nor mixed
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(["refit", str(src), "--data", DATA, "--out", str(user), "--per-source", "8", "--steps", "2"])
    assert e.value.code == 2 and "not empty" in capsys.readouterr().err
    assert [p.name for p in user.iterdir()] == ["mine.txt"]
    with pytest.raises(SystemExit) as e:
        main(["refit", str(src), "--data", DATA, "--out", str(tmp_path / "new"), "--weights", "nan"])
    assert e.value.code == 2 and "--weights must be a finite number" in capsys.readouterr().err
    # in place, with --overwrite: the source is read first, then replaced whole
    refit_run(src, [DATA], src, per_source=8, steps=2, overwrite=True)
    assert (src / "decision_refit.json").is_file() and (src / "MODEL_CARD.md").read_text() == "card\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_a_model_without_concepts_is_refused_before_work(tmp_path) -> None:
    from dataclasses import replace

    from pcbm.models import get_model_config

    model = build_model(replace(get_model_config("tiny"), family="concept_free"))
    save_model(model, tmp_path / "src")
    write_run_config(tmp_path / "src", {"model": model.config.to_dict()})
    with pytest.raises(InputError, match="refitting the decision on concepts needs a model with concepts"):
        refit_run(tmp_path / "src", [DATA], tmp_path / "out", per_source=8, steps=2)
    assert not (tmp_path / "out").exists()
