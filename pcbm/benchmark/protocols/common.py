"""What the protocols share: the scale settings (Lightning strategies), a trainer, the image store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pcbm.benchmark.zoo.encoder import resize_batch


@dataclass(frozen=True)
class Scale:
    """Where training runs: Lightning's own accelerators and strategies (DDP over GPUs or nodes)."""

    accelerator: str = "auto"  # auto, cpu, gpu
    devices: str = "auto"  # "auto", a count ("4") or a list ("0,1")
    strategy: str = "auto"  # auto, ddp, ddp_spawn, fsdp, … (Lightning's names)
    num_nodes: int = 1  # machines (DDP across nodes: launch with torchrun / SLURM as Lightning documents)
    precision: str = "32-true"  # Lightning precision (bf16-mixed on GPUs that have it)

    def trainer(self, max_steps: int, **kwargs: object):  # noqa: ANN201 - lightning.Trainer
        import lightning as L

        devices: object = self.devices
        if isinstance(devices, str) and devices.isdigit():
            devices = int(devices)
        return L.Trainer(max_steps=max_steps, accelerator=self.accelerator, devices=devices, strategy=self.strategy,
                         num_nodes=self.num_nodes, precision=self.precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, **kwargs)


def is_main_process() -> bool:
    """Global rank 0 (or no distributed run): the one process that writes results. Before the process
    group exists, Lightning's launchers have set ``LOCAL_RANK`` / ``NODE_RANK`` (torchrun and SLURM ``RANK``)."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    return int(env.get("LOCAL_RANK", "0")) == 0 and int(env.get("NODE_RANK", env.get("SLURM_NODEID", "0"))) == 0


class ImageStore:
    """Frames resized once per input size (uint8, (N, 1, H, W)), shared by the backbones that use that size."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self.images = list(images)
        self._cache: dict[tuple[int, int, str], np.ndarray] = {}

    def at(self, size: tuple[int, int], mode: str) -> np.ndarray:
        key = (size[0], size[1], mode)
        if key not in self._cache:
            out = np.empty((len(self.images), 1, *size), np.uint8)
            for i in range(0, len(self.images), 64):
                out[i:i + 64] = np.rint(resize_batch(self.images[i:i + 64], size, mode) * 255)
            self._cache[key] = out
        return self._cache[key]


def as_input(u8: np.ndarray, encoder: torch.nn.Module) -> torch.Tensor:
    """(B, 1, H, W) uint8 -> the encoder's normalised float input."""
    return encoder.normalise(torch.from_numpy(u8).float().div_(255.0))


@torch.no_grad()
def features(encoder: torch.nn.Module, u8: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, D) features of stored frames, in eval mode."""
    encoder.eval()
    out = [encoder(as_input(u8[i:i + batch], encoder)).float().numpy() for i in range(0, len(u8), batch)]
    return np.concatenate(out) if out else np.zeros((0, encoder.num_features), np.float32)
