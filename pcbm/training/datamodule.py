"""The Lightning data module: weighted mixing of data sources with a subject-level train/val split.

Lightning is imported here only, so evaluation and the datasets (``pcbm.training.data``) work
without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, WeightedRandomSampler

from pcbm.data import SampleDataset, open_dataset
from pcbm.training.data import (
    EncodedDataset,
    auto_workers,
    collate,
    parse_source,
    seed_worker,
    ultrasound_augment,
)


class MixedDataModule(L.LightningDataModule):
    """Mix data sources with weights; subject-level train/val split of each source.

    Args:
        sources: data specs, each optionally ``SPEC@WEIGHT`` (e.g. ``hc18:PATH@2``): a source's
            share of the training draws is proportional to its weight (independent of its size).
        size: model input side.
        batch_size, workers: DataLoader settings (workers None = :func:`auto_workers`).
        val_fraction, split_seed: the subject-level split (SampleDataset.split_indices); the split
            does not follow ``seed``, so stages with different seeds share one validation set.
        seed: the draws of the training sampler and the augmentations (workers included).
        augment: apply :func:`ultrasound_augment` to training batches.
        epoch_size: training draws per epoch (default: the total number of training samples).
    """

    def __init__(self, sources: Sequence[str], size: int, batch_size: int = 16, workers: int | None = None,
                 val_fraction: float = 0.2, seed: int = 0, augment: bool = True, epoch_size: int | None = None,
                 split_seed: int = 0):
        super().__init__()
        if not sources:
            raise ValueError("no data: give at least one --data SPEC (e.g. phantom or hc18:PATH)")
        self.sources = [parse_source(s) for s in sources]
        self.size, self.batch_size = size, batch_size
        self.workers = auto_workers() if workers is None else workers
        self.val_fraction, self.seed, self.augment, self.epoch_size = val_fraction, seed, augment, epoch_size
        self.split_seed = split_seed
        self.train_sets: list[SampleDataset] = []
        self.val_sets: list[SampleDataset] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_sets:
            return
        for spec, _ in self.sources:
            self.train_sets.append(open_dataset(spec, "train", self.val_fraction, self.split_seed))
            try:
                self.val_sets.append(open_dataset(spec, "val", self.val_fraction, self.split_seed))
            except ValueError:  # a tiny source may have no val subject
                self.val_sets.append(None)  # type: ignore[arg-type]
        for (spec, _), ds in zip(self.sources, self.train_sets, strict=True):
            if len(ds) == 0:
                raise ValueError(f"data {spec!r} has no training samples after the subject split")

    def train_dataloader(self) -> DataLoader:
        aug = ultrasound_augment(seed=self.seed) if self.augment else None
        sets = [EncodedDataset(ds, self.size, aug) for ds in self.train_sets]
        weights = torch.cat([torch.full((len(ds),), w / len(ds), dtype=torch.double)
                             for ds, (_, w) in zip(self.train_sets, self.sources, strict=True)])
        n = self.epoch_size or len(weights)
        gen = torch.Generator().manual_seed(self.seed)
        sampler = WeightedRandomSampler(weights, num_samples=n, replacement=True, generator=gen)
        return DataLoader(ConcatDataset(sets), batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
                          collate_fn=collate, drop_last=n > self.batch_size, persistent_workers=self.workers > 0,
                          pin_memory=torch.cuda.is_available(), worker_init_fn=seed_worker,
                          generator=torch.Generator().manual_seed(self.seed + 1))  # the workers' seeds

    def val_dataloader(self) -> DataLoader:
        sets = [EncodedDataset(ds, self.size) for ds in self.val_sets if ds is not None and len(ds)]
        if not sets:
            sets = [EncodedDataset(self.train_sets[0], self.size)]
        return DataLoader(ConcatDataset(sets), batch_size=self.batch_size, shuffle=False, num_workers=self.workers,
                          collate_fn=collate, persistent_workers=self.workers > 0)
