"""The study's settings: one frozen dataclass, validated when built, saved beside the results."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from pcbm.benchmark.protocols import METHODS, PROTOCOLS
from pcbm.benchmark.protocols.common import Scale
from pcbm.errors import InputError, look_up
from pcbm.validate import finite


@dataclass(frozen=True)
class BenchConfig:
    """Settings of ``pcbm bench backbones``.

    Example:
        >>> BenchConfig(data="phantom:n=20", out="x", protocols=("linear", "finetuning"))
        Traceback (most recent call last):
        ...
        pcbm.errors.UnknownNameError: unknown protocol 'finetuning'; did you mean 'finetune'? known: linear, finetune, pcbm
    """

    data: str  # the in-domain data spec (k-fold inside it)
    out: str  # results folder (resumable: finished folds are kept)
    ood: tuple[str, ...] = ()  # external data specs, each scored by every fold's model
    backbones: tuple[str, ...] = ("resnet18",)  # registered backbone names
    protocols: tuple[str, ...] = ("linear", "finetune")  # linear, finetune, pcbm
    folds: int = 5  # patient-level stratified folds
    max_steps: int = 50  # optimiser steps per fold (finetune, pcbm)
    image_size: int | None = None  # square input side for every backbone (None: each its authors' size)
    batch_size: int = 16  # images per step
    lr: float = 1e-3  # fine-tuning peak learning rate (AdamW, cosine)
    seed: int = 0  # folds, weights, sampling, bootstrap
    pooling: str | None = None  # avg or token (CLS); None: each backbone's default
    weights: tuple[tuple[str, str], ...] = ()  # (backbone, local checkpoint file)
    model_configs: tuple[tuple[str, str], ...] = ()  # (backbone, config file), e.g. FetalCLIP's JSON
    n_boot: int = 1000  # bootstrap resamples of subjects
    watts_per_core: float = 10.0  # the energy estimate's power per busy core
    scale: Scale = field(default_factory=Scale)  # Lightning accelerator / devices / strategy / nodes

    def __post_init__(self) -> None:
        from pcbm.benchmark.zoo import get_backbone

        if not self.backbones:
            raise InputError("--backbones is empty; name at least one (see pcbm bench backbones --list)")
        for b in self.backbones:
            get_backbone(b)
        for p in self.protocols:
            look_up(p, PROTOCOLS, "protocol")
        if not self.protocols:
            raise InputError(f"--protocol is empty; choose from {', '.join(PROTOCOLS)}")
        if self.folds < 2:
            raise InputError(f"--folds must be at least 2, got {self.folds}")
        if self.max_steps < 1:
            raise InputError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.image_size is not None and (self.image_size < 32 or self.image_size % 16):
            raise InputError(f"--image-size must be a multiple of 16 and at least 32, got {self.image_size}")
        if self.pooling not in (None, "avg", "token"):
            raise InputError(f"--pooling must be avg or token, got {self.pooling!r}")
        for b, _ in (*self.weights, *self.model_configs):
            get_backbone(b)
        if self.n_boot < 10:
            raise InputError(f"--n-boot must be at least 10, got {self.n_boot}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        finite(self.lr, "--lr", positive=True)
        finite(self.watts_per_core, "--watts-per-core", positive=True)
        from pcbm.training.config import ACCELERATORS

        look_up(self.scale.accelerator, ACCELERATORS, "accelerator")  # present or not: checked by the command
        if self.scale.num_nodes < 1:
            raise InputError(f"--num-nodes must be at least 1, got {self.scale.num_nodes}")

    @property
    def methods(self) -> list[str]:
        return [m for p in self.protocols for m in METHODS[p]]

    def checkpoint(self, backbone: str) -> str | None:
        return dict(self.weights).get(backbone)

    def model_config(self, backbone: str) -> str | None:
        return dict(self.model_configs).get(backbone)

    def fold_key(self, backbone: str, method: str) -> str:
        """A hash of everything a fold's result depends on (a finished fold is reused only if it matches)."""
        d = {"data": self.data, "ood": self.ood, "backbone": backbone, "method": method, "folds": self.folds,
             "seed": self.seed, "image_size": self.image_size, "pooling": self.pooling,
             "weights": self.checkpoint(backbone), "config": self.model_config(backbone)}
        if method != "linear":
            d.update(max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
