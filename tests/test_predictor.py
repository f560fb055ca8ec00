"""One way to open a model (pcbm.predictor): packages on the runtime, runs in torch, the export cache's key."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pcbm.errors import InputError


def test_a_package_opens_on_the_runtime_and_a_run_in_torch(tiny_package) -> None:
    from pcbm.models.stages import TorchStages
    from pcbm.pipeline import Pipeline, Stages
    from pcbm.predictor import as_pipeline, is_runtime, open_predictor, require_concepts
    from pcbm.runtime.engine import OnnxStages

    engine = open_predictor(tiny_package, threads=1)
    assert is_runtime(engine) and as_pipeline(engine) is engine and isinstance(engine.stages, OnnxStages)
    model = open_predictor(tiny_package.parent / "run")
    assert not is_runtime(model) and model.info["run_dir"] == str(tiny_package.parent / "run")
    pipeline = as_pipeline(model)
    assert isinstance(pipeline, Pipeline) and isinstance(pipeline.stages, TorchStages)
    assert isinstance(engine.stages, Stages) and isinstance(pipeline.stages, Stages)  # both meet the protocol
    require_concepts(engine, "x")
    require_concepts(model, "x")
    image = np.random.default_rng(0).integers(0, 255, (90, 120), dtype=np.uint8)
    a, b = engine.predict(image, 0.2), pipeline.predict(image, 0.2)  # the same pipeline, two backends
    assert a.plane == b.plane and np.allclose(list(a.plane_probs.values()), list(b.plane_probs.values()), atol=2e-3)


def test_nothing_at_the_reference_is_one_clear_error(tmp_path) -> None:
    from pcbm.predictor import open_predictor

    with pytest.raises(InputError, match="does not exist"):
        open_predictor(tmp_path / "nowhere")
    with pytest.raises(InputError, match="does not exist"):
        open_predictor(tmp_path / "nowhere", runtime=True)


def test_the_cache_key_follows_the_files_the_export_reads(tiny_package, tmp_path) -> None:
    from pcbm.predictor import run_digest

    run = tmp_path / "run"
    shutil.copytree(tiny_package.parent / "run", run)
    first = run_digest(run)
    assert run_digest(run) == first and len(first) == 64
    (run / "reliability.json").write_text("{}")  # a new calibration: a new package
    second = run_digest(run)
    assert second != first
    (run / "notes.txt").write_text("not read by the export")
    assert run_digest(run) == second


def test_the_cache_lives_where_pcbm_cache_says(monkeypatch, tmp_path) -> None:
    from pcbm.predictor import CACHE_ENV, cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path / "packages"
