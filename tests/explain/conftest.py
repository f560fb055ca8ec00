"""Fixtures for the explain tests: a tiny PCBM with a hand-set, readable decision layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcbm.concepts import PLANE_NAMES, PLANES, get_concept, get_plane_family


def hand_set_decision(model, scale: float = 2.0) -> None:
    """logit(plane) = scale × (4·family anchor + Σ ±criteria + head-plane cues); 'other': bias 2·scale.

    The head-plane cues tell the three head planes apart: thalami for TT, lateral ventricle for TV,
    cerebellum (and no thalami) for TC.

    With true concepts this picks the right plane for standard scenes, so correcting concepts
    fixes decisions in a known way.
    """
    import torch

    lin = model.decision.linear
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        for p in PLANES:
            if not p.known:
                lin.bias[p.index] = 2.0 * scale
                continue
            lin.weight[p.index, get_concept(get_plane_family(p.group).anchor).index] += 4.0 * scale
            for c in p.criteria:
                lin.weight[p.index, get_concept(c.property).index] += scale if c.expected else -scale
        for plane, prop, w in (("trans_thalamic", "thalamus_visible", 1.0), ("trans_ventricular", "lateral_ventricle_visible", 1.0),
                               ("trans_cerebellar", "cerebellum_visible", 1.0), ("trans_cerebellar", "thalamus_visible", -1.0)):
            lin.weight[PLANE_NAMES.index(plane), get_concept(prop).index] += w * scale


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    from pcbm.models import build_model

    torch.manual_seed(0)
    m = build_model("tiny").eval()
    hand_set_decision(m)
    return m


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> Path:
    """A run directory holding the tiny model, as ``pcbm train`` writes it."""
    from pcbm._io import write_json
    from pcbm.models import save_model

    run = tmp_path_factory.mktemp("tiny_run")
    save_model(tiny_model, run)
    # the layout `pcbm train` writes
    write_json(run / "config.json", {"model": tiny_model.config.to_dict(),
                                     "train": {"data": ["phantom:n=8,seed=0"], "mode": "joint", "epochs": 1},
                                     "data_sizes": {"phantom:n=8,seed=0": {"train": 6, "val": 2}}})
    write_json(run / "metrics.json", {"phantom:n=8,seed=0": {"plane_macro_f1": 0.5, "dice": {"head": 0.9}}})
    return run


@pytest.fixture(scope="session")
def phantom_png(tmp_path_factory) -> Path:
    """A phantom image written as PNG (trans-thalamic if the phantom yields one early)."""
    from pcbm.data import open_dataset
    from pcbm.data.io import write_png

    ds = open_dataset("phantom:n=16,seed=1")
    s = next((ds[i] for i in range(len(ds)) if ds[i].plane == "trans_thalamic"), ds[0])
    p = tmp_path_factory.mktemp("img") / "phantom_tt.png"
    write_png(p, s.image)
    return p


@pytest.fixture()
def small_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((90, 120)) * 60).astype(np.uint8)
    img[20:70, 30:90] += 100
    return img
