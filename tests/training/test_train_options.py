"""Training options: every bad value is one line before any work; a seed repeats a run, augmentation
included; --init fine-tunes at a fine-tuning rate and --freeze-encoder keeps the encoder as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pcbm.errors import InputError
from pcbm.models import build_model, load_model, save_model
from pcbm.models.io import write_run_config
from pcbm.training import TrainConfig, train
from pcbm.training.config import DEFAULT_LR, FINETUNE_LR

DATA = "phantom:n=16,size=64"


def _cfg(out: Path, **kw) -> TrainConfig:
    base = {"data": (DATA,), "model": "tiny", "size": 64, "max_steps": 3, "batch_size": 4, "workers": 0,
            "out": str(out), "eval_limit": 2, "progress": False, "threads": 1, "val_batches": 1}
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lr", float("nan"), "lr must be a finite number"),
    ("lr", -1.0, "lr must be a positive number"),
    ("lr", 0.0, "lr must be a positive number"),
    ("max_time_min", float("nan"), "max_time_min must be a finite number"),
    ("max_time_min", -5.0, "max_time_min must be a positive"),
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("max_steps", 0, "max_steps must be an integer >= 1 .or -1., got 0"),
    ("epochs", "10", "epochs must be an integer"),
    ("refit_weights", (float("nan"),), "refit_weights must be a finite number"),
    ("refit_weights", (1.0, 0.1), "refit_weights has 2 weights for 1 data sources"),
    ("refit_weights", (-1.0,), "refit_weights must not be negative"),
    ("mode", "together", "unknown training mode 'together'.*independent"),
    ("model", "tinny", "unknown model config 'tinny'; did you mean 'tiny'"),
    ("precision", "bf17", "unknown precision 'bf17'"),
    ("accelerator", "tpu2", "unknown accelerator"),
    ("data", (), "data must be one or more data specs"),
    ("data", ("phantom@-1",), "data weight must be a positive number"),
    ("val_fraction", 1.0, "val_fraction must be in"),
    ("loss_weights", {"plane": float("inf")}, "loss weight plane must be a finite"),
    ("loss_weights", {"plain": 1.0}, "unknown loss weight 'plain'; did you mean 'plane'"),
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1"),
])
def test_bad_option_is_one_line(tmp_path, field, value, message) -> None:
    with pytest.raises(InputError, match=message) as e:
        _cfg(tmp_path / "run", **{field: value})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("c.json", "{ not json", "cannot parse config .*c.json as JSON"),
    ("c.toml", "lr = = 1", "cannot parse config .*c.toml as TOML"),
    ("c.json", '{"lrr": 0.1}', "unknown keys \\['lrr'\\]"),
    ("c.json", "[1, 2]", "must hold a table"),
    ("c.json", '{"batch_size": 0}', "c.json: batch_size must be an integer >= 1"),
    ("c.toml", 'lr = "fast"', "c.toml: lr must be a number, got 'fast'"),
])
def test_bad_config_file_is_one_line(tmp_path, name, text, message) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError, match=message):
        TrainConfig.from_file(p)
    with pytest.raises(InputError, match="config file not found"):
        TrainConfig.from_file(tmp_path / "missing.toml")


def test_config_file_and_a_runs_config(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('data = "phantom:n=16,size=64"\nmodel = "tiny"\nrefit_weights = [1.0]\n[loss_weights]\nplane = 2.0\n')
    cfg = TrainConfig.from_file(p, lr=1e-3)
    assert cfg.data == (DATA,) and cfg.refit_weights == (1.0,) and cfg.lr == 1e-3 and cfg.loss_weights == {"plane": 2.0}
    run = tmp_path / "conf.json"
    run.write_text(json.dumps({"model": {}, "train": cfg.to_dict(), "steps": 3}))
    assert TrainConfig.from_file(run) == cfg


def test_cli_bad_option_before_any_work(tmp_path, capsys) -> None:
    from pcbm.cli import main

    out = tmp_path / "run"
    for args, message in ((["--lr", "nan"], "lr must be a finite number"),
                          (["--refit-weights", "1,nan"], "refit_weights must be a finite number"),
                          (["--refit-weights", "1,x"], "--refit-weights expects comma-separated numbers"),
                          (["--max-time-min", "-1"], "max_time_min must be a positive"),
                          (["--config", str(tmp_path / "nope.json")], "config file not found")):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", DATA, "--model", "tiny", "--out", str(out), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not Path(f"{out}.partial").exists()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_model(run)[0].state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_seed_repeats_a_run_with_augmentation(tmp_path, workers) -> None:
    runs = {name: train(_cfg(tmp_path / name, seed=seed, workers=workers, augment=augment, eval_limit=1))
            for name, seed, augment in (("a", 1, True), ("b", 1, True), ("c", 2, True), ("plain", 1, False))}
    a, b, c, plain = (_weights(runs[k]) for k in ("a", "b", "c", "plain"))
    assert _same(a, b)  # same seed: the same weights, augmentations and all
    assert not _same(a, c)  # another seed: another run
    assert not _same(a, plain)  # the augmentations did something


def _init_run(path: Path) -> Path:
    model = build_model("tiny")
    save_model(model, path)
    write_run_config(path, {"model": model.config.to_dict()})
    return path


def test_init_uses_the_finetune_preset_and_freeze_keeps_the_encoder(tmp_path) -> None:
    src = _init_run(tmp_path / "src")
    scratch = TrainConfig(data=(DATA,), model="tiny")
    assert scratch.lr == DEFAULT_LR and scratch.freeze_batchnorm is False
    preset = _cfg(tmp_path / "x", init=str(src))
    assert preset.lr == FINETUNE_LR == DEFAULT_LR / 10 and preset.freeze_batchnorm is True
    given = _cfg(tmp_path / "x", init=str(src), lr=1e-3)  # an explicit --lr (train_default.sh): as before
    assert given.lr == 1e-3 and given.freeze_batchnorm is False

    run = train(_cfg(tmp_path / "ft", init=str(src), freeze_encoder=True))
    conf = json.loads((run / "config.json").read_text())
    assert conf["train"]["lr"] == FINETUNE_LR and conf["train"]["freeze_encoder"] is True
    assert conf["train"]["freeze_batchnorm"] is True
    assert conf["train"]["freeze_batchnorm"] is True
    before, after = _weights(src), _weights(run)
    enc = [k for k in before if k.startswith("segmenter.encoder.")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)  # weights and BatchNorm statistics
    dec = [k for k in before if k.startswith("segmenter.decoder.")]
    stats = [k for k in dec if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)  # the preset keeps BatchNorm statistics
    assert not all(torch.equal(before[k], after[k]) for k in dec)  # ... while the decoder learns

    old = _weights(train(_cfg(tmp_path / "given", init=str(src), lr=1e-3)))
    assert not all(torch.equal(before[k], old[k]) for k in stats)  # without it, they follow the new batches
    assert not all(torch.equal(before[k], old[k]) for k in enc)
    from pcbm.training.module import PCBMTrainingModule

    module = PCBMTrainingModule(build_model("tiny"), freeze_encoder=True).train()
    assert module.model.segmenter.decoder.training and not module.encoder.training
    assert not any(p.requires_grad for p in module.encoder.parameters())


def test_cli_init_without_lr_is_fine_tuning(tmp_path, capsys) -> None:
    from pcbm.cli import main

    src = _init_run(tmp_path / "src")
    out = tmp_path / "ft"
    main(["train", "--data", DATA, "--init", str(src), "--max-steps", "2", "--batch-size", "4", "--workers", "0",
          "--quiet", "--out", str(out), "--freeze-encoder"])
    assert f"wrote {out}" in capsys.readouterr().out
    conf = json.loads((out / "config.json").read_text())
    assert conf["train"]["lr"] == FINETUNE_LR and conf["train"]["freeze_encoder"] is True
    assert conf["train"]["freeze_batchnorm"] is True


@pytest.mark.parametrize("total", [2, 3, 9, 10, 11, 15, 20, 4400])
def test_one_cycle_schedule_of_any_length(total) -> None:
    # torch's OneCycleLR divided by zero for a 10-step run at pct_start 0.1 (`--init RUN --max-steps 12` on 10
    # images: 10 one-batch epochs); the warm-up now spans at least 1.5 steps, and long runs keep 10 %
    from pcbm.training.module import PCT_START, _pct_start

    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=total, pct_start=_pct_start(total))
    for _ in range(total):
        opt.step()
        sched.step()
    assert _pct_start(4400) == PCT_START


def test_train_options_are_the_config_fields(monkeypatch, tmp_path):
    """`pcbm train`'s options are built from TrainConfig's fields: each one reaches the config as given."""
    import dataclasses

    import typer

    import pcbm.training
    from pcbm.cli import app
    from pcbm.cli import main as cli_main
    from pcbm.training.config import cli_options, option_flag

    command = typer.main.get_command(app).commands["train"]
    flags = {d for p in command.params for d in (*p.opts, *p.secondary_opts)}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for f in cli_options():
        assert set(option_flag(f.name).split("/")) <= flags, f.name
    assert {p.name for p in command.params} - fields == {"resume", "overwrite", "config"}

    seen: list[TrainConfig] = []
    monkeypatch.setattr(pcbm.training, "train", lambda cfg, overwrite=False: seen.append(cfg) or tmp_path)
    cli_main(["train", "--data", DATA, "--data", "phantom:n=8@2", "--out", str(tmp_path / "r"), "--weight-decay",
              "0.5", "--threads", "1", "--val-fraction", "0.3", "--no-augment", "--quiet", "--refit-weights", "1,0.25",
              "--eval-limit", "7", "--freeze-encoder", "--mode", "joint"])
    [cfg] = seen
    assert cfg.data == (DATA, "phantom:n=8@2") and cfg.out == str(tmp_path / "r")
    assert (cfg.weight_decay, cfg.threads, cfg.val_fraction, cfg.eval_limit) == (0.5, 1, 0.3, 7)
    assert (cfg.augment, cfg.progress, cfg.freeze_encoder, cfg.mode) == (False, False, True, "joint")
    assert cfg.refit_weights == (1.0, 0.25) and cfg.epochs == TrainConfig().epochs  # not given: the default
