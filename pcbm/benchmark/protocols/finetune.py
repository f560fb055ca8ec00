"""Full fine-tuning: the encoder and a linear head trained end to end (a LightningModule that receives
the network), on Lightning's strategies so DDP over GPUs or machines needs no launcher of ours."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pcbm.benchmark.protocols.common import Scale


class Classifier(nn.Module):
    """An encoder with a linear head: stored frames (B, 1, H, W) in [0, 1] -> logits (B, K)."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.num_features, n_classes)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.encoder.normalise(x01)))  # (B, K)


class FineTuneModule(L.LightningModule):
    """Cross-entropy, AdamW and a cosine schedule around a :class:`Classifier`."""

    def __init__(self, model: Classifier, lr: float = 1e-3, weight_decay: float = 0.05) -> None:
        super().__init__()
        self.model, self.lr, self.weight_decay = model, lr, weight_decay

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.training:  # horizontal flips: plane labels do not depend on the side
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.log("train/loss", loss, prog_bar=False, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):  # type: ignore[override]
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
                                                   "interval": "step"}}


class StoredFrames(Dataset):
    """(frame in [0, 1], class index) pairs from an :class:`~pcbm.benchmark.protocols.common.ImageStore` array."""

    def __init__(self, u8: np.ndarray, y: np.ndarray) -> None:
        self.u8, self.y = u8, y

    def __len__(self) -> int:
        return len(self.u8)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.u8[i]).float().div_(255.0), torch.tensor(int(self.y[i]))


def fine_tune(encoder: nn.Module, u8: np.ndarray, y: np.ndarray, n_classes: int, max_steps: int, scale: Scale,
              batch_size: int = 16, lr: float = 1e-3, seed: int = 0, workers: int = 0) -> Classifier:
    """Train encoder + head for ``max_steps`` optimiser steps; returns the trained classifier (CPU, eval)."""
    L.seed_everything(seed, workers=True, verbose=False)
    model = Classifier(encoder, n_classes)
    loader = DataLoader(StoredFrames(u8, y), batch_size=min(batch_size, len(y)), shuffle=True, drop_last=len(y) > batch_size,
                        num_workers=workers, generator=torch.Generator().manual_seed(seed))
    trainer = scale.trainer(max_steps)
    trainer.fit(FineTuneModule(model, lr=lr), loader)
    return model.cpu().eval()


@torch.no_grad()
def predict(model: Classifier, u8: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, K) logits of stored frames."""
    model.eval()
    out = [model(torch.from_numpy(u8[i:i + batch]).float().div_(255.0)).float().numpy() for i in range(0, len(u8), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), np.float32)

