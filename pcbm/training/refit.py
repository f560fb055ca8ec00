"""Refit the decision layer on the trained model's *predicted* properties (Koh et al.'s sequential
last stage), with per-source sample weights.

Run after training: the segmenter and property head are frozen, their predictions on training
samples are collected once, and the decision (linear or MLP) is fitted full-batch on them. A low
weight for a source whose concepts are not labelled (HC18: only the head mask, every image
trans-thalamic) keeps its single plane label from overriding the concept -> plane mapping learnt
on fully labelled data.

Example:
    >>> from pcbm.models import build_model
    >>> from pcbm.data import open_dataset
    >>> info = refit_decision(build_model("tiny"), [open_dataset("phantom:n=16,size=64")], 16, steps=5)
    >>> info["n"]
    16
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from pcbm.concepts import PLANE_NAMES
from pcbm.data import SampleDataset
from pcbm.models.inference import run_model


@torch.no_grad()
def collect_concepts(model: torch.nn.Module, dataset: SampleDataset, limit: int, batch_size: int = 16,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(concept_inputs (N, P), plane targets (N,)) of up to ``limit`` plane-labelled samples."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g).tolist()[:limit]
    xs, ys = [], []
    for start in range(0, len(order), batch_size):
        samples = [dataset[i] for i in order[start : start + batch_size]]
        samples = [s for s in samples if s.plane in PLANE_NAMES]
        if not samples:
            continue
        out, _ = run_model(model, [s.image for s in samples], [s.pixel_spacing_mm for s in samples])
        xs.append(out.concept_inputs.float().cpu())
        ys.append(torch.tensor([PLANE_NAMES.index(s.plane) for s in samples]))
    if not xs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(xs), torch.cat(ys)


def refit_decision(model: torch.nn.Module, datasets: Sequence[SampleDataset], per_source: int, steps: int = 500,
                   lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0,
                   source_weights: Sequence[float] | None = None) -> dict[str, float]:
    """Refit ``model.decision`` in place on predicted concepts of ``per_source`` samples per dataset.

    ``source_weights`` (one per dataset, default 1) weight each of that source's samples in the loss.

    Returns:
        {"n": samples used, "train_accuracy": accuracy on them after fitting, "loss": final loss}.
    """
    model.eval()
    sw = list(source_weights) if source_weights is not None else [1.0] * len(datasets)
    if len(sw) != len(datasets):
        raise ValueError(f"got {len(sw)} source weights for {len(datasets)} datasets")
    parts = [collect_concepts(model, ds, per_source, seed=seed) for ds in datasets]
    x = torch.cat([p[0] for p in parts if len(p[1])])
    y = torch.cat([p[1] for p in parts if len(p[1])])
    weight = torch.cat([torch.full((len(p[1]),), float(w)) for p, w in zip(parts, sw, strict=True) if len(p[1])])
    decision = model.decision
    device = next(decision.parameters()).device
    x, y, weight = x.to(device), y.to(device), weight.to(device) / weight.sum()
    decision.train()
    opt = torch.optim.Adam(decision.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss = torch.tensor(0.0)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = (F.cross_entropy(decision(x), y, reduction="none") * weight).sum()
            loss.backward()
            opt.step()
            sched.step()
    decision.eval()
    with torch.no_grad():
        acc = float((decision(x).argmax(1) == y).float().mean())
    return {"n": int(len(y)), "train_accuracy": acc, "loss": float(loss.detach())}
