"""`check_dataset`: problems per file, counts, and mask-vs-label agreement."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.data import Sample
from pcbm.data.check import check_dataset
from pcbm.data.folder import write_folder
from pcbm.data.io import write_png


def _sample(i: int, hc_mm: float | None, magnified: float) -> Sample:
    head = np.zeros((60, 80), np.uint8)
    cv2.ellipse(head, (40, 30), (25, 18), 0, 0, 360, 1, -1)
    return Sample(image=np.full((60, 80), 60, np.uint8), pixel_spacing_mm=1.0, masks={"head": head.astype(bool)},
                  properties={"hc_mm": hc_mm, "head_magnified": magnified, "head_visible": 1.0},
                  plane="trans_thalamic", standard=False, id=f"s{i}")


def test_folder_agreement_and_counts(tmp_path) -> None:
    # the measured HC of this ellipse is ~ 136.5 px = mm; one label is off by 10 mm
    root = write_folder([_sample(0, 136.5, 1.0), _sample(1, 146.5, 0.0)], tmp_path / "d", progress=False)
    r = check_dataset(f"folder:{root}", progress=False)
    assert r.ok and r.n_read == 2 and r.planes["trans_thalamic"] == 2 and r.standard["not standard"] == 2
    assert r.agreement["hc_mm"].n == 2 and 4 < r.hc_mae_mm < 6
    assert r.agreement["head_magnified"].mean == 0.5  # 0.29 of the image: not magnified; one label says it is
    assert r.agreement["head_visible"].mean == 1.0
    d = r.to_dict()
    assert d["ok"] and d["agreement"]["hc_mm"]["n"] == 2 and "mae_mm" in d["agreement"]["hc_mm"]


def test_problems_are_per_file(tmp_path) -> None:
    root = write_folder([_sample(0, 136.5, 1.0), _sample(1, 136.5, 1.0), _sample(2, 136.5, 1.0)],
                        tmp_path / "d", progress=False)
    (root / "images" / "s0.png").write_bytes(b"not a png")
    write_png(root / "masks" / "head" / "s1.png", np.zeros((5, 5), bool))
    write_png(root / "images" / "extra.png", np.zeros((5, 5), np.uint8))
    r = check_dataset(f"folder:{root}", progress=False)
    assert not r.ok and r.n_read == 1 and len(r.errors) == 2
    assert any("s0.png" in p.where and "corrupt" in p.message for p in r.errors)
    assert all(p.where not in p.message for p in r.errors)  # the path is said once, not twice
    assert any("s1.png" in p.message and "size" in p.message for p in r.errors)
    assert any("extra.png" in p.where for p in r.warnings)


def test_missing_hc18_mask_is_an_error(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_png(tmp_path / "images" / "000_HC.png", np.zeros((40, 50), np.uint8))
    (tmp_path / "pixel_size_and_hc.csv").write_text("filename,pixel_size_mm,head_circumference_mm\n"
                                                   "000_HC.png,0.1,50\n")
    r = check_dataset(f"hc18:{tmp_path}", progress=False)
    assert not r.ok and "no mask" in r.errors[0].message and r.hc_mae_mm is None


@pytest.mark.realdata
@pytest.mark.slow
def test_hc18_full_hc_mae(hc18_path) -> None:
    r = check_dataset(f"hc18:{hc18_path}", progress=False)
    assert r.ok and r.n_read == 806 and r.agreement["hc_mm"].n == 806
    assert r.hc_mae_mm <= 1.0
