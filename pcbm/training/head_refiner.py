"""Training and evaluating the head refiner (:mod:`pcbm.models.head_refiner`) on head-labelled data.

Training crops come from the *true* head mask, jittered (scale 0.85–1.35, shift ±12 % of the side,
±20° turn, flips) so that at inference any reasonable plane-model mask gives a crop the refiner has
seen; a share (``whole_frame``) are the whole frame, so the refiner can find the head by itself; gain, gamma, noise and blur as in :func:`pcbm.training.data.ultrasound_augment`. Loss: BCE +
soft Dice. Only the subject-level training split (split seed 0 unless told) is read, so
``SPEC?split=val`` stays unseen.

Example:
    >>> cfg = RefinerTrainConfig(data=("hc18:../shared/data/hc18",), out="runs/head", max_steps=2)
    >>> run = train_refiner(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pcbm.errors import InputError
from pcbm.models.head_refiner import HeadRefiner, RefinerConfig, crop, frame_box, head_box, jitter_box
from pcbm.training.config import RefinerTrainConfig


def _augment(seed: int) -> Callable[..., dict]:
    import albumentations as A

    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.25, p=0.6),
        A.RandomGamma(gamma_limit=(75, 135), p=0.4),
        A.OneOf([A.GaussNoise(std_range=(0.01, 0.05)),
                 A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=False, elementwise=True)], p=0.5),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.2),
        A.CoarseDropout(num_holes_range=(1, 3), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15),
                        fill=0, p=0.2),  # a weak stretch of skull echo
    ], seed=seed)


class HeadCrops(Dataset):
    """Jittered (image, head mask) crops of the head-labelled samples of a SampleDataset."""

    def __init__(self, samples: Any, size: int, seed: int, train: bool = True, whole_frame: float = 0.0):
        self.samples, self.size, self.train, self.whole_frame = samples, size, train, whole_frame
        self.seed = seed
        self.augment = _augment(seed) if train else None
        self._draws = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.samples[index]
        mask = s.masks.get("head")
        if mask is None or not np.asarray(mask).any():
            raise InputError(f"sample {s.id}: no head mask to train the head refiner on")
        box = head_box(mask)
        assert box is not None
        if self.train:
            rng = np.random.default_rng([self.seed, index, self._draws])
            self._draws += 1
            if rng.random() < self.whole_frame:
                box = jitter_box(frame_box(np.asarray(s.image).shape), rng, scale=(0.95, 1.1), shift=0.04, angle=8.0)
            else:
                box = jitter_box(box, rng)
        img = crop(s.image, box, self.size)
        m = crop(np.asarray(mask).astype(np.float32), box, self.size)
        if self.augment is not None:
            out = self.augment(image=img, mask=m)
            img, m = out["image"], out["mask"]
        return {"image": torch.from_numpy(np.ascontiguousarray(img, np.float32))[None],
                "mask": torch.from_numpy(np.ascontiguousarray(m > 0.5, np.float32))[None]}


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
    p = torch.sigmoid(logits.float())
    dice = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def _module(model: HeadRefiner, lr: float, steps: int) -> Any:
    import lightning as L

    class _Refine(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
            loss = _loss(self.model(batch["image"]), batch["mask"])
            self.log("train_loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
            return loss

        def configure_optimizers(self) -> Any:
            opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 2), pct_start=0.15)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return _Refine()


def evaluate_refiner(refiner: HeadRefiner, samples: Any,
                     coarse: Callable[[Any], np.ndarray | None] | str = "true", limit: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """HC error (mm), its flags and head Dice of the refined masks at the original resolution.

    ``coarse`` says where the crop is taken: ``"true"`` around the true head mask (an upper bound on
    localisation), ``"frame"`` where the refiner finds the head on the whole frame itself (no other
    model involved), or a function ``coarse(sample)`` giving the mask (a plane model's prediction).
    HC is measured as ``predict`` measures it (:func:`pcbm.concepts.measure.measure`: the robust
    ellipse, flagged when unreliable); figures from :func:`pcbm.training.evaluation.hc_summary`."""
    from pcbm.training.evaluation import hc_of_mask, hc_summary

    errors, true_hc, ok, dices, rows = [], [], [], [], []
    n = len(samples) if limit is None else min(limit, len(samples))
    for i in range(n):
        s = samples[i]
        gt = np.asarray(s.masks.get("head")) > 0 if s.masks.get("head") is not None else None
        if coarse == "frame":
            prob = refiner.refine(s.image)
        else:
            around = gt if coarse == "true" else coarse(s)  # type: ignore[operator]
            prob = refiner.refine(s.image, around) if around is not None else None
        if progress is not None:
            progress(i + 1, n)
        pred = prob > 0.5 if prob is not None else np.zeros(np.asarray(s.image).shape[:2], bool)
        hc_true = s.properties.get("hc_mm")
        row: dict[str, Any] = {"id": s.id}
        if prob is None:
            row["error"] = "no head found"
        if hc_true is not None and s.pixel_spacing_mm:
            hc, reliable = hc_of_mask(pred.astype(np.float32), s.pixel_spacing_mm)
            row.update(hc_mm=hc, hc_true_mm=float(hc_true), reliable=reliable)
            errors.append(abs(hc - float(hc_true)))
            true_hc.append(float(hc_true))
            ok.append(reliable)
        if gt is not None and gt.any():
            row["dice"] = 2 * float((pred & gt).sum()) / float(pred.sum() + gt.sum())
            dices.append(row["dice"])
        rows.append(row)
    out: dict[str, Any] = {"n": n, "hc_mae_mm": float(np.mean(errors)) if errors else None,
                           "dice": float(np.mean(dices)) if dices else None}
    if errors:
        out.update(hc_summary(np.array(errors), np.array(true_hc), np.array(ok)))
    out["rows"] = rows
    return out


def train_refiner(cfg: RefinerTrainConfig, overwrite: bool = False) -> Path:
    """Train a head refiner on the training split of ``cfg.data``; write ``head_refiner.pt``,
    ``config.json`` and ``metrics.json`` (the validation split; the head found by the refiner itself on the
    whole frame, and crops around the true mask) into ``cfg.out``."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from torch.utils.data import ConcatDataset, DataLoader

    from pcbm._io import check_output_dir, jsonable, staged_dir, write_json
    from pcbm.data import open_dataset
    from pcbm.models.head_refiner import save_refiner
    from pcbm.training.trainer import quiet_lightning, resolve_precision

    out = Path(cfg.out)
    check_output_dir(out, "--out", overwrite=overwrite)
    from pcbm.training.config import check_encoder

    check_encoder(cfg.encoder)  # an unknown encoder: one line before the data load, not a KeyError after it
    torch.set_num_threads(cfg.threads)
    quiet_lightning(cfg.progress)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trains = [open_dataset(spec, split="train", val_fraction=cfg.val_fraction, seed=cfg.split_seed) for spec in cfg.data]
    vals = [open_dataset(spec, split="val", val_fraction=cfg.val_fraction, seed=cfg.split_seed) for spec in cfg.data]
    crops = ConcatDataset([HeadCrops(ds, cfg.size, cfg.seed + k, whole_frame=cfg.whole_frame) for k, ds in enumerate(trains)])
    loader = DataLoader(crops, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers, drop_last=True,
                        persistent_workers=cfg.workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    model = HeadRefiner(RefinerConfig(encoder=cfg.encoder, size=cfg.size))
    precision = resolve_precision(cfg.precision)
    trainer = L.Trainer(max_steps=cfg.max_steps, max_epochs=-1, accelerator="auto", devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=cfg.progress,
                        callbacks=[TQDMProgressBar(refresh_rate=10)] if cfg.progress else [],
                        enable_model_summary=False, max_time={"minutes": cfg.max_time_min} if cfg.max_time_min else None)
    t0 = time.perf_counter()
    trainer.fit(_module(model, cfg.lr, cfg.max_steps), train_dataloaders=loader)
    wall = time.perf_counter() - t0
    model = model.cpu().eval()
    metrics = {f"{spec} ({start})": evaluate_refiner(model, va, coarse=start, limit=cfg.eval_limit)
               for spec, va in zip(cfg.data, vals, strict=True) for start in ("frame", "true")}
    meta = {"train": dataclasses.asdict(cfg) | {"data": list(cfg.data)}, "steps": int(trainer.global_step),
            "wall_time_s": round(wall, 1), "precision": precision,
            "train_images": {spec: len(tr) for spec, tr in zip(cfg.data, trains, strict=True)},
            "split": f"subject-level, val_fraction {cfg.val_fraction}, split seed {cfg.split_seed}: "
                     "validation subjects never trained on"}
    with staged_dir(out, overwrite=overwrite) as stage:
        save_refiner(model, stage, meta)
        write_json(stage / "config.json", jsonable(meta))
        write_json(stage / "metrics.json", jsonable({k: {m: v for m, v in r.items() if m != "rows"}
                                                     for k, r in metrics.items()}))
        write_json(stage / "per_image.json", jsonable({k: r["rows"] for k, r in metrics.items()}))
    return out

