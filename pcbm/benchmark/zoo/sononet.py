"""SonoNet-16 (Baumgartner et al., 2017): pcbm's own implementation (:mod:`pcbm.models.sononet`), reused.

The 13 conv blocks (:class:`~pcbm.models.sononet.SonoNetEncoder`) with global average pooling of the
last stage (128 features). Input: one channel, 224 × 288 (a plain resize, not a letterbox), the
per-image standardisation × 255 done inside the encoder, as the authors trained it. Weights: the
authors' ``SonoNet16.npz`` (``$PCBM_SONONET16_WEIGHTS`` or ../shared/weights/sononet16) by default, or
a ``.npz`` of the same layout; ``random`` as the checkpoint gives random init.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family
from pcbm.errors import InputError

register_backbone(BackboneSpec(
    "sononet16", "sononet", "sononet16", input_size=(224, 288), mean=None, std=None, in_chans=1, pooling="avg",
    smp_encoder="sononet16", resize="stretch",
    note="the authors' real-data weights (Apache-2.0) from ../shared/weights/sononet16 when present"))


class SonoNetFeatures(nn.Module):
    """SonoNet-16's conv blocks, last stage averaged: (B, 1, H, W) -> (B, 128)."""

    def __init__(self) -> None:
        super().__init__()
        from pcbm.models.sononet import SonoNetEncoder

        self.encoder = SonoNetEncoder(depth=4)
        self.num_features = self.encoder.out_channels[-1]

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.encoder(x)[-1].mean((2, 3))  # (B, 128)


@register_family("sononet")
def build_sononet(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
                  overrides: dict[str, Any], config: str | None = None) -> Any:
    from pcbm.models.sononet import find_weights

    if pooling == "token":
        raise InputError("sononet16 is a CNN: it has no CLS token; use --pooling avg")
    model = SonoNetFeatures()
    if checkpoint == "random":
        return model
    if checkpoint is None:
        try:
            checkpoint = str(find_weights())
        except InputError:
            return model  # no weights on this machine: random init (the run's table says which)
    model.encoder.load_weights(checkpoint)
    model.weights = checkpoint
    return model
