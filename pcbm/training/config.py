"""The training configuration: one frozen dataclass, validated when built, saved with every run.

Example:
    >>> cfg = TrainConfig(data=("phantom:n=16,size=64",), model="tiny", max_steps=2)
    >>> cfg.lr  # no --init: the from-scratch peak learning rate
    0.002
    >>> ft = TrainConfig(init="default")  # --init without --lr: the fine-tuning preset
    >>> ft.lr, ft.freeze_batchnorm
    (0.0002, True)
    >>> TrainConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    pcbm.errors.InputError: batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcbm.errors import InputError, look_up
from pcbm.validate import finite

MODES = ("independent", "sequential", "joint")  # Koh et al. 2020; see pcbm.training.module

DEFAULT_LR = 2e-3  # AdamW peak learning rate from random weights
FINETUNE_LR = DEFAULT_LR / 10  # peak learning rate with --init and no --lr (with BatchNorm statistics kept): 12 steps
# at 2e-3 on 10 HC18 images took the default model's HC error from 0.87 to 5.6 mm; 2e-4 to 2.5 mm; 2e-4 with the
# BatchNorm statistics kept to 1.2 mm (24 validation images, 2-core CPU)
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
LOSS_TERMS = ("segmentation", "properties", "plane", "standard")


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...] = ("phantom",)  # data specs, each optionally SPEC@WEIGHT
    out: str = "runs/pcbm"  # run directory (built in OUT.partial/, renamed onto OUT when complete)
    model: str = "small"  # registered model config name
    init: str | None = None  # start from this run's weights (a run directory or "default"): fine-tuning
    freeze_encoder: bool = False  # keep the segmenter's (baseline's) encoder fixed: no gradient, BatchNorm in eval mode
    freeze_batchnorm: bool | None = None  # every BatchNorm keeps its running statistics (weights still learn);
    # None = True with init and no lr (the fine-tuning preset), else False
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to replace
    size: int | None = None  # input size override (ModelConfig.input_size)
    mode: str = "sequential"  # independent | sequential | joint
    epochs: int = 10  # max epochs
    max_steps: int = -1  # stop after this many optimiser steps (-1 = no limit)
    epoch_size: int | None = None  # training draws per epoch (default: all training samples)
    batch_size: int = 16
    lr: float | None = None  # AdamW peak learning rate (one-cycle); None = DEFAULT_LR, or FINETUNE_LR with init
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
    max_time_min: float | None = None  # stop after this many minutes of training, all resumed sessions together
    checkpoint_every: int = 200  # optimiser steps between checkpoints (also at every epoch end and on Ctrl-C)
    fast_dev_run: bool = False  # one batch of train and val, no run directory metrics
    val_batches: int = 25  # validation batches per epoch (the full-resolution evaluation at the end is separate)
    eval_limit: int | None = 400  # validation images evaluated at full resolution into metrics.json
    progress: bool = True  # progress bars

    def __post_init__(self) -> None:
        _validate(self)
        if self.freeze_batchnorm is None:
            object.__setattr__(self, "freeze_batchnorm", bool(self.init) and self.lr is None)
        if self.lr is None:
            object.__setattr__(self, "lr", FINETUNE_LR if self.init else DEFAULT_LR)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a JSON or TOML file of TrainConfig fields (or a run's config.json: its ``train`` table);
        ``overrides`` (not None) win."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file not found: {p}" if not p.exists() else f"config {p} is not a file")
        try:
            text = p.read_text(encoding="utf-8")
            d = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            kind = "TOML" if p.suffix == ".toml" else "JSON"
            raise InputError(f"cannot parse config {p} as {kind}: {e}") from None
        except OSError as e:
            raise InputError(f"cannot read config {p}: {e.strerror or e}") from None
        if isinstance(d, dict) and isinstance(d.get("train"), dict):
            d = d["train"]
        if not isinstance(d, dict):
            raise InputError(f"config {p} must hold a table of training settings, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{p}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(d)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A TrainConfig from plain JSON/TOML values (lists where the fields hold tuples)."""
        d = dict(d)
        if isinstance(d.get("data"), str):
            d["data"] = (d["data"],)
        for key in ("data", "refit_weights"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as saved in a run's config.json (``train`` table)."""
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        if self.refit_weights is not None:
            d["refit_weights"] = list(self.refit_weights)
        return d


def _int(cfg: TrainConfig, name: str, minimum: int, optional: bool = False, also: tuple[int, ...] = ()) -> None:
    v = getattr(cfg, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or (v < minimum and v not in also):
        extra = "".join(f" (or {a})" for a in also)
        raise InputError(f"{name} must be an integer >= {minimum}{extra}, got {v!r}")


def _validate(cfg: TrainConfig) -> None:
    """Every field a user sets, checked before any work: one line naming the field and the value."""
    from pcbm.training.data import parse_source

    if not isinstance(cfg.data, tuple | list) or not cfg.data or not all(isinstance(s, str) and s for s in cfg.data):
        raise InputError(f"data must be one or more data specs (e.g. phantom or hc18:PATH), got {cfg.data!r}")
    for spec in cfg.data:
        try:
            parse_source(spec)
        except ValueError as e:
            raise InputError(str(e)) from None
    look_up(cfg.mode, MODES, "training mode")
    look_up(cfg.precision, PRECISIONS, "precision")
    look_up(cfg.accelerator, ACCELERATORS, "accelerator")
    if not cfg.init:
        from pcbm.models.config import get_model_config

        get_model_config(cfg.model)  # unknown name: did-you-mean and the list
    for name in ("epochs", "batch_size", "threads", "val_batches", "checkpoint_every"):
        _int(cfg, name, 1)
    _int(cfg, "max_steps", 1, also=(-1,))
    for name in ("epoch_size", "size", "eval_limit"):
        _int(cfg, name, 1, optional=True)
    for name in ("workers", "refit_decision"):
        _int(cfg, name, 0, optional=name == "workers")
    _int(cfg, "seed", 0)
    _int(cfg, "split_seed", 0)
    if cfg.lr is not None:
        finite(cfg.lr, "lr", positive=True)
    finite(cfg.weight_decay, "weight_decay", nonnegative=True)
    if not 0 <= finite(cfg.val_fraction, "val_fraction") < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {cfg.val_fraction!r}")
    if cfg.max_time_min is not None:
        finite(cfg.max_time_min, "max_time_min", positive=True)
    if not isinstance(cfg.loss_weights, dict):
        raise InputError(f"loss_weights must be a table of {', '.join(LOSS_TERMS)}, got {cfg.loss_weights!r}")
    for k, w in cfg.loss_weights.items():
        look_up(k, LOSS_TERMS, "loss weight")
        finite(w, f"loss weight {k}", nonnegative=True)
    if not isinstance(cfg.model_overrides, dict):
        raise InputError(f"model_overrides must be a table of model config fields, got {cfg.model_overrides!r}")
    if cfg.refit_weights is not None:
        weights = [finite(w, "refit_weights", nonnegative=True) for w in cfg.refit_weights]
        if len(weights) != len(cfg.data):
            raise InputError(f"refit_weights has {len(weights)} weights for {len(cfg.data)} data sources; give one per --data")
        if not any(weights):
            raise InputError("refit_weights are all 0; give at least one source a positive weight")
    if cfg.freeze_batchnorm is not None and not isinstance(cfg.freeze_batchnorm, bool):
        raise InputError(f"freeze_batchnorm must be true or false, got {cfg.freeze_batchnorm!r}")
    for name in ("freeze_encoder", "augment", "fast_dev_run", "progress"):
        if not isinstance(getattr(cfg, name), bool):
            raise InputError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
