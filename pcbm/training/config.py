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
LOSS_TERMS = ("segmentation", "presence", "properties", "plane", "standard")


def setting(default: Any = None, help: str | None = None, flags: str | None = None,
            factory: Any = None) -> Any:
    """A settings-dataclass field. With ``help`` it is also a command-line option (``--name-with-dashes``, or
    ``flags`` such as ``"--progress/--quiet"`` for a switch); without, it is set in a ``--config`` file only."""
    meta = {"help": help, "flags": flags}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting, with its ``pcbm train`` option and help (the CLI is built from these fields)."""

    data: tuple[str, ...] = setting(("phantom",), "Data spec, repeatable; SPEC@WEIGHT sets its share (e.g. hc18:PATH@2).")
    out: str = setting("runs/pcbm", "Run directory to write (model.pt, config.json, metrics.json, logs/); built in "
                        "OUT.partial/ and renamed onto OUT when complete. A non-empty OUT is refused unless --overwrite.")
    model: str = setting("small", "Registered model config: tiny, small, small_mlp, baseline, …")
    init: str | None = setting(None, "Start from this run's weights (RUN_DIR or default) to fine-tune; its model config "
                                f"is kept; without --lr, the fine-tuning preset: --lr {FINETUNE_LR:g} and --freeze-batchnorm.")
    freeze_encoder: bool = setting(False, "Keep the encoder fixed (no gradient, BatchNorm statistics kept): fine-tune "
                                    "only the decoder and heads.", "--freeze-encoder/--no-freeze-encoder")
    freeze_batchnorm: bool | None = setting(None, "Keep every BatchNorm layer's running statistics (its weights still "
                                             "learn); default on with --init and no --lr (the fine-tuning preset), else off.",
                                             "--freeze-batchnorm/--no-freeze-batchnorm")
    model_overrides: dict[str, Any] = setting(factory=dict)  # ModelConfig fields to replace (--config only)
    size: int | None = setting(None, "Input size S (square, letterboxed).")
    mode: str = setting("sequential", "independent, sequential or joint.")
    epochs: int = setting(10, "Maximum epochs.")
    max_steps: int = setting(-1, "Stop after this many optimiser steps (-1: no limit).")
    epoch_size: int | None = setting(None, "Training draws per epoch (default: all training samples).")
    batch_size: int = setting(16, "Images per optimiser step.")
    lr: float | None = setting(None, f"Peak learning rate (AdamW, one-cycle); default {DEFAULT_LR:g}, or "
                                f"{FINETUNE_LR:g} (1/10) with --init.")
    weight_decay: float = setting(1e-4, "AdamW weight decay.")
    loss_weights: dict[str, float] = setting(factory=dict)  # segmentation/properties/plane/standard (--config only)
    augment: bool = setting(True, "Train with augmentations (--no-augment: without).", "--augment/--no-augment")
    val_fraction: float = setting(0.2, "Share of every source's subjects held out for validation.")
    seed: int = setting(0, "Seed for weights, sampling and augmentation: a run with the same seed and settings repeats.")
    split_seed: int = setting(0, "Seed of the subject-level train/val split (default 0, the split `SPEC?split=val` "
                               "evaluates); keep it fixed across --init stages.")
    workers: int | None = setting(None, "DataLoader workers (default: CPU count - 1, at most 8).")
    threads: int = setting(2, "torch CPU threads.")
    accelerator: str = setting("auto", "auto, cpu or gpu.")
    precision: str = setting("auto", "Lightning precision: auto (default: bf16-mixed where the GPU or CPU computes "
                              "bf16 natively, else 32-true), 32-true, bf16-mixed, …")
    refit_decision: int = setting(0, "After training, refit the decision on predicted concepts of N samples per source.")
    refit_weights: tuple[float, ...] | None = setting(None, "Comma-separated per-source sample weights for the "
                                                       "refit, e.g. 1,0.1.")
    max_time_min: float | None = setting(None, "Stop after this many minutes of training (safety net; resumed "
                                          "sessions count together).")
    checkpoint_every: int = setting(200, "Optimiser steps between checkpoints in OUT.partial/checkpoints/ (default "
                                     "200; also at each epoch end and on Ctrl-C).")
    fast_dev_run: bool = setting(False)  # one batch of train and val, no run directory metrics (--config only)
    val_batches: int = setting(25, "Validation batches per epoch (the full-resolution evaluation at the end is separate).")
    eval_limit: int | None = setting(400, "Validation images evaluated at full resolution into metrics.json.")
    progress: bool = setting(True, "Progress bars (--quiet: none, and no Lightning INFO lines).", "--progress/--quiet")

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


@dataclass(frozen=True)
class RefinerTrainConfig:
    """Settings of ``pcbm train-head`` (the head refiner, :mod:`pcbm.models.head_refiner`)."""

    data: tuple[str, ...] = setting(("hc18:../shared/data/hc18",), "Head-labelled data spec, repeatable; only its "
                                    "subject-level training split is read.")
    out: str = setting("runs/head_refiner", "Folder to write (head_refiner.pt, config.json, metrics.json); copy "
                       "head_refiner.pt into a model's run directory to use it there.")
    size: int = setting(224, "Crop side in refiner pixels.")
    encoder: str = setting("resnet18", "smp encoder of the refiner's U-Net.")
    whole_frame: float = setting(0.3, "Share of training crops that are the whole frame (so the refiner finds the "
                                 "head without a plane model's mask).")
    max_steps: int = setting(2500, "Optimiser steps.")
    batch_size: int = setting(8, "Crops per optimiser step.")
    lr: float = setting(2e-3, "Peak learning rate (AdamW, one-cycle).")
    seed: int = setting(0, "Seed for weights, crops and augmentation.")
    split_seed: int = setting(0, "Seed of the subject-level train/val split (0: the split `SPEC?split=val` evaluates).")
    val_fraction: float = setting(0.2, "Share of subjects held out for validation.")
    workers: int = setting(1, "DataLoader workers.")
    threads: int = setting(2, "torch CPU threads.")
    precision: str = setting("auto", "Lightning precision (auto: bf16-mixed where the CPU or GPU computes bf16).")
    max_time_min: float | None = setting(None, "Stop after this many minutes of training.")
    eval_limit: int | None = setting(None, "Validation images evaluated into metrics.json (default: all).")
    progress: bool = setting(True, "Progress bars (--quiet: none).", "--progress/--quiet")

    def __post_init__(self) -> None:
        if not isinstance(self.data, tuple | list) or not self.data:
            raise InputError(f"data must be one or more data specs, got {self.data!r}")
        for name in ("size", "max_steps", "batch_size", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be an integer >= 1, got {v!r}")
        if self.size < 32:
            raise InputError(f"size must be at least 32, got {self.size}")
        finite(self.lr, "lr", positive=True)
        if not 0 < finite(self.val_fraction, "val_fraction") < 1:
            raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not 0 <= finite(self.whole_frame, "whole_frame") <= 1:
            raise InputError(f"whole_frame must be in [0, 1], got {self.whole_frame!r}")
        look_up(self.precision, PRECISIONS, "precision")


def cli_options(cls: type = TrainConfig) -> list[dataclasses.Field[Any]]:
    """The fields of a settings dataclass (default TrainConfig) that are command-line options, in order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("help")]


