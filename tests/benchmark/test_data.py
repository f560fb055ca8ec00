"""The study's data helpers: the SonoNet frames kind, labels, and which process writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcbm.benchmark.data import SONONET_PLANES, open_labelled, short_name
from pcbm.benchmark.protocols.common import is_main_process

FRAMES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet"


def test_sononet_plane_map_is_the_models_one_in_its_output_order() -> None:
    from pcbm.models.sononet import CLASS_NAMES, CLASS_TO_PLANE

    assert CLASS_TO_PLANE is SONONET_PLANES and tuple(SONONET_PLANES) == CLASS_NAMES and len(CLASS_NAMES) == 14


def test_sononet_frames_are_cropped_and_labelled() -> None:
    if not (FRAMES / "frames").is_dir():
        pytest.skip(f"SonoNet frames not found at {FRAMES}")
    s = open_labelled(f"sononet_frames:{FRAMES}")
    assert len(s) == 13 and s.dataset[0].image.shape == (619, 793)  # rows 115:734, columns 81:874
    assert dict(zip(s.ids, s.labels, strict=True))["BRAIN-TV"] == "trans_ventricular"
    assert len(set(s.subjects)) == 13 and short_name(s.spec) == "sononet_frames-sononet"


def test_only_global_rank_zero_writes(monkeypatch) -> None:
    for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NODEID"):
        monkeypatch.delenv(k, raising=False)
    assert is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
