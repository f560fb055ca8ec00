"""The study end to end on a tiny phantom: fold files, resume, the report, the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from pcbm.benchmark.config import BenchConfig
from pcbm.benchmark.protocols.common import Scale
from pcbm.benchmark.runner import fold_path, run
from pcbm.errors import InputError

DATA = "phantom:n=24,seed=1,style=default,size=64"
OOD = "phantom:n=8,seed=2,style=heldout,size=64"


def _cfg(out, **kw) -> BenchConfig:  # noqa: ANN001
    base = dict(data=DATA, ood=(OOD,), backbones=("vit_tiny",), protocols=("linear", "finetune"), folds=2, max_steps=2,
                image_size=32, batch_size=8, n_boot=20, out=str(out), scale=Scale(accelerator="cpu", devices="1"))
    return BenchConfig(**{**base, **kw})


def test_a_resumed_run_skips_finished_folds_and_refuses_other_settings(tmp_path) -> None:
    out = tmp_path / "study"
    lines: list[str] = []
    run(_cfg(out), say=lines.append)
    files = {m: [fold_path(out, "vit_tiny", m, k) for k in range(2)] for m in ("linear", "finetune")}
    assert all(p.is_file() for ps in files.values() for p in ps)
    doc = json.loads(files["linear"][0].read_text())
    assert set(doc["ood"]) == {"phantom-n=8-seed=2-style=heldout-size=64"} and len(doc["pred"]) == len(doc["test_idx"])
    stamps = {p: p.stat().st_mtime_ns for ps in files.values() for p in ps}
    files["finetune"][1].unlink()
    again: list[str] = []
    run(_cfg(out), say=again.append)
    assert any("vit_tiny/finetune: 1 finished fold(s) kept" in m for m in again)
    assert not any("finetune fold 0" in m for m in again) and any("finetune fold 1" in m for m in again)
    for p, t in stamps.items():
        if p != files["finetune"][1]:
            assert p.stat().st_mtime_ns == t  # untouched
    with pytest.raises(InputError, match="holds a fold of other settings"):
        run(_cfg(out, max_steps=3), say=lambda m: None)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["method"] for r in rows} == {"linear", "finetune"}
    r = rows[0]
    assert float(r["macro_f1_ci_lo"]) <= float(r["macro_f1_pooled"]) <= float(r["macro_f1_ci_hi"])
    assert float(r["params_m"]) > 0 and float(r["gflops"]) > 0
    md = (out / "results.md").read_text()
    assert "Exact McNemar" in md and "Out of domain" in md and "**estimate**" in md
    assert (out / "bars_macro_f1.png").stat().st_size > 1000 and (out / "id_vs_ood.png").is_file()
    splits = json.loads((out / "splits.json").read_text())
    subjects = splits["subjects"]
    a, b = (set(subjects[i] for i in f) for f in splits["folds"])
    assert not a & b


def test_pcbm_rows_say_a_vit_is_not_supported(tmp_path) -> None:
    out = tmp_path / "s"
    run(_cfg(out, protocols=("pcbm",)), say=lambda m: None)
    doc = json.loads(fold_path(out, "vit_tiny", "pcbm", 0).read_text())
    assert "needs smp DPT" in doc["unsupported"]
    assert "not run" in (out / "results.md").read_text()


@pytest.mark.slow
def test_pcbm_and_concept_free_train_on_a_cnn_encoder(tmp_path) -> None:
    out = tmp_path / "s"
    run(_cfg(out, backbones=("resnet18",), protocols=("pcbm",), ood=()), say=lambda m: None)
    for m in ("pcbm", "pcbm_free"):
        doc = json.loads(fold_path(out, "resnet18", m, 1).read_text())
        assert doc["info"]["family"] == ("pcbm" if m == "pcbm" else "concept_free") and doc["pred"]


def test_cli_lists_and_refuses_bad_input(tmp_path) -> None:
    from typer.testing import CliRunner

    from pcbm.cli import app

    r = CliRunner().invoke(app, ["bench", "backbones", "--list"])
    assert r.exit_code == 0 and "usfm" in r.output and "beit_base_patch16_224" in r.output
    r = CliRunner().invoke(app, ["bench", "backbones", "--data", DATA, "--out", str(tmp_path / "o"),
                                 "--backbones", "resnet19"])
    assert isinstance(r.exception, InputError) and "did you mean 'resnet18'" in str(r.exception)
    r = CliRunner().invoke(app, ["bench", "backbones", "--data", DATA, "--out", str(tmp_path / "o"),
                                 "--weights", "usfm"])
    assert isinstance(r.exception, InputError) and "BACKBONE=PATH" in str(r.exception)


def test_bench_import_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, pcbm.benchmark, pcbm.data.african; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_external_set_with_only_plane_groups_is_scored_on_its_groups(tmp_path) -> None:
    import cv2
    import numpy as np

    root = tmp_path / "afr"
    rows = ["Patient_num,Plane,Train,Center,Image_name"]
    rng = np.random.default_rng(0)
    for i, (plane, centre) in enumerate([("Fetal brain", "Malawi"), ("Fetal femur", "Malawi"),
                                         ("Fetal abdomen", "Egypt"), ("Fetal thorax", "Egypt")] * 2):
        (root / centre).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / centre / f"f{i}.png"), rng.integers(0, 255, (40, 48), dtype=np.uint8))
        rows.append(f"{i % 3},{plane},1,{centre},f{i}")
    (root / "African_planes_database.csv").write_text("\n".join(rows) + "\n")
    lines: list[str] = []
    out = tmp_path / "s"
    run(_cfg(out, ood=(f"african:{root}",), protocols=("linear",)), say=lines.append)
    assert any("scored at group level on its 4 class(es) head, femur, abdomen, thorax" in m for m in lines)
    assert any("trans_thalamic->head" in m and "cervix, other" in m for m in lines)
    doc = json.loads(fold_path(out, "vit_tiny", "linear", 0).read_text())
    assert len(doc["ood"]["african-afr"]) == 8
    md = (out / "results.md").read_text()
    assert "Scored at group level" in md and "trans_cerebellar→head" in md
