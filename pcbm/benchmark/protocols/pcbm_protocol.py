"""PCBM with the benchmark's encoder: pcbm's own model configs (``pcbm.models``) with the backbone as
the segmenter's segmentation_models_pytorch encoder (``tu-<timm name>`` for timm CNNs, ``sononet16``
for SonoNet-16), trained by pcbm's own LightningModule (sequential mode) — and its concept-free twin
(``family="concept_free"``: the same encoder, pooled, a plane head).

ViT backbones are **not supported** here: pcbm's registered segmenter architectures are smp's CNN
decoders (Unet, FPN, …), and a ViT needs smp's DPT, which pcbm.models does not configure yet. The
study's table says so for those rows rather than running something else under their name.
"""

from __future__ import annotations

import dataclasses

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pcbm.benchmark.protocols.common import Scale
from pcbm.benchmark.zoo import BackboneSpec
from pcbm.concepts import PLANE_NAMES
from pcbm.data.base import SampleDataset, Subset


def unsupported_reason(spec: BackboneSpec) -> str | None:
    """Why this backbone cannot be a PCBM encoder, or None when it can."""
    if spec.smp_encoder is None:
        return (f"{spec.name} is a ViT: pcbm's segmenters are smp CNN decoders; a ViT encoder needs smp DPT, "
                "not configured in pcbm.models" if spec.is_vit else f"{spec.name} has no smp encoder")
    return None


def model_config(spec: BackboneSpec, family: str, size: int, checkpoint: str | None):  # noqa: ANN201
    """pcbm's ``tiny`` config (3 encoder stages, a small decoder) with this encoder, at ``size``."""
    from pcbm.models.config import get_model_config

    weights = checkpoint
    if spec.smp_encoder == "sononet16" and checkpoint is None:
        from pcbm.errors import InputError
        from pcbm.models.sononet import find_weights

        try:
            weights = str(find_weights()) and "sononet16"
        except InputError:
            weights = None
    cfg = get_model_config("tiny", encoder=spec.smp_encoder, input_size=size, family=family,
                           encoder_weights_path=None if weights == "random" else weights)
    return dataclasses.replace(cfg, name=f"bench_{family}_{spec.name}")


class _Cached(Dataset):
    """Encoded samples (pcbm.training.data.encode_sample at ``size``), each built once."""

    def __init__(self, ds: SampleDataset, size: int) -> None:
        self.ds, self.size = ds, size
        self._memo: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        from pcbm.training.data import encode_sample

        if i not in self._memo:
            self._memo[i] = encode_sample(self.ds[i], self.size)
        return self._memo[i]


def train_pcbm(spec: BackboneSpec, family: str, ds: SampleDataset, train_idx: list[int], size: int, max_steps: int,
               scale: Scale, batch_size: int = 16, seed: int = 0, checkpoint: str | None = None):  # noqa: ANN201
    """A PCBM (``family="pcbm"``) or its concept-free twin trained on ``ds[train_idx]``; CPU, eval mode."""
    from pcbm.models import build_model
    from pcbm.training.data import collate
    from pcbm.training.module import PCBMTrainingModule

    L.seed_everything(seed, workers=True, verbose=False)
    model = build_model(model_config(spec, family, size, checkpoint))
    data = _Cached(Subset(ds, train_idx), size)
    loader = DataLoader(data, batch_size=min(batch_size, len(data)), shuffle=True, collate_fn=collate,
                        drop_last=len(data) > batch_size, generator=torch.Generator().manual_seed(seed))
    scale.trainer(max_steps).fit(PCBMTrainingModule(model, mode="sequential"), loader)
    return model.cpu().eval()


@torch.no_grad()
def plane_probs(model: torch.nn.Module, ds: SampleDataset, indices: list[int], size: int, batch: int = 32) -> np.ndarray:
    """(N, len(PLANE_NAMES)) plane probabilities of ``ds[indices]``."""
    from pcbm.training.data import collate

    loader = DataLoader(_Cached(Subset(ds, indices), size), batch_size=batch, collate_fn=collate)
    out = [model(b["image"], long_side=b["long_side"]).plane_probs.float().numpy() for b in loader]
    return np.concatenate(out) if out else np.zeros((0, len(PLANE_NAMES)), np.float32)
