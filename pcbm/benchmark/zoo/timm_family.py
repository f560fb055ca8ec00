"""timm backbones: ResNet-18/50, EfficientNetV2-S, ConvNeXt-T, ViT-T/S/B and DINOv3 ViT-S/B.

A checkpoint is a timm state dict (as saved by ``torch.save(model.state_dict())`` or downloaded from
the model's hub page by the user); it goes through timm's own ``checkpoint_filter_fn`` of that
architecture (position embeddings resampled to another input size) before loading.
"""

from __future__ import annotations

import sys
from typing import Any

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family

_TINY_VIT = {"embed_dim": 32, "depth": 2, "num_heads": 2}
_DINOV3_MEAN, _DINOV3_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

for _name, _arch, _kw in (
    ("resnet18", "resnet18", {}),
    ("resnet50", "resnet50", {}),
    ("efficientnetv2_s", "efficientnetv2_s", {}),
    ("convnext_tiny", "convnext_tiny", {}),
):
    register_backbone(BackboneSpec(
        _name, "timm", _arch, smp_encoder=f"tu-{_arch}",
        tiny={"resnet18": {"layers": [1, 1, 1, 1]}, "resnet50": {"layers": [1, 1, 1, 1]},
              "efficientnetv2_s": {"channel_multiplier": 0.25, "depth_multiplier": 0.25},
              "convnext_tiny": {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}}[_name],
        note="timm architecture; ImageNet normalisation"))

for _name, _arch in (("vit_tiny", "vit_tiny_patch16_224"), ("vit_small", "vit_small_patch16_224"),
                     ("vit_base", "vit_base_patch16_224")):
    register_backbone(BackboneSpec(_name, "timm", _arch, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pooling="token",
                                   is_vit=True, tiny=_TINY_VIT, note="timm ViT (augreg weights use mean = std = 0.5)"))

for _name, _arch in (("dinov3_vit_small", "vit_small_patch16_dinov3"), ("dinov3_vit_base", "vit_base_patch16_dinov3")):
    register_backbone(BackboneSpec(_name, "timm", _arch, input_size=(256, 256), mean=_DINOV3_MEAN, std=_DINOV3_STD,
                                   pooling="token", is_vit=True, tiny={"embed_dim": 32, "depth": 2, "num_heads": 2},
                                   note="DINOv3 (Meta, DINOv3 licence): load the user's timm-format weights"))


def create(spec: BackboneSpec, pooling: str, input_size: tuple[int, int], overrides: dict[str, Any]) -> Any:
    """A timm model with no classifier, pooling as asked, at ``input_size`` where the architecture takes one."""
    import timm

    kwargs = dict(overrides)
    if spec.is_vit:
        kwargs.setdefault("img_size", input_size)
        kwargs["global_pool"] = "token" if pooling == "token" else "avg"
    elif pooling == "token":
        from pcbm.errors import InputError

        raise InputError(f"backbone {spec.name} is a CNN: it has no CLS token; use --pooling avg")
    return timm.create_model(spec.arch, pretrained=False, num_classes=0, **kwargs)


def load_timm_checkpoint(model: Any, sd: dict[str, Any], what: str, path: str) -> None:
    """Run timm's filter of the model's module (if any) on ``sd`` and load it strictly (heads excepted)."""
    from pcbm.benchmark.zoo.encoder import load_into

    filt = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filt is not None:
        sd = filt(sd, model)
    load_into(model, sd, what, path)


@register_family("timm")
def build_timm(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
               overrides: dict[str, Any], config: str | None = None) -> Any:
    from pcbm.benchmark.zoo.encoder import read_state_dict, strip_prefixes

    model = create(spec, pooling, input_size, overrides)
    if checkpoint:
        sd = strip_prefixes(read_state_dict(checkpoint, spec.name), ("module.", "model.", "backbone."))
        load_timm_checkpoint(model, sd, spec.name, checkpoint)
    return model
