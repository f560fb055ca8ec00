"""The head refiner: crop geometry round-trips, a refiner trains, saves, loads and redraws a head."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.errors import InputError
from pcbm.models.head_refiner import CropBox, crop, head_box, load_refiner, uncrop


def _head(shape=(270, 400), axes=(100, 70), angle=15) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (200, 135), axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


@pytest.mark.parametrize("angle", [0.0, 17.0])
def test_crop_then_uncrop_gives_the_mask_back(angle) -> None:
    m = _head()
    box = head_box(m)
    box = CropBox(box.cx, box.cy, box.side, angle)
    back = uncrop(crop(m.astype(np.float32), box, 128), box, m.shape) > 0.5
    iou = (back & m).sum() / (back | m).sum()
    assert iou > 0.97


def test_head_box_takes_the_largest_component_and_none_when_empty() -> None:
    m = _head()
    m[5:9, 5:9] = True  # a speck far from the head
    box = head_box(m, margin=1.0)
    assert abs(box.cx - 200) < 2 and abs(box.cy - 135) < 2 and 195 < box.side < 215
    assert head_box(np.zeros((10, 10), bool)) is None


def test_a_refiner_trains_saves_and_redraws_a_head(tmp_path) -> None:
    from pcbm.concepts.measure import ellipse_perimeter
    from pcbm.training.config import RefinerTrainConfig
    from pcbm.training.head_refiner import train_refiner

    root = tmp_path / "hc"
    root.mkdir()
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    rng = np.random.default_rng(0)
    for i in range(6):
        a, b = 80 + 8 * i, 60 + 4 * i
        img = rng.integers(0, 60, (270, 400), dtype=np.uint8)
        cv2.ellipse(img, (200, 135), (a, b), 10, 0, 360, 230, 4)
        cv2.imwrite(str(root / f"{i:03d}_HC.png"), img)
        outline = np.zeros((270, 400), np.uint8)
        cv2.ellipse(outline, (200, 135), (a, b), 10, 0, 360, 255, 2)
        cv2.imwrite(str(root / f"{i:03d}_HC_Annotation.png"), outline)
        lines.append(f"{i:03d}_HC.png,0.2,{ellipse_perimeter(a, b) * 0.2:.2f}")
    (root / "training_set_pixel_size_and_HC.csv").write_text("\n".join(lines) + "\n")
    cfg = RefinerTrainConfig(data=(f"hc18:{root}",), out=str(tmp_path / "ref"), size=64, max_steps=2, batch_size=2,
                             workers=0, threads=1, progress=False, val_fraction=0.34)
    out = train_refiner(cfg)
    assert {p.name for p in out.iterdir()} >= {"head_refiner.pt", "config.json", "metrics.json"}
    refiner, meta = load_refiner(out)
    assert meta["steps"] == 2 and "never trained on" in meta["split"]
    prob = refiner.refine(np.zeros((270, 400), np.uint8), _head())
    assert prob.shape == (270, 400) and 0 <= prob.min() <= prob.max() <= 1
    assert refiner.refine(np.zeros((270, 400), np.uint8), np.zeros((270, 400), bool)) is None
    with pytest.raises(InputError, match="exists|not empty|overwrite"):
        train_refiner(cfg)  # a finished folder is not overwritten unless asked


def test_a_missing_or_foreign_refiner_file_is_named(tmp_path) -> None:
    with pytest.raises(InputError, match="head refiner not found"):
        load_refiner(tmp_path / "nope.pt")
    bad = tmp_path / "head_refiner.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="is not a pcbm head refiner"):
        load_refiner(bad)


def test_a_refiner_beside_model_pt_is_attached_and_measures_the_head(tmp_path) -> None:
    import torch

    from pcbm.concepts import VISUAL_CONCEPT_NAMES
    from pcbm.data import open_dataset
    from pcbm.models import build_model, load_model, save_model
    from pcbm.models.head_refiner import HeadRefiner, RefinerConfig, save_refiner
    from pcbm.models.inference import pipeline_of
    from pcbm.training import evaluate

    torch.manual_seed(0)
    save_model(build_model("tiny").eval(), tmp_path)
    plain, info = load_model(tmp_path)
    assert plain.head_refiner is None and "head_refiner" not in info
    refiner = HeadRefiner(RefinerConfig(size=64, decoder_channels=(16, 8, 8, 8, 8))).eval()
    save_refiner(refiner, tmp_path, {"steps": 7, "train": {"data": ["hc18:x"]}, "split": "split seed 0"})
    model, info = load_model(tmp_path)
    assert model.head_refiner is not None and info["head_refiner"]["steps"] == 7
    assert not any(k.startswith("_head_refiner") for k in model.state_dict())  # the plane model's weights only
    image = np.random.default_rng(0).integers(0, 255, (270, 400), dtype=np.uint8)
    masks = np.zeros((len(VISUAL_CONCEPT_NAMES), 270, 400), np.float32)
    masks[VISUAL_CONCEPT_NAMES.index("head")] = _head()
    out = pipeline_of(model).refine_masks(image, masks)
    k = VISUAL_CONCEPT_NAMES.index("head")
    assert np.allclose(out[k], model.head_refiner.refine(image, _head()))  # the head is the refiner's
    assert np.array_equal(np.delete(out, k, 0), np.delete(masks, k, 0))  # nothing else changes
    assert pipeline_of(plain).refine_masks(image, masks) is masks
    assert refiner.refine(image).shape == (270, 400) or refiner.refine(image) is None  # finds the head itself
    m = evaluate(model, open_dataset("phantom:n=4,size=64,seed=1"))
    assert m["hc_mae_mm"] is not None and 0 <= m["hc_flagged_share"] <= 1 and m["hc_by_band"]
