"""Shared fixtures: seeding, the real HC18 folder, small paths."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# runs exported for the runtime (pcbm.predictor) go to a scratch cache, never the user's ~/.cache/pcbm
os.environ.setdefault("PCBM_CACHE", tempfile.mkdtemp(prefix="pcbm-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
HC18 = Path(os.environ.get("PCBM_HC18", REPO.parent / "shared" / "data" / "hc18"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def hc18_path() -> Path:
    if not (HC18 / "pixel_size_and_hc.csv").exists():
        pytest.skip(f"HC18 data not found at {HC18}")
    return HC18


@pytest.fixture(scope="session")
def make_tiny_package(tmp_path_factory):
    """``make(n)``: a tiny exported model package (random weights: fast, its answers meaningless) whose
    reference holds ``n`` phantom frames."""
    def make(n: int = 4) -> Path:
        import torch

        from pcbm.export.package import export_package
        from pcbm.models import build_model, save_model

        torch.manual_seed(0)
        root = tmp_path_factory.mktemp("tiny_pkg")
        save_model(build_model("tiny").eval(), root / "run")
        return export_package(str(root / "run"), root / "pkg", reference=(f"phantom:n={n},seed=2",), reference_limit=n)

    return make


@pytest.fixture(scope="session")
def tiny_package(make_tiny_package) -> Path:
    return make_tiny_package(4)
