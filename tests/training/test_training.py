"""Training: partial labels, losses that skip what a sample lacks, fast_dev_run per mode, refit."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch

from pcbm.concepts import PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.data import Sample, SampleDataset
from pcbm.models import build_model
from pcbm.training import TrainConfig, train
from pcbm.training.data import collate, encode_sample, parse_source, ultrasound_augment
from pcbm.training.datamodule import MixedDataModule
from pcbm.training.losses import plane_loss, property_loss, segmentation_loss
from pcbm.training.module import PCBMTrainingModule
from pcbm.training.trainer import resolve_precision


class ListDataset(SampleDataset):
    name = "list"

    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        return self.samples[i]


def _hc18_like(seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 120, (54, 80), dtype=np.uint8)
    yy, xx = np.mgrid[:54, :80]
    head = ((xx - 40) / 25) ** 2 + ((yy - 27) / 18) ** 2 <= 1
    img[head] = 160
    return Sample(image=img, pixel_spacing_mm=0.3, masks={"head": head}, properties={"hc_mm": 40.0},
                  plane="trans_thalamic", id=f"hc{seed}", source="hc18")


def _phantom_like(seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    masks = {n: np.zeros((64, 64), bool) for n in VISUAL_CONCEPT_NAMES}
    masks["femur"][30:34, 10:50] = True
    props = {n: 0.0 for n in PROPERTY_CONCEPT_NAMES}
    props.update(femur_visible=1.0, femur_ends_visible=1.0, femur_horizontal=1.0, femur_magnified=1.0,
                 gain_adequate=1.0, fl_mm=12.0, hc_mm=None, bpd_mm=None, ofd_mm=None, ac_mm=None)
    return Sample(image=img, pixel_spacing_mm=0.3, masks=masks, properties=props, plane="femur", standard=True,
                  id=f"ph{seed}", source="phantom")


def _unlabelled(seed: int) -> Sample:
    return Sample(image=np.random.default_rng(seed).integers(0, 255, (70, 50), dtype=np.uint8), id=f"u{seed}")


def test_parse_source() -> None:
    assert parse_source("hc18:/x@2") == ("hc18:/x", 2.0)
    assert parse_source("phantom") == ("phantom", 1.0)
    with pytest.raises(ValueError, match="positive"):
        parse_source("hc18:/x@-1")


def test_split_does_not_follow_the_training_seed() -> None:
    # a fine-tune stage with its own --seed must validate on the subjects every stage held out, the
    # ones `SPEC?split=val` evaluates (a split that followed the seed leaked them into training)
    from pcbm.data import open_dataset

    spec = "phantom:n=60,seed=1"
    ref = open_dataset(spec, "val").indices
    dm = MixedDataModule([spec], 64, seed=3)
    dm.setup()
    assert dm.val_sets[0].indices == ref
    assert not set(dm.train_sets[0].indices) & set(ref)
    other = MixedDataModule([spec], 64, seed=3, split_seed=3)
    other.setup()
    assert other.val_sets[0].indices != ref


def test_encode_partial_labels() -> None:
    from pcbm.concepts import implied_concepts

    hc = encode_sample(_hc18_like(0), 64, ultrasound_augment())
    # the head mask, and the structures a trans-thalamic label implies absent (all-black); the inner
    # head structures stay unlabelled
    absent = set(implied_concepts("trans_thalamic").absent)
    assert hc["mask_labelled"].tolist() == [n == "head" or n in absent for n in VISUAL_CONCEPT_NAMES]
    assert not hc["masks"][[VISUAL_CONCEPT_NAMES.index(n) for n in absent]].any()
    # head_visible / head_complete / head_magnified derived from the head mask; csp etc. unlabelled;
    # femur_visible = 0 implied by the plane label
    labelled = {n for n, f in zip(PROPERTY_CONCEPT_NAMES, hc["prop_labelled"], strict=True) if f}
    assert {"head_visible", "head_complete", "head_magnified", "hc_mm", "femur_visible"} <= labelled
    assert "csp_visible" not in labelled and hc["properties"][PROPERTY_CONCEPT_NAMES.index("femur_visible")] == 0
    assert hc["standard"] == -1 and hc["plane"] == 0
    u = encode_sample(_unlabelled(1), 64)
    assert not u["mask_labelled"].any() and not u["prop_labelled"].any() and u["plane"] == -1


def test_losses_skip_missing_labels() -> None:
    batch = collate([encode_sample(s, 64) for s in (_hc18_like(0), _phantom_like(1), _unlabelled(2))])
    module = PCBMTrainingModule(build_model("tiny"), mode="joint")
    terms, _ = module.losses(batch)
    assert all(torch.isfinite(v) for v in terms.values())
    # the unlabelled sample contributes nothing: losses equal those of the two labelled ones
    only = collate([encode_sample(s, 64) for s in (_hc18_like(0), _phantom_like(1))])
    module.eval()
    with torch.no_grad():
        full, _ = module.losses(batch)
        part, _ = module.losses(only)
    for k in full:
        torch.testing.assert_close(full[k], part[k], atol=1e-5, rtol=1e-4)


def test_loss_functions_zero_without_labels() -> None:
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    assert float(segmentation_loss(logits, torch.ones(2, 3, 8, 8), torch.zeros(2, 3, dtype=torch.bool))) == 0.0
    p = torch.randn(2, len(PROPERTY_CONCEPT_NAMES))
    assert float(property_loss(p, torch.zeros_like(p), torch.zeros_like(p, dtype=torch.bool))) == 0.0
    assert float(plane_loss(torch.randn(2, 8), torch.tensor([-1, -1]))) == 0.0


@pytest.mark.parametrize("mode", ["independent", "sequential", "joint"])
def test_fast_dev_run_per_mode(mode: str) -> None:
    ds = ListDataset([_hc18_like(i) if i % 2 else _phantom_like(i) for i in range(8)])
    loader = torch.utils.data.DataLoader([encode_sample(s, 64) for s in ds], batch_size=4, collate_fn=collate)
    module = PCBMTrainingModule(build_model("tiny"), mode=mode)
    before = {k: v.clone() for k, v in module.model.state_dict().items() if v.is_floating_point()}
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, loader, loader)
    _assert_one_step_learnt(trainer, module, before)


def _assert_one_step_learnt(trainer, module, before) -> None:
    """The step ran: a finite training loss was logged, every weight is finite and the segmenter's
    (or the encoder's) and the decision's (or the head's) weights moved."""
    loss = trainer.callback_metrics.get("train/loss")
    assert loss is not None and torch.isfinite(loss), trainer.callback_metrics
    after = module.model.state_dict()
    assert all(torch.isfinite(after[k]).all() for k in before)
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved & {"segmenter", "encoder"} and moved & {"decision", "head"}, moved


def test_fast_dev_run_baseline() -> None:
    loader = torch.utils.data.DataLoader([encode_sample(_phantom_like(i), 64) for i in range(4)], batch_size=2,
                                         collate_fn=collate)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    module = PCBMTrainingModule(build_model("tiny_baseline"))
    before = {k: v.clone() for k, v in module.model.state_dict().items() if v.is_floating_point()}
    trainer.fit(module, loader, loader)
    _assert_one_step_learnt(trainer, module, before)


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="independent"):
        PCBMTrainingModule(build_model("tiny"), mode="together")


@pytest.mark.slow
def test_train_writes_run_dir(tmp_path) -> None:
    cfg = TrainConfig(data=("phantom:n=24,size=64",), model="tiny", max_steps=2, batch_size=4, workers=0,
                      out=str(tmp_path), eval_limit=4, progress=False, refit_decision=8, threads=1)
    run = train(cfg)
    assert (run / "model.pt").is_file() and (run / "logs").is_dir()
    conf = json.loads((run / "config.json").read_text())
    assert conf["model"]["name"] == "tiny" and conf["train"]["mode"] == "sequential"
    assert conf["decision_refit"]["n"] > 0
    assert conf["train"]["precision"] == "auto" and conf["precision"] == resolve_precision("auto")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "plane_macro_f1" in next(iter(metrics.values()))


def test_auto_precision_follows_the_device(monkeypatch) -> None:
    import sys

    train_mod = sys.modules["pcbm.training.trainer"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_mod, "_cpu_has_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16-mixed"
    monkeypatch.setattr(train_mod, "_cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # an explicit choice is kept
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", "gpu") == "32-true"  # a GPU without bf16: full precision, not the CPU probe
    assert resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(train_mod, "_cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"


def test_init_starts_from_a_run(tmp_path) -> None:
    from pcbm.errors import InputError
    from pcbm.models import save_model
    from pcbm.models.io import write_run_config
    from pcbm.training.trainer import build_from_config

    src = build_model("tiny")
    with torch.no_grad():
        src.decision.linear.weight.fill_(0.25)
    save_model(src, tmp_path)
    write_run_config(tmp_path, {"model": src.config.to_dict()})
    model = build_from_config(TrainConfig(init=str(tmp_path), model="tiny"))
    assert model.training
    assert torch.equal(model.decision.linear.weight, src.decision.linear.weight)
    fresh = build_from_config(TrainConfig(model="tiny"))
    assert not torch.equal(fresh.decision.linear.weight, src.decision.linear.weight)
    with pytest.raises(InputError, match="input_size"):
        build_from_config(TrainConfig(init=str(tmp_path), size=128))


def test_lightning_chatter_is_filtered(caplog) -> None:
    import logging
    import sys

    from lightning.pytorch.utilities import rank_zero_info

    quiet = sys.modules["pcbm.training.trainer"].quiet_lightning
    level = logging.getLogger("lightning.pytorch").level
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero_level = rank_zero.level
    rank_zero.setLevel(logging.NOTSET)  # another in-process command (pcbm bench backbones) may have raised it
    try:
        with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
            quiet(True)
            rank_zero_info("Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
            rank_zero_info("GPU available: False")
            assert "GPU available" in caplog.text and "litlogger" not in caplog.text
            caplog.clear()
            quiet(False)
            logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False")
            assert "GPU available" not in caplog.text
    finally:
        logging.getLogger("lightning.pytorch").setLevel(level)
        rank_zero.setLevel(rank_zero_level)
