"""FetalCLIP (Maani et al., 2025): an open_clip ViT-L/14 CLIP trained on fetal ultrasound; the image tower.

Built from its JSON model configuration (open_clip's format: ``embed_dim``, ``vision_cfg``,
``text_cfg``; ``--model-config fetalclip=FetalCLIP_config.json``; without one, the ViT-L/14 layout
below) and a local checkpoint (``visual.*`` tensors are taken). open_clip is an optional extra
(``pip install 'pcbm[fetalclip]'``), imported only here. Input 224 px with CLIP's mean / std;
features are the projected image embedding; ``pooling`` sets the tower's ``pool_type`` (``tok``: the
CLS token, ``avg``: the mean of the patch tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family
from pcbm.errors import InputError

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
VIT_L14 = {"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14}}

register_backbone(BackboneSpec(
    "fetalclip", "fetalclip", "ViT-L-14", mean=CLIP_MEAN, std=CLIP_STD, pooling="token", is_vit=True,
    tiny={"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16}},
    note="FetalCLIP weights are the user's; open_clip (optional extra 'fetalclip')"))


def read_config(config: str | None, tiny: dict[str, Any]) -> dict[str, Any]:
    """The model config: the JSON file, else the tiny test layout when given, else ViT-L/14."""
    if config is None:
        return json.loads(json.dumps(tiny or VIT_L14))
    p = Path(config)
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the FetalCLIP config {p}: {e}") from None
    if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "embed_dim" not in cfg:
        raise InputError(f"{p} is not an open_clip model config (needs embed_dim and vision_cfg)")
    return cfg


@register_family("fetalclip")
def build_fetalclip(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
                    overrides: dict[str, Any], config: str | None = None) -> Any:
    from pcbm.errors import optional_import

    clip_model = optional_import("open_clip.model", "fetalclip", "fetalclip")
    CLIPVisionCfg, _build_vision_tower, resize_pos_embed = (  # noqa: N806 - open_clip's own names
        clip_model.CLIPVisionCfg, clip_model._build_vision_tower, clip_model.resize_pos_embed)
    from pcbm.benchmark.zoo.encoder import load_into, read_state_dict, strip_prefixes

    cfg = read_config(config, overrides)
    vision = dict(cfg["vision_cfg"])
    authors_size = int(vision.get("image_size", 224))
    vision["image_size"] = input_size[0]
    vision["pool_type"] = "tok" if pooling == "token" else "avg"
    try:
        tower = _build_vision_tower(int(cfg["embed_dim"]), CLIPVisionCfg(**vision))
    except TypeError as e:
        raise InputError(f"FetalCLIP vision_cfg not understood by open_clip: {e}") from None
    tower.num_features = int(cfg["embed_dim"])
    if checkpoint:
        sd = strip_prefixes(read_state_dict(checkpoint, spec.name), ("module.",))
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        if not sd:
            raise InputError(f"fetalclip checkpoint {checkpoint} has no visual.* tensors (the image tower)")
        if input_size[0] != authors_size and "positional_embedding" in sd:
            full = {"visual.positional_embedding": sd["positional_embedding"]}
            resize_pos_embed(full, _Holder(tower))
            sd["positional_embedding"] = full["visual.positional_embedding"]
        load_into(tower, sd, spec.name, checkpoint, ignore=())
    return tower


class _Holder:
    """What open_clip's resize_pos_embed reads: ``model.visual``."""

    def __init__(self, visual: Any) -> None:
        self.visual = visual
