"""Alzubaidi brain masks: colour masks -> head mask + CSP/ventricle boxes; 'not drawn' is not 'absent'."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pcbm.concepts import VISUAL_CONCEPT_NAMES
from pcbm.data import open_dataset
from pcbm.data.sample import Sample
from pcbm.errors import InputError
from pcbm.training.data import encode_sample
from pcbm.training.losses import box_loss

H, W = 120, 160


def _write(root, name: str, ventricle: bool, palette_shift: int = 0) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    img = np.full((H, W, 3), 30, np.uint8)
    cv2.ellipse(img, (80, 60), (60, 40), 0, 0, 360, (200, 200, 200), 3)
    cv2.imwrite(str(root / "images" / f"{name}.png"), img)
    rgb = np.zeros((H, W, 3), np.uint8)
    cv2.ellipse(rgb, (80, 60), (60, 40), 0, 0, 360, (128 + palette_shift, 0, 0), -1)
    rgb[50:60, 60:75] = (0, 128, 0)  # CSP box
    if ventricle:
        rgb[40:48, 90:110] = (128, 128, 0)
    cv2.imwrite(str(root / "masks" / f"{name}.png"), rgb[:, :, ::-1])  # OpenCV writes BGR


@pytest.fixture
def alz(tmp_path):
    _write(tmp_path, "Patient00001_Plane3_1_of_2", ventricle=True)
    _write(tmp_path, "Patient00001_Plane3_2_of_2", ventricle=False)
    _write(tmp_path, "Patient00002_Plane3_1_of_1", ventricle=False)
    return tmp_path


def test_masks_boxes_and_labels(alz) -> None:
    ds = open_dataset(f"alzubaidi:{alz}")
    assert len(ds) == 3 and [ds.subject_of(i) for i in range(3)] == ["Patient00001", "Patient00001", "Patient00002"]
    s = ds[0]
    assert sorted(s.masks) == ["head"] and sorted(s.mask_boxes) == ["csp", "lateral_ventricle"]
    # the head is the brain with the CSP and ventricle drawn over it: a filled ellipse, no holes
    assert s.masks["head"][55, 65] and s.masks["head"][44, 100] and not s.masks["head"][2, 2]
    assert s.mask_boxes["csp"].sum() == 10 * 15 and not s.mask_boxes["csp"][44, 100]
    assert s.properties == {"head_visible": 1.0, "csp_visible": 1.0, "lateral_ventricle_visible": 1.0}
    assert s.plane is None and s.meta["plane_group"] == "head" and s.pixel_spacing_mm is None
    t = ds[1]  # ventricle not drawn: unlabelled, not absent
    assert "lateral_ventricle" not in t.mask_boxes and "lateral_ventricle_visible" not in t.properties


def test_split_options_keep_patients_together(alz) -> None:
    spec = f"alzubaidi:{alz}?val_fraction=0.5&split_seed=3"
    train, val = open_dataset(spec + "&split=train"), open_dataset(spec + "&split=val", )
    assert len(train) + len(val) == 3
    subjects = [{d.subject_of(i) for i in range(len(d))} for d in (train, val)]
    assert not subjects[0] & subjects[1]
    with pytest.raises(InputError, match="val_fraction"):
        open_dataset(f"alzubaidi:{alz}?val_fraction=2")


def test_bad_folders(tmp_path, alz) -> None:
    with pytest.raises(InputError, match="not found"):
        open_dataset(f"alzubaidi:{tmp_path / 'nope'}")
    with pytest.raises(InputError, match="expected images/ and masks/"):
        open_dataset(f"alzubaidi:{alz / 'images'}")
    (alz / "masks" / "Patient00002_Plane3_1_of_1.png").unlink()
    with pytest.raises(InputError, match="without a mask"):
        open_dataset(f"alzubaidi:{alz}")


def test_foreign_palette_and_size_are_refused(tmp_path) -> None:
    _write(tmp_path, "Patient00009_x", ventricle=False, palette_shift=60)
    with pytest.raises(InputError, match="colours other than"):
        open_dataset(f"alzubaidi:{tmp_path}")[0]
    cv2.imwrite(str(tmp_path / "masks" / "Patient00009_x.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="size 10x10"):
        open_dataset(f"alzubaidi:{tmp_path}")[0]


def test_a_concept_is_a_mask_or_a_box() -> None:
    m = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="csp given as a mask and as a box"):
        Sample(image=np.zeros((4, 4), np.uint8), masks={"csp": m}, mask_boxes={"csp": m})


def test_encoded_box_is_not_a_label(alz) -> None:
    e = encode_sample(open_dataset(f"alzubaidi:{alz}")[0], 64)
    csp, head = VISUAL_CONCEPT_NAMES.index("csp"), VISUAL_CONCEPT_NAMES.index("head")
    assert e["mask_box"][csp] and not e["mask_labelled"][csp]  # no pixel loss, no teacher forcing, no Dice
    assert e["mask_labelled"][head] and not e["mask_box"][head]
    assert e["masks"][csp].sum() > 0


def test_box_loss_rewards_a_structure_inside_that_spans_the_box() -> None:
    box = torch.zeros(1, 1, 32, 32)
    box[0, 0, 8:20, 10:24] = 1
    has = torch.ones(1, 1, dtype=torch.bool)

    def loss(mask: torch.Tensor) -> float:
        return float(box_loss((mask * 2 - 1) * 8, box, has))

    inner = torch.zeros_like(box)  # an ellipse-ish blob touching every row and column of the box
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    inner[0, 0] = ((((yy - 13.5) / 6.2) ** 2 + ((xx - 16.5) / 7.2) ** 2) <= 1).float()
    half = box.clone()
    half[0, 0, 8:20, 17:24] = 0  # covers only half the columns
    leak = inner.clone()
    leak[0, 0, 25:30, 2:6] = 1  # something outside the box
    assert loss(inner) < 0.05
    assert loss(half) > loss(inner) + 0.1 and loss(leak) > loss(inner) + 0.05
    assert loss(torch.zeros_like(box)) > 0.9  # predicting nothing is the worst
    assert float(box_loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, dtype=torch.bool))) == 0


def test_training_step_takes_boxes(alz) -> None:
    from pcbm.data import open_dataset as od
    from pcbm.models import build_model
    from pcbm.training.data import collate
    from pcbm.training.module import PCBMTrainingModule

    items = [encode_sample(s, 64) for s in [od(f"alzubaidi:{alz}")[0], od("phantom:n=1,seed=2")[0]]]
    batch = collate(items)
    module = PCBMTrainingModule(build_model("tiny"), mode="sequential")
    terms, _ = module.losses(batch)
    assert all(bool(torch.isfinite(v)) for v in terms.values())
    without = dict(batch, mask_box=torch.zeros_like(batch["mask_box"]))
    assert float(module.losses(without)[0]["segmentation"]) != float(terms["segmentation"])
    module.total(terms).backward()  # the box term has gradients
