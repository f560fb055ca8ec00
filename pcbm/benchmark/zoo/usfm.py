"""USFM (Jiao et al., 2024): a BEiT-B/16 ultrasound foundation model, timm ``beit_base_patch16_224``.

USFM's checkpoints keep BEiT's *shared* relative-position bias (one table,
``rel_pos_bias.relative_position_bias_table``); timm's BEiT has one table per block, so the shared
table is copied into every block before loading. Prefixes ``module.`` / ``backbone.`` / ``encoder.``
are stripped. Normalisation: ImageNet mean / std at 224 px, as USFM's fine-tuning code uses.
"""

from __future__ import annotations

from typing import Any

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family

SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"

register_backbone(BackboneSpec(
    "usfm", "usfm", "beit_base_patch16_224", pooling="avg", is_vit=True,
    tiny={"embed_dim": 32, "depth": 2, "num_heads": 2},
    note="USFM weights are the user's (a local .pth); BEiT-B/16 with a shared relative-position table"))


def unshare_rel_pos(sd: dict[str, Any], depth: int) -> dict[str, Any]:
    """``sd`` with a shared relative-position table copied into each of ``depth`` blocks (and the
    shared index dropped); a state dict without one is returned unchanged.

    Example:
        >>> import torch
        >>> out = unshare_rel_pos({SHARED_TABLE: torch.ones(3, 2)}, depth=2)
        >>> sorted(out)
        ['blocks.0.attn.relative_position_bias_table', 'blocks.1.attn.relative_position_bias_table']
    """
    if SHARED_TABLE not in sd:
        return dict(sd)
    out = {k: v for k, v in sd.items() if not k.startswith("rel_pos_bias.")}
    for i in range(depth):
        out.setdefault(f"blocks.{i}.attn.relative_position_bias_table", sd[SHARED_TABLE].clone())
    return out


@register_family("usfm")
def build_usfm(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
               overrides: dict[str, Any], config: str | None = None) -> Any:
    import timm

    from pcbm.benchmark.zoo.encoder import read_state_dict, strip_prefixes
    from pcbm.benchmark.zoo.timm_family import load_timm_checkpoint

    model = timm.create_model(spec.arch, pretrained=False, num_classes=0, img_size=input_size,
                              global_pool="token" if pooling == "token" else "avg", **overrides)
    if checkpoint:
        sd = strip_prefixes(read_state_dict(checkpoint, spec.name), ("module.", "backbone.", "encoder."))
        load_timm_checkpoint(model, unshare_rel_pos(sd, len(model.blocks)), spec.name, checkpoint)
    return model