def option_flag(name: str, value: Any = None, cls: type = TrainConfig) -> str:
    """The command-line flag of field ``name`` as a user types it for ``value`` (``progress=False`` ->
    ``--quiet``; no value: both forms of a switch, ``--progress/--quiet``)."""
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    flags = f.metadata.get("flags") if f is not None else None
    if flags:
        on, _, off = flags.partition("/")
        return flags if value is None else off if value is False else on
    return "--" + name.replace("_", "-")


def _int(cfg: TrainConfig, name: str, minimum: int, optional: bool = False, also: tuple[int, ...] = ()) -> None:
    v = getattr(cfg, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or (v < minimum and v not in also):
        extra = "".join(f" (or {a})" for a in also)
        raise InputError(f"{name} must be an integer >= {minimum}{extra}, got {v!r}")


def check_encoder(name: str, option: str = "--encoder") -> str:
    """Check, before any work, that ``name`` is an smp encoder (or ``tu-`` and a timm model); did-you-mean otherwise."""
    from segmentation_models_pytorch.encoders import encoders

    if isinstance(name, str) and name.startswith("tu-"):
        import timm

        if not timm.is_model(name[3:]):
            raise InputError(f"{option} {name!r}: timm has no model {name[3:]!r} (see timm.list_models())")
        return name
    return look_up(name, sorted(encoders), option.lstrip("-") if option.startswith("--") else option)


def check_accelerator(accelerator: str, devices: str | int = "auto", option: str = "--accelerator") -> None:
    """Check, before any work, that ``accelerator`` is known and present and ``devices`` makes sense
    (``auto``, a count ≥ 1, -1 for all, or a comma list of device indices); one line otherwise.

    Example:
        >>> check_accelerator("cpu", "2")
        >>> check_accelerator("cpu", "abc")
        Traceback (most recent call last):
        ...
        pcbm.errors.InputError: --devices 'abc': expected auto, a count (e.g. 2), -1 (all) or a list of indices (e.g. 0,1)
    """
    look_up(accelerator, ACCELERATORS, "accelerator")
    d = str(devices).strip()
    parts = [p.strip() for p in d.rstrip(",").split(",")] if "," in d else [d]
    if d != "auto" and not (d == "-1" or (d.isdigit() and int(d) >= 1) or
                            ("," in d and all(p.isdigit() for p in parts))):
        raise InputError(f"--devices {str(devices)!r}: expected auto, a count (e.g. 2), -1 (all) or a list of indices "
                         "(e.g. 0,1)")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"{option} {accelerator}: no GPU is visible to torch on this machine; use "
                             f"{option} cpu (or auto)")
        n = torch.cuda.device_count()
        wanted = [int(p) for p in parts] if "," in d else None
        if (d.isdigit() and int(d) > n) or (wanted and max(wanted) >= n):
            raise InputError(f"--devices {d}: this machine has {n} GPU(s)")
    elif accelerator == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"{option} mps: Apple's GPU (MPS) is not available on this machine; use {option} cpu")


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
