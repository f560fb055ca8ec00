"""The LightningModule: receives a built model, owns the losses, metrics and optimiser.

Training modes (Koh et al., "Concept Bottleneck Models", ICML 2020):

* ``independent`` — each stage learns from ground-truth inputs: the property head reads the true
  masks (where labelled; the segmenter's detached prediction fills unlabelled channels) and the
  decision reads the true property values (likewise). No gradient crosses a stage boundary.
* ``sequential`` — each stage learns from the *previous stage's predictions*, detached: the
  property head reads the predicted masks, the decision the predicted properties. (The stages are
  trained concurrently rather than one after another, so a run is one pass; the later stages see
  the earlier stages' predictions as they improve.)
* ``joint`` — end to end: predictions flow with gradients, loss = weighted sum of the stage losses.

A model family without concepts (the concept-free baseline) trains its plane + standard heads only.

Example:
    >>> from pcbm.models import build_model
    >>> module = PCBMTrainingModule(build_model("tiny"), mode="joint")
    >>> module.mode
    'joint'
"""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import BinaryAccuracy, MulticlassF1Score, MulticlassRecall

from pcbm.concepts import PLANE_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.errors import InputError
from pcbm.models.pcbm import PCBM
from pcbm.models.property_head import BINARY_INDEX
from pcbm.training.config import MODES
from pcbm.training.losses import (
    LossWeights,
    box_loss,
    plane_loss,
    presence_loss,
    property_loss,
    segmentation_loss,
    standard_loss,
)

PCT_START = 0.1  # share of the one-cycle schedule spent warming up (at least 1.5 steps: see _pct_start)


def _pct_start(steps: int) -> float:
    """PCT_START, raised for short runs: torch's OneCycleLR divides by zero when pct_start * steps is 1
    (a 10-step run) and warms up over a negative span below that."""
    return max(PCT_START, 1.5 / steps)


