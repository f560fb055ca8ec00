"""Training entry point: a frozen :class:`TrainConfig` in, a run directory out.

The run directory holds ``model.pt`` (loadable without Lightning), ``config.json`` (the resolved
model + training config, data specs, versions, wall time, throughput), ``metrics.json`` (the
validation split evaluated at the original resolution) and ``logs/metrics.csv`` (CSVLogger).

Example:
    >>> cfg = TrainConfig(data=("phantom:n=16,size=64",), model="tiny", max_steps=2, out="runs/x")
    >>> run_dir = train(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcbm.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...] = ("phantom",)  # data specs, each optionally SPEC@WEIGHT
    out: str = "runs/pcbm"  # run directory
    model: str = "small"  # registered model config name
    init: str | None = None  # start from this run's weights (a run directory or "default"): fine-tuning
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to replace
    size: int | None = None  # input size override (ModelConfig.input_size)
    mode: str = "sequential"  # independent | sequential | joint
    epochs: int = 10  # max epochs
    max_steps: int = -1  # stop after this many optimiser steps (-1 = no limit)
    epoch_size: int | None = None  # training draws per epoch (default: all training samples)
    batch_size: int = 16
    lr: float = 2e-3  # AdamW peak learning rate (one-cycle)
    weight_decay: float = 1e-4
    loss_weights: dict[str, float] = field(default_factory=dict)  # segmentation/properties/plane/standard
    augment: bool = True
    val_fraction: float = 0.2  # subject-level validation split of every source
    seed: int = 0  # weights, sampling and augmentation (not the split: see split_seed)
    split_seed: int = 0  # subject-level train/val split; fixed across --init stages so that validation subjects
    # never enter training (0 is the split that ``SPEC?split=val`` and the benchmarks evaluate on)
    workers: int | None = None  # DataLoader workers (None = CPU count - 1, at most 8)
    threads: int = 2  # torch CPU threads
    accelerator: str = "auto"  # Lightning accelerator: auto, cpu, gpu
    precision: str = "auto"  # Lightning precision; auto = bf16-mixed where the device computes bf16 natively, else 32-true
    refit_decision: int = 0  # after training, refit the decision on predicted concepts of N samples per source
    refit_weights: tuple[float, ...] | None = None  # per-source sample weights for the refit (default 1 each)
    max_time_min: float | None = None  # stop after this many minutes (safety net; the schedule assumes the full run)
    fast_dev_run: bool = False  # one batch of train and val, no run directory metrics
    val_batches: int = 25  # validation batches per epoch (the full-resolution evaluation at the end is separate)
    eval_limit: int | None = 400  # validation images evaluated at full resolution into metrics.json
    progress: bool = True  # progress bars

    def __post_init__(self) -> None:
        from pcbm.training.module import MODES

        if not self.data:
            raise ValueError("no data: give at least one data spec")
        if self.mode not in MODES:
            raise ValueError(f"unknown training mode {self.mode!r}; choose {', '.join(MODES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        bad = set(self.loss_weights) - {"segmentation", "properties", "plane", "standard"}
        if bad:
            raise ValueError(f"unknown loss weights {sorted(bad)}; known: segmentation, properties, plane, standard")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a JSON or TOML file of TrainConfig fields; ``overrides`` (not None) win."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file not found: {p}")
        try:
            d = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"cannot parse config {p}: {e}") from None
        d = d.get("train", d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{p}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        if "data" in d:
            d["data"] = tuple([d["data"]] if isinstance(d["data"], str) else d["data"])
        if d.get("refit_weights") is not None:
            d["refit_weights"] = tuple(d["refit_weights"])
        return cls(**d)


def build_from_config(cfg: TrainConfig) -> Any:
    from pcbm.models import build_model, get_model_config

    overrides = dict(cfg.model_overrides)
    if cfg.size is not None:
        overrides["input_size"] = cfg.size
    if cfg.init:
        from pcbm.models import load_model

        model, _ = load_model(cfg.init)
        clash = {k: v for k, v in overrides.items() if getattr(model.config, k) != v}
        if clash:
            raise InputError(f"--init {cfg.init}: its model config fixes {', '.join(sorted(clash))}; "
                             f"drop the override (it has {', '.join(f'{k}={getattr(model.config, k)}' for k in sorted(clash))})")
        return model.train()
    return build_model(get_model_config(cfg.model, **overrides))


def _cpu_has_bf16() -> bool:
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes (private, hence getattr)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning precision for ``precision`` on ``accelerator``: ``auto`` becomes ``bf16-mixed`` on a
    CUDA GPU with bf16 or a CPU with AVX512-BF16 / AMX (on such a 2-core CPU it made the ``small`` model's
    training 1.7 times as fast, bench/RESULTS.md), else ``32-true``. Anything else is passed through.

    Example:
        >>> resolve_precision("32-true")
        '32-true'
    """
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if _cpu_has_bf16() else "32-true"


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning(verbose: bool) -> None:
    """Lightning's own chatter: its LitLogger advert never; its INFO lines (GPU available, AMP, …)
    only when progress is shown; torch's LeafSpec deprecation warning from inside Lightning never."""
    log = logging.getLogger("lightning.pytorch")
    if not any(isinstance(f, _DropAdverts) for f in log.filters):
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).addFilter(_DropAdverts())
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def train(cfg: TrainConfig) -> Path:
    """Train a model as configured and write the run directory. Returns its path."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from pcbm import __version__
    from pcbm.models import save_model
    from pcbm.models.io import write_run_config
    from pcbm.training.data import MixedDataModule
    from pcbm.training.losses import LossWeights
    from pcbm.training.module import PCBMTrainingModule

    torch.set_num_threads(cfg.threads)
    _quiet_lightning(cfg.progress)
    precision = resolve_precision(cfg.precision, cfg.accelerator)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_from_config(cfg)
    mcfg = model.config
    dm = MixedDataModule(cfg.data, mcfg.input_size, cfg.batch_size, cfg.workers, cfg.val_fraction, cfg.seed,
                         cfg.augment, cfg.epoch_size, split_seed=cfg.split_seed)
    dm.setup()
    module = PCBMTrainingModule(model, cfg.mode, cfg.lr, cfg.weight_decay, LossWeights(**cfg.loss_weights))

    class _SaveEachEpoch(Callback):
        images = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            self.images += int(batch["image"].shape[0])

        def on_train_epoch_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            if not cfg.fast_dev_run:
                save_model(pl_module.model, out)

    counter = _SaveEachEpoch()
    callbacks: list[Any] = [counter]
    if cfg.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    trainer = L.Trainer(
        max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=1,
        precision=precision, logger=CSVLogger(out, name="logs", version=""), callbacks=callbacks,
        enable_checkpointing=False, enable_progress_bar=cfg.progress, fast_dev_run=cfg.fast_dev_run,
        log_every_n_steps=10, num_sanity_val_steps=0, limit_val_batches=cfg.val_batches, enable_model_summary=False,
        deterministic="warn" if cfg.accelerator == "cpu" else False,
        max_time={"minutes": cfg.max_time_min} if cfg.max_time_min else None,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    wall = time.perf_counter() - t0
    model = module.model.eval()
    refit = None
    if cfg.refit_decision > 0 and not cfg.fast_dev_run and not getattr(model, "concept_free", False):
        from pcbm.training.refit import refit_decision

        refit = refit_decision(model, dm.train_sets, cfg.refit_decision, source_weights=cfg.refit_weights,
                               seed=cfg.seed)
    model = model.cpu()
    save_model(model, out)
    resolved = {
        "model": mcfg.to_dict(),
        "train": {**dataclasses.asdict(cfg), "data": list(cfg.data)},
        "data_sizes": {spec: {"train": len(tr), "val": len(va) if va is not None else 0}
                       for (spec, _), tr, va in zip(dm.sources, dm.train_sets, dm.val_sets, strict=True)},
        "pcbm_version": __version__, "torch_version": torch.__version__,
        "device": str(trainer.strategy.root_device), "precision": precision,
        "wall_time_s": round(wall, 1), "train_images": counter.images, "steps": int(trainer.global_step),
        "train_images_per_s": round(counter.images / wall, 2) if wall > 0 else None,
        "decision_refit": refit,
    }
    write_run_config(out, resolved)
    if not cfg.fast_dev_run:
        from pcbm._io import jsonable, write_json
        from pcbm.training.evaluate import evaluate

        metrics = {}
        for (spec, _), va in zip(dm.sources, dm.val_sets, strict=True):
            if va is not None and len(va):
                metrics[spec] = evaluate(model, va, limit=cfg.eval_limit)
        write_json(out / "metrics.json", jsonable(metrics))
    return out


