"""A tiny exported model for the live tests (random weights: fast, its answers meaningless)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory):
    import torch

    from pcbm.export.package import export_package
    from pcbm.models import build_model, save_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("live_pkg")
    save_model(build_model("tiny").eval(), root / "run")
    return export_package(str(root / "run"), root / "pkg", reference=("phantom:n=4,seed=2",), reference_limit=4)