class PCBMTrainingModule(L.LightningModule):
    """Losses, metrics and optimiser around a model of a trainable family (a PCBM, the concept-free baseline).

    Args:
        model: a built :class:`~pcbm.models.FamilyModel` whose family is trainable.
        mode: independent, sequential or joint.
        lr, weight_decay: AdamW settings (one-cycle schedule over the run's steps).
        weights: loss weights.
        freeze_encoder: keep the family's encoder (the segmenter's, the baseline's own) as it is: no gradient, and its
            BatchNorm layers stay in eval mode so their running statistics do not drift either.
        freeze_batchnorm: every BatchNorm layer stays in eval mode (its running statistics are kept;
            its weights still learn): fine-tuning on a few similar images otherwise re-estimates them
            from those batches.
    """

    def __init__(self, model: nn.Module, mode: str = "sequential", lr: float = 2e-3, weight_decay: float = 1e-4,
                 weights: LossWeights | None = None, freeze_encoder: bool = False, freeze_batchnorm: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown training mode {mode!r}; choose {', '.join(MODES)}")
        model.family.require_trainable()
        self.model, self.mode, self.lr, self.weight_decay = model, mode, lr, weight_decay
        self.weights = weights or LossWeights()
        self.freeze_encoder, self.freeze_batchnorm = freeze_encoder, freeze_batchnorm
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        self._keep_frozen_in_eval()
        self.save_hyperparameters({"mode": mode, "lr": lr, "weight_decay": weight_decay, "freeze_encoder": freeze_encoder,
                                   "freeze_batchnorm": freeze_batchnorm, **asdict(self.weights)})
        k = len(PLANE_NAMES)
        self.val_f1 = MulticlassF1Score(k, average="macro", ignore_index=-1)
        self.val_bacc = MulticlassRecall(k, average="macro", ignore_index=-1)
        self.val_prop = BinaryAccuracy(ignore_index=-1)
        self.val_std = BinaryAccuracy(ignore_index=-1)
        self._dice_sum = torch.zeros(len(VISUAL_CONCEPT_NAMES))
        self._dice_n = torch.zeros(len(VISUAL_CONCEPT_NAMES))

    @property
    def encoder(self) -> nn.Module:
        """The image encoder the model's family names: the segmenter's (PCBM) or the baseline's own."""
        path = self.model.family.encoder
        if path is None:
            raise InputError(f"model family {self.model.family.name!r} names no encoder to freeze")
        return self.model.get_submodule(path)

    def train(self, mode: bool = True) -> PCBMTrainingModule:
        super().train(mode)
        self._keep_frozen_in_eval()
        return self

    def _keep_frozen_in_eval(self) -> None:
        """Frozen parts stay in eval mode, so their BatchNorm running statistics stay those of the init run."""
        if getattr(self, "freeze_encoder", False):
            self.encoder.eval()
        if getattr(self, "freeze_batchnorm", False):
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    # ---- losses --------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(loss terms, predictions) for a batch; see the module docstring for what each mode feeds."""
        image = batch["image"]
        if not self.model.family.has_concepts:
            out = self.model(image)
            terms = {"plane": plane_loss(out.plane_logits, batch["plane"], batch.get("plane_set")),
                     "standard": standard_loss(out.standard_logit, batch["standard"])}
            return terms, {"plane_logits": out.plane_logits, "standard": out.standard}
        model: PCBM = self.model  # type: ignore[assignment]
        mask_logits = model.segmenter(image).float()  # (B, V, S, S)
        pred_masks = mask_logits.sigmoid()
        if self.mode == "joint":
            masks_in = pred_masks
        elif self.mode == "sequential":
            masks_in = pred_masks.detach()
        else:
            masks_in = torch.where(batch["mask_labelled"][:, :, None, None], batch["masks"], pred_masks.detach())
        prop_logits = model.property_head(masks_in, image)  # (B, P)
        values = model.property_values(prop_logits)
        if self.mode == "joint":
            values_in = values
        elif self.mode == "sequential":
            values_in = values.detach()
        else:
            values_in = torch.where(batch["prop_labelled"], batch["properties"], values.detach())
        x, _ = model.decision_input(values_in)
        plane_logits = model.decision(x).float()  # (B, K)
        terms = {
            "segmentation": segmentation_loss(mask_logits, batch["masks"], batch["mask_labelled"])
            + (box_loss(mask_logits, batch["masks"], batch["mask_box"]) if "mask_box" in batch else 0.0),
            "properties": property_loss(prop_logits, batch["properties"], batch["prop_labelled"]),
            "plane": plane_loss(plane_logits, batch["plane"], batch.get("plane_set")),
        }
        if "presence" in batch:
            terms["presence"] = presence_loss(mask_logits, batch["presence"])
        return terms, {"masks": pred_masks, "values": values, "plane_logits": plane_logits}

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        w = asdict(self.weights)
        return sum(w[k] * v for k, v in terms.items())  # type: ignore[return-value]

    # ---- Lightning hooks -----------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms, _ = self.losses(batch)
        loss = self.total(terms)
        b = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=b)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        terms, pred = self.losses(batch)
        b = batch["image"].shape[0]
        self.log("val/loss", self.total(terms), prog_bar=True, batch_size=b)
        plane = batch["plane"]
        if bool((plane >= 0).any()):
            self.val_f1.update(pred["plane_logits"], plane)
            self.val_bacc.update(pred["plane_logits"], plane)
        if "masks" in pred:
            self._update_dice(pred["masks"], batch["masks"], batch["mask_labelled"])
            labelled = batch["prop_labelled"][:, BINARY_INDEX]
            target = torch.where(labelled, batch["properties"][:, BINARY_INDEX], torch.full_like(labelled, -1, dtype=torch.float))
            self.val_prop.update(pred["values"][:, BINARY_INDEX], target.long())
            out = self.model.from_values(pred["values"])  # standardness by the ontology's criteria
            self.val_std.update(out.standard.long(), batch["standard"])
        else:
            self.val_std.update(pred["standard"].long(), batch["standard"])

    def _update_dice(self, pred: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> None:
        hard = (pred > 0.5).float()
        inter = (hard * target).sum((2, 3))
        denom = hard.sum((2, 3)) + target.sum((2, 3))
        present = labelled & (target.sum((2, 3)) > 0)  # Dice over images where the structure is present
        dice = 2 * inter / denom.clamp_min(1e-6)
        self._dice_sum += torch.where(present, dice, torch.zeros_like(dice)).sum(0).cpu()
        self._dice_n += present.sum(0).cpu()

    def on_validation_epoch_end(self) -> None:
        for name, metric in (("plane_macro_f1", self.val_f1), ("plane_balanced_accuracy", self.val_bacc),
                             ("property_accuracy", self.val_prop), ("standard_accuracy", self.val_std)):
            if metric.update_count:
                self.log(f"val/{name}", metric.compute(), prog_bar=name == "plane_macro_f1")
            metric.reset()
        for i, name in enumerate(VISUAL_CONCEPT_NAMES):
            if self._dice_n[i] > 0:
                self.log(f"val/dice_{name}", self._dice_sum[i] / self._dice_n[i], prog_bar=name == "head")
        self._dice_sum.zero_()
        self._dice_n.zero_()

    def configure_optimizers(self):  # type: ignore[override]
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        steps = int(self.trainer.estimated_stepping_batches) if self.trainer else 0
        if steps <= 1:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=_pct_start(steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_start(self) -> None:
        """A run resumed with another --max-steps: stretch the restored one-cycle schedule to the new total."""
        sched = self.lr_schedulers()
        steps = int(self.trainer.estimated_stepping_batches)
        if isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and sched.total_steps != steps > self.global_step:
            dummy = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=self.lr)
            ref = torch.optim.lr_scheduler.OneCycleLR(dummy, max_lr=self.lr, total_steps=steps, pct_start=_pct_start(steps))
            sched.total_steps, sched._schedule_phases = ref.total_steps, ref._schedule_phases
