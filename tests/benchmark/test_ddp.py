"""Scale through Lightning's strategies: fine-tuning under DDP with two CPU processes (gloo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcbm.benchmark.protocols.common import Scale
from pcbm.benchmark.protocols.finetune import fine_tune, predict
from pcbm.benchmark.zoo import build_backbone


@pytest.mark.slow
def test_fine_tune_runs_under_ddp_with_two_cpu_processes() -> None:
    torch.multiprocessing.set_sharing_strategy("file_system")  # a small /dev/shm (containers) cannot pass fds
    enc = build_backbone("vit_tiny", tiny=True, image_size=32)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 255, (16, 1, 32, 32), dtype=np.uint8)
    y = np.arange(16) % 2
    scale = Scale(accelerator="cpu", devices="2", strategy="ddp_spawn")  # Lightning's own launcher, gloo on CPU
    model = fine_tune(enc, u8, y, 2, max_steps=2, scale=scale, batch_size=4)
    after = model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the spawned ranks' weights came back
    assert predict(model, u8).shape == (16, 2)
