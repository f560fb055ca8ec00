"""SonoNet-16's conv blocks as an smp encoder: shapes, its npz weights, save/load without the weights file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcbm.errors import InputError
from pcbm.models import build_model, load_model, save_model
from pcbm.models.sononet import ADAPTATION, WIDTHS, SonoNetEncoder, find_weights


def _fake_npz(path, seed: int = 0):
    """Random arrays in SonoNet-16's npz layout (W, beta, gamma, mean, inv_std per block)."""
    rng = np.random.default_rng(seed)
    arrays, c_in = {}, 1
    shapes = [(c, 3) for c in WIDTHS] + [(c, 1) for c in ADAPTATION]
    for b, (c_out, k) in enumerate(shapes):
        arrays[f"arr_{5 * b}"] = rng.normal(size=(c_out, c_in, k, k)).astype(np.float32) * 0.1
        arrays[f"arr_{5 * b + 1}"] = rng.normal(size=c_out).astype(np.float32)
        arrays[f"arr_{5 * b + 2}"] = (1 + 0.1 * rng.normal(size=c_out)).astype(np.float32)
        arrays[f"arr_{5 * b + 3}"] = rng.normal(size=c_out).astype(np.float32)
        arrays[f"arr_{5 * b + 4}"] = rng.uniform(0.5, 2, size=c_out).astype(np.float32)
        c_in = c_out
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_stages_and_channels(depth) -> None:
    enc = SonoNetEncoder(depth=depth)
    feats = enc(torch.rand(2, 1, 64, 64))
    assert [f.shape[1] for f in feats] == enc.out_channels and len(feats) == depth + 1
    assert [f.shape[-1] for f in feats] == [64 // 2**k for k in range(depth + 1)]


def test_refuses_what_it_cannot_do() -> None:
    with pytest.raises(InputError, match="at most 4 stages"):
        SonoNetEncoder(depth=5)
    with pytest.raises(InputError, match="1 channel"):
        SonoNetEncoder().set_in_channels(3)
    with pytest.raises(InputError, match="at most 4 stages"):
        build_model("tiny", encoder="sononet16", encoder_depth=5, decoder_channels=(16, 8, 8, 8, 8))


def test_npz_weights_land_in_the_blocks(tmp_path) -> None:
    arrays = _fake_npz(tmp_path / "fake.npz")
    model = build_model("tiny", encoder="sononet16", encoder_weights_path=str(tmp_path / "fake.npz"))
    convs = [m for m in model.segmenter.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 - 3  # depth 3 keeps stem + 3 stages: blocks 1-10
    assert all(np.array_equal(c.weight.detach().numpy(), arrays[f"arr_{5 * i}"]) for i, c in enumerate(convs))
    bn = model.segmenter.encoder.stages[0][0][1]
    assert np.allclose(bn.running_var.numpy(), arrays["arr_4"].astype(np.float64) ** -2 - 1e-4, rtol=1e-4)
    # the input is standardised inside: a brighter copy of the same frame gives the same features
    enc = model.segmenter.encoder.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a, b = enc(x)[-1], enc(x * 0.5 + 0.2)[-1]
        assert float((a - b).norm() / a.norm()) < 1e-4


def test_saved_model_loads_without_the_weights_file(tmp_path, monkeypatch) -> None:
    _fake_npz(tmp_path / "fake.npz")
    model = build_model("tiny", encoder="sononet16", encoder_weights_path=str(tmp_path / "fake.npz")).eval()
    save_model(model, tmp_path / "run")
    (tmp_path / "fake.npz").unlink()  # a deployment machine has only the run folder
    back, _ = load_model(tmp_path / "run")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x).plane_logits, back(x).plane_logits, atol=1e-5)


def test_baseline_on_the_same_encoder() -> None:
    model = build_model("tiny_baseline", encoder="sononet16").eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).plane_probs.shape == (2, 8)


def test_shipped_configs_start_from_the_authors_weights() -> None:
    try:
        find_weights()
    except InputError:
        pytest.skip("SonoNet-16 weights not on this machine")
    model = build_model("small_sononet")
    ref = build_model("sononet16")
    ref.load_pretrained()
    mine = list(model.segmenter.encoder.state_dict().values())
    theirs = list(ref.features.state_dict().values())
    assert len(mine) == len(theirs) and all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))
