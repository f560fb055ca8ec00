"""UltraSAM (Meyer et al., 2024): SAM ViT-B trained on ultrasound, as timm ``samvit_base_patch16``.

A checkpoint's image-encoder keys are remapped onto timm's names (:func:`remap_sam_keys`): the
segment-anything form (``image_encoder.blocks.0.mlp.lin1``) and the MMDetection form UltraSAM is
trained in (``backbone.layers.0.ffn.layers.0.0``, ``patch_embed.projection``, ``ln1``); prompt
encoder and mask decoder tensors are dropped. The MMDetection names are those of mmdet's SAM
``ViTSAM`` backbone as assumed here (checked on tiny renamed models, not on the released file).
Input: 1024 px, ImageNet mean / std, as SAM.
"""

from __future__ import annotations

from typing import Any

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family

PREFIXES = ("module.", "model.", "image_encoder.", "backbone.")
DROP = ("prompt_encoder.", "mask_decoder.", "decode_head.", "roi_head.", "rpn_head.", "head.")
RENAMES = (  # (source, timm) substrings, in order
    ("channel_reduction.conv1.", "neck.0."), ("channel_reduction.ln1.", "neck.1."),
    ("channel_reduction.conv2.", "neck.2."), ("channel_reduction.ln2.", "neck.3."),
    ("patch_embed.projection.", "patch_embed.proj."),
    (".ffn.layers.0.0.", ".mlp.fc1."),
    (".ffn.layers.1.", ".mlp.fc2."),
    (".mlp.lin1.", ".mlp.fc1."),
    (".mlp.lin2.", ".mlp.fc2."),
    (".ln1.", ".norm1."),
    (".ln2.", ".norm2."),
    ("layers.", "blocks."),
)

register_backbone(BackboneSpec(
    "ultrasam", "ultrasam", "samvit_base_patch16", input_size=(1024, 1024), pooling="avg", is_vit=True,
    tiny={"embed_dim": 32, "depth": 2, "num_heads": 2, "window_size": 2, "global_attn_indexes": (1,),
          "neck_chans": 16},
    note="UltraSAM weights are the user's; SAM ViT-B image encoder, keys remapped"))


def remap_sam_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """SAM / mmdet-SAM image-encoder keys -> timm ``samvit`` keys (other modules dropped).

    Example:
        >>> sorted(remap_sam_keys({"backbone.layers.0.ffn.layers.1.weight": 1, "mask_decoder.x": 2}))
        ['blocks.0.mlp.fc2.weight']
    """
    out = {}
    for k, v in sd.items():
        if k.startswith(DROP):
            continue
        for p in PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        if k.startswith(DROP):
            continue
        for a, b in RENAMES:
            k = k.replace(a, b)
        out[k] = v
    return out


@register_family("ultrasam")
def build_ultrasam(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
                   overrides: dict[str, Any], config: str | None = None) -> Any:
    import timm

    from pcbm.benchmark.zoo.encoder import load_into, read_state_dict
    from pcbm.errors import InputError

    if pooling == "token":
        raise InputError("ultrasam (SAM's encoder) has no CLS token; use --pooling avg")
    kw = dict(overrides)
    model = timm.create_model(spec.arch, pretrained=False, num_classes=0, img_size=input_size[0], **kw)
    if checkpoint:
        sd = remap_sam_keys(read_state_dict(checkpoint, spec.name))
        if "pos_embed" in sd and sd["pos_embed"].shape != model.pos_embed.shape:  # (1, H, W, C) grid: resize
            import torch.nn.functional as F

            pe = sd["pos_embed"].permute(0, 3, 1, 2)
            sd["pos_embed"] = F.interpolate(pe, size=model.pos_embed.shape[1:3], mode="bicubic",
                                            align_corners=False).permute(0, 2, 3, 1)
        load_into(model, sd, spec.name, checkpoint)
    return model
