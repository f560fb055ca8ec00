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

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcbm.concepts import PLANE_NAMES
from pcbm.data import SampleDataset
from pcbm.models.inference import run_model


@torch.no_grad()
def collect_concepts(model: torch.nn.Module, dataset: SampleDataset, limit: int, batch_size: int = 16,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(concept_inputs (N, P), allowed planes (N, K) bool) of up to ``limit`` samples with a plane or a
    plane-group label (a group allows each of its planes: :func:`pcbm.training.data.plane_set`)."""
    from pcbm.training.data import plane_set

    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g).tolist()[:limit]
    xs, ys = [], []
    for start in range(0, len(order), batch_size):
        samples = [dataset[i] for i in order[start : start + batch_size]]
        sets = [(s, plane_set(s)) for s in samples]
        sets = [(s, a) for s, a in sets if a.any()]
        if not sets:
            continue
        out, _ = run_model(model, [s.image for s, _ in sets], [s.pixel_spacing_mm for s, _ in sets])
        xs.append(out.concept_inputs.float().cpu())
        ys.append(torch.as_tensor(np.stack([a for _, a in sets])))
    if not xs:
        return torch.zeros(0, 0), torch.zeros(0, len(PLANE_NAMES), dtype=torch.bool)
    return torch.cat(xs), torch.cat(ys)


def refit_decision(model: torch.nn.Module, datasets: Sequence[SampleDataset], per_source: int, steps: int = 500,
                   lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0,
                   source_weights: Sequence[float] | None = None) -> dict[str, float]:
    """Refit ``model.decision`` in place on predicted concepts of ``per_source`` samples per dataset.

    ``source_weights`` (one per dataset, default 1) weight each of that source's samples in the loss.

    Returns:
        {"n": samples used, "train_accuracy": accuracy on them after fitting, "loss": final loss}.
    """
    model.family.require_concepts("refitting the decision on concepts")
    model.eval()
    sw = list(source_weights) if source_weights is not None else [1.0] * len(datasets)
    if len(sw) != len(datasets):
        raise ValueError(f"got {len(sw)} source weights for {len(datasets)} datasets")
    parts = [collect_concepts(model, ds, per_source, seed=seed) for ds in datasets]
    if not any(len(p[1]) for p in parts):
        return {"n": 0, "train_accuracy": math.nan, "loss": math.nan}
    x = torch.cat([p[0] for p in parts if len(p[1])])
    y = torch.cat([p[1] for p in parts if len(p[1])])
    weight = torch.cat([torch.full((len(p[1]),), float(w)) for p, w in zip(parts, sw, strict=True) if len(p[1])])
    if not float(weight.sum()) > 0:
        raise ValueError("every source with plane-labelled samples has weight 0; give one a positive weight")
    decision = model.decision
    device = next(decision.parameters()).device
    x, y, weight = x.to(device), y.to(device), weight.to(device)
    loss = fit_decision(decision, x, y, weight, steps, lr, weight_decay)
    with torch.no_grad():
        acc = float(y.gather(1, decision(x).argmax(1, keepdim=True)).float().mean())
    return {"n": int(len(y)), "train_accuracy": acc, "loss": loss}


def fit_decision(decision: torch.nn.Module, x: torch.Tensor, allowed: torch.Tensor, weight: torch.Tensor,
                 steps: int = 500, lr: float = 0.05, weight_decay: float = 1e-4) -> float:
    """Fit ``decision`` full-batch (Adam, cosine schedule) on concept vectors ``x`` (N, P) to plane sets
    ``allowed`` (N, K) bool, each item weighted by ``weight`` (N,) (normalised here): the weighted
    :func:`~pcbm.training.losses.set_nll`. Leaves it in eval mode; returns the final loss."""
    from pcbm.training.losses import set_nll

    weight = weight / weight.sum()
    decision.train()
    opt = torch.optim.Adam(decision.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss = torch.tensor(0.0)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = (set_nll(decision(x), allowed) * weight).sum()
            loss.backward()
            opt.step()
            sched.step()
    decision.eval()
    return float(loss.detach())


RUN_FILES = ("config.json", "MODEL_CARD.md", "training_log.csv")  # what a refitted run keeps of its source


def source_weights(weights: Sequence[float] | None, n_sources: int, where: str = "--weights") -> list[float] | None:
    """Checked per-source weights: finite, >= 0, not all 0, one per data source (None stays None)."""
    from pcbm.errors import InputError
    from pcbm.validate import finite

    if weights is None:
        return None
    sw = [finite(w, where, nonnegative=True) for w in weights]
    if len(sw) != n_sources:
        raise InputError(f"{where} has {len(sw)} weights for {n_sources} data sources; give one per --data")
    if not any(sw):
        raise InputError(f"{where} are all 0; give at least one source a positive weight")
    return sw


def refit_run(run: str | Path, data: Sequence[str], out: str | Path, per_source: int = 2000, steps: int = 500,
              seed: int = 0, weights: Sequence[float] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Refit the decision of the run ``run`` on ``data`` and write the result as the run ``out``.

    ``out`` gets the source's config.json, MODEL_CARD.md and training_log.csv, the refitted
    ``model.pt`` and ``decision_refit.json``. It is built in a hidden sibling folder and renamed into
    place when complete; a non-empty ``out`` is refused unless ``overwrite`` (``out`` may be ``run``).
    Everything is checked before the model is loaded.

    Returns:
        the contents of ``decision_refit.json``.

    Raises:
        InputError: bad weights, counts, data, run or output folder.
    """
    import shutil
    import time

    from pcbm._io import check_output_dir, staged_dir, write_json
    from pcbm.data import open_dataset
    from pcbm.errors import InputError
    from pcbm.models import load_model, save_model

    if not data:
        raise InputError("give at least one --data SPEC")
    for name, v in (("--per-source", per_source), ("--steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must be an integer >= 1, got {v!r}")
    sw = source_weights(weights, len(data))
    out = check_output_dir(out, "--out", overwrite=overwrite)
    model, info = load_model(run)
    model.family.require_concepts("refitting the decision on concepts")
    datasets = [open_dataset(spec, split="train") for spec in data]
    t0 = time.perf_counter()
    result: dict[str, Any] = refit_decision(model, datasets, per_source, steps=steps, seed=seed, source_weights=sw)
    if result["n"] == 0:
        raise InputError(f"no plane-labelled samples in {', '.join(data)}: nothing to refit the decision on")
    if not all(math.isfinite(v) for v in (result["loss"], result["train_accuracy"])):
        raise InputError(f"the refit of {run} diverged (loss {result['loss']}); nothing written")
    result.update(seconds=round(time.perf_counter() - t0, 1), data=list(data), weights=sw, per_source=per_source,
                  refitted_from=str(info.get("run_dir", run)))
    src = Path(info["run_dir"])
    with staged_dir(out, overwrite=overwrite) as tmp:
        for name in RUN_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        save_model(model, tmp)
        write_json(tmp / "decision_refit.json", result)
    return result
