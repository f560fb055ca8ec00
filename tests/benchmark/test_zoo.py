"""The zoo: every registered backbone builds as a tiny random network, is saved in the format its
authors publish, and loads back through the loader a user's checkpoint takes (same features)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from pcbm.benchmark.zoo import build_backbone, get_backbone, list_backbones
from pcbm.benchmark.zoo.ultrasam import RENAMES
from pcbm.benchmark.zoo.usfm import SHARED_TABLE
from pcbm.errors import InputError

HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None
NAMES = [n for n in list_backbones() if n not in ("mofo", "sononet16")]


def _authors_format(name: str, enc) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """The tiny network's weights written the way its authors' checkpoint is."""
    sd = {k: v.clone() for k, v in enc.net.state_dict().items()}
    family = get_backbone(name).family
    if family == "usfm":  # one shared relative-position table (blocks equal in USFM's checkpoints)
        tables = [k for k in sd if k.endswith("attn.relative_position_bias_table")]
        shared = sd[tables[0]]
        for k in tables:
            del sd[k]
        sd[SHARED_TABLE] = shared
        return {f"backbone.{k}": v for k, v in sd.items()}
    if family == "ultrasam":  # mmdet names, with a prompt encoder to drop
        out = {}
        for k, v in sd.items():
            for a, b in reversed(RENAMES):
                if b in k and not (b == "blocks." and "neck" in k):
                    k = k.replace(b, a)
            out[f"backbone.{k}"] = v
        out["prompt_encoder.point_embeddings.0.weight"] = torch.zeros(1, 4)
        return out
    if family == "fetalclip":  # the whole CLIP: visual.* and a text tower
        return {**{f"visual.{k}": v for k, v in sd.items()}, "token_embedding.weight": torch.zeros(3, 2)}
    return {"state_dict": sd}  # timm state dict in a training checkpoint


@pytest.mark.parametrize("name", NAMES)
def test_tiny_round_trip_through_the_users_loader(name: str, tmp_path) -> None:
    if get_backbone(name).family == "fetalclip" and not HAS_OPEN_CLIP:
        pytest.skip("open_clip not installed (pip install 'pcbm[fetalclip]')")
    enc = build_backbone(name, tiny=True, image_size=32).eval()
    if get_backbone(name).family == "usfm":  # USFM shares one table: make the blocks' tables equal and non-zero
        with torch.no_grad():
            t = torch.randn_like(enc.net.blocks[0].attn.relative_position_bias_table)
            for b in enc.net.blocks:
                b.attn.relative_position_bias_table.copy_(t)
    path = tmp_path / f"{name}.pth"
    torch.save(_authors_format(name, enc), path)
    config = None
    if get_backbone(name).family == "fetalclip":
        config = tmp_path / "FetalCLIP_config.json"
        config.write_text(json.dumps({**get_backbone(name).tiny, "text_cfg": {"width": 8}}))
    fresh = build_backbone(name, tiny=True, image_size=32, checkpoint=str(path), config=str(config) if config else None)
    fresh.eval()
    x = enc.prepare([np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)] * 2)
    with torch.no_grad():
        a, b = enc(x), fresh(x)
    assert a.shape == (2, enc.num_features)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, build_backbone(name, tiny=True, image_size=32).eval()(x))  # the file mattered


def test_a_checkpoint_of_another_architecture_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_backbone("resnet18", tiny=True).net.state_dict(), path)
    with pytest.raises(InputError, match=r"usfm checkpoint .*r18.pth does not fit"):
        build_backbone("usfm", tiny=True, image_size=32, checkpoint=str(path))
    with pytest.raises(InputError, match="not found"):
        build_backbone("resnet18", checkpoint=str(tmp_path / "none.pth"))


def test_sononet16_is_pcbms_own_and_reads_the_authors_npz(tmp_path) -> None:
    from pcbm.models import build_model
    from pcbm.models.sononet import SonoNetEncoder

    enc = build_backbone("sononet16", checkpoint="random", image_size=32)
    assert isinstance(enc.net.encoder, SonoNetEncoder) and enc.num_features == 128
    assert enc.input_size == (32, 48)  # the authors' 224 x 288 aspect
    full = build_model("sononet16")  # random SonoNet-16 saved in the authors' 75-array npz layout
    arrays = []
    for m in full.modules():
        if isinstance(m, torch.nn.Sequential) and len(m) and isinstance(m[0], torch.nn.Conv2d):
            bn = m[1]
            torch.nn.init.normal_(bn.running_mean)
            arrays += [m[0].weight, bn.bias, bn.weight, bn.running_mean, (bn.running_var + 1e-4).rsqrt()]
    np.savez(tmp_path / "s.npz", *[a.detach().numpy() for a in arrays])
    loaded = build_backbone("sononet16", checkpoint=str(tmp_path / "s.npz"), image_size=32)
    torch.testing.assert_close(loaded.net.encoder.stages[0][0][0].weight, full.features[0][0].weight)


def test_pooling_flag_cls_vs_mean_and_errors() -> None:
    x = torch.randn(1, 3, 32, 32)
    cls = build_backbone("vit_tiny", tiny=True, image_size=32, pooling="token").eval()
    mean = build_backbone("vit_tiny", tiny=True, image_size=32, pooling="avg").eval()
    mean.load_state_dict(cls.state_dict(), strict=False)  # timm: norm before CLS, fc_norm after the mean
    with torch.no_grad():
        assert not torch.allclose(cls(x), mean(x))
    with pytest.raises(InputError, match="no CLS token"):
        build_backbone("resnet18", pooling="token")
    with pytest.raises(InputError, match="unknown backbone 'resnet19'; did you mean 'resnet18'"):
        build_backbone("resnet19")
    with pytest.raises(InputError, match="GPL-3.0"):
        build_backbone("mofo")


def test_each_backbone_uses_its_authors_input() -> None:
    assert get_backbone("fetalclip").mean == (0.48145466, 0.4578275, 0.40821073)
    assert get_backbone("ultrasam").input_size == (1024, 1024)
    assert get_backbone("sononet16").in_chans == 1 and get_backbone("sononet16").resize == "stretch"
    assert get_backbone("dinov3_vit_small").arch == "vit_small_patch16_dinov3"
