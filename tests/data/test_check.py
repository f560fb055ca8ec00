"""`check_dataset`: problems per file, counts, and mask-vs-label agreement."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.data import Sample, open_dataset
from pcbm.data.check import check_dataset
from pcbm.data.folder import write_folder
from pcbm.data.io import write_png
from pcbm.errors import InputError


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


def test_every_problem_reported_at_once(tmp_path) -> None:
    """A bad spacing on line 3 no longer hides the corrupt image, missing file and wrong-size mask below it."""
    root = write_folder([_sample(i, 136.5, 1.0) for i in range(5)], tmp_path / "d", progress=False)
    lines = (root / "labels.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("pixel_spacing_mm")
    bad = lines[2].split(",")
    bad[col] = "nan"
    lines[2] = ",".join(bad)
    lines.append(lines[1])  # s0.png listed twice
    lines[1] = lines[1].replace("trans_thalamic", "trans_thalamik")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "images" / "s2.png").write_bytes(b"not a png")
    (root / "images" / "s3.png").unlink()
    write_png(root / "masks" / "head" / "s4.png", np.zeros((20, 20), bool))
    (root / "masks" / "hed").mkdir()
    r = check_dataset(f"folder:{root}", progress=False)
    msgs = [f"{p.where}: {p.message}" for p in r.errors]
    assert not r.ok and r.n_samples == 5 and r.n_read == 2, msgs
    assert any("line 2: column 'plane'" in m and "did you mean 'trans_thalamic'" in m for m in msgs)
    assert any("line 3: column 'pixel_spacing_mm' must be a finite" in m for m in msgs)
    assert any("line 7: image 's0.png' is already listed on line 2" in m for m in msgs)
    assert any("hed: mask folder: unknown visual concept" in m for m in msgs)
    assert any("s2.png: cannot read image: not an image file" in m for m in msgs)
    assert any("s3.png: image not found (listed in labels.csv line 5)" in m for m in msgs)
    assert any("s4.png" in m and "has size 20x20" in m for m in msgs)
    assert len(r.errors) == 7
    with pytest.raises(InputError, match=r"4 problems in folder:.*and 1 more.*pcbm data check"):
        open_dataset(f"folder:{root}")  # for training: one clear error naming the first few


def test_unreadable_labels_and_empty_dataset_are_reported(tmp_path) -> None:
    root = write_folder([_sample(0, 136.5, 1.0)], tmp_path / "d", progress=False)
    (root / "labels.csv").write_bytes(b"image,plane\n\xff\xfe\n")
    r = check_dataset(f"folder:{root}", progress=False)
    assert not r.ok and r.n_samples == 0
    assert "line 2" in r.errors[0].where and "not UTF-8" in r.errors[0].message
    assert r.errors[-1].message == "the dataset has no samples"
    assert any("not listed in labels.csv" in p.message for p in r.warnings)


def test_image_problems_and_notes(tmp_path) -> None:
    from test_io import header_only_png

    root = write_folder([_sample(i, 136.5, 1.0) for i in range(3)], tmp_path / "d", progress=False)
    (root / "images" / "s0.png").write_bytes(header_only_png(20000, 20000))
    write_png(root / "images" / "s1.png", np.zeros((60, 80), np.uint8))
    r = check_dataset(f"folder:{root}", progress=False)
    assert any("s0.png" in p.where and "limit is 40 megapixels" in p.message for p in r.errors)
    assert any("s1.png" in p.where and "all-black" in p.message for p in r.warnings)


def test_hc18_missing_image_reported_once(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_png(tmp_path / "images" / "000_HC.png", np.full((40, 50), 9, np.uint8))
    write_png(tmp_path / "masks" / "000_HC_Mask.png", np.ones((40, 50), bool))
    (tmp_path / "pixel_size_and_hc.csv").write_text("filename,pixel_size_mm,head_circumference_mm\n"
                                                   "000_HC.png,-1,50\n001_HC.png,0.1,50\n")
    r = check_dataset(f"hc18:{tmp_path}", progress=False)
    msgs = [f"{p.where}: {p.message}" for p in r.errors]
    assert len(msgs) == 2 and r.n_read == 1, msgs
    assert "line 2: column 2 (pixel size mm)" in msgs[0]
    assert "001_HC.png: image not found (listed in pixel_size_and_hc.csv line 3)" in msgs[1]
