"""The African fetal planes loader on a fixture in the layout of the public release (built here)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.data import open_dataset
from pcbm.errors import InputError

HEADER = "Patient_num,Plane,Train,Center,Image_name"  # the release's own columns (../shared/data/african)
LEGACY_HEADER = "Filename,Plane,Brain_plane,Patient_num,Center,Train"  # an older third-party copy's


def _write(root, rows: list[str], images: dict[str, np.ndarray], header: str = HEADER) -> None:  # noqa: ANN001
    root.mkdir(parents=True, exist_ok=True)
    (root / "African_planes_database.csv").write_text("\n".join([header, *rows]) + "\n")
    for rel, im in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), im)


@pytest.fixture
def african(tmp_path):  # noqa: ANN201
    rng = np.random.default_rng(0)
    ims = {f"{c}/{n}.png": rng.integers(0, 255, (24, 32), dtype=np.uint8)
           for c, n in [("Malawi", "a1"), ("Malawi", "a2"), ("Egypt", "b1"), ("Egypt", "b2"), ("Ghana", "c1")]}
    ims["Ghana/c2.png"] = ims["Egypt/b1.png"].copy()  # a byte-identical copy filed under another centre
    rows = ["1,Fetal brain,1,Malawi,a1", "1,Fetal femur,1,Malawi,a2", "1,Fetal abdomen,0,Egypt,b1",
            "2,Fetal brain,0,Egypt,b2", "7,Fetal thorax,True,Ghana,c1", "8,Fetal abdomen,0,Ghana,c2"]
    _write(tmp_path / "afr", rows, ims)
    return tmp_path / "afr"


def test_subjects_are_centre_and_patient_and_duplicates_are_dropped(african) -> None:
    ds = open_dataset(f"african:{african}")
    assert len(ds) == 5 and ds.duplicates == [("Egypt/b1.png", "Ghana/c2.png", True)]
    subjects = [ds.subject_of(i) for i in range(len(ds))]
    assert subjects == ["Malawi:1", "Malawi:1", "Egypt:1", "Egypt:2", "Ghana:7"]  # patient 1 of Malawi != of Egypt
    s = ds[0]
    assert s.plane is None and s.meta["plane_group"] == "head" and s.meta["centre"] == "Malawi"
    assert ds[3].plane is None and ds[1].plane == "femur" and ds[2].plane == "abdomen"


def test_an_older_copy_with_filename_and_brain_plane_columns_is_read(tmp_path) -> None:
    rng = np.random.default_rng(1)
    ims = {f"Egypt/{n}.png": rng.integers(0, 255, (24, 32), dtype=np.uint8) for n in ("b1", "b2")}
    _write(tmp_path / "old", ["b1,Fetal brain,Trans-thalamic,1,Egypt,0", "b2,Fetal femur,Not A Brain,2,Egypt,0"],
           ims, LEGACY_HEADER)
    ds = open_dataset(f"african:{tmp_path / 'old'}")
    assert [ds[i].plane for i in range(2)] == ["trans_thalamic", "femur"]


def test_splits_are_by_subject_and_stratified_by_centre(tmp_path) -> None:
    rng = np.random.default_rng(2)
    rows, ims = [], {}
    for centre in ("Algeria", "Ghana"):
        for patient in range(1, 9):
            for k, plane in enumerate(("Fetal abdomen", "Fetal brain")):
                name = f"p{patient}_{centre}_{k}"
                rows.append(f"{patient},{plane},0,{centre},{name}")
                ims[f"{centre}/{name}.png"] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    _write(tmp_path / "s", rows, ims)
    spec = f"african:{tmp_path / 's'}?val_fraction=0.25"
    val, train = open_dataset(spec, split="val"), open_dataset(spec, split="train")
    v_subjects = {val.subject_of(i) for i in range(len(val))}
    t_subjects = {train.subject_of(i) for i in range(len(train))}
    assert not v_subjects & t_subjects and len(val) + len(train) == 32
    assert sorted(s.split(":")[0] for s in v_subjects) == ["Algeria", "Algeria", "Ghana", "Ghana"]  # 2 of 8 each


def test_train_flag_one_is_training(african) -> None:
    train = open_dataset(f"african:{african}?train=1")
    test = open_dataset(f"african:{african}?train=0")
    assert sorted(train.item_name(i) for i in range(len(train))) == ["Ghana_c1", "Malawi_a1", "Malawi_a2"]
    assert sorted(test.item_name(i) for i in range(len(test))) == ["Egypt_b1", "Egypt_b2"]
    assert len(open_dataset(f"african:{african}?centre=egypt")) == 2
    rest = open_dataset(f"african:{african}?exclude_centre=Egypt")
    assert sorted({rest[i].meta["centre"] for i in range(len(rest))}) == ["Ghana", "Malawi"]
    with pytest.raises(InputError, match="exclude_centre 'chad' names no centre; known: Egypt, Ghana, Malawi"):
        open_dataset(f"african:{african}?exclude_centre=Chad")


def test_bad_files_are_named(tmp_path, african) -> None:
    with pytest.raises(InputError, match="no African_planes_database.csv"):
        open_dataset(f"african:{tmp_path}")
    (african / "African_planes_database.csv").write_text(HEADER + "\n1,Fetal knee,2,Malawi,x\n")
    with pytest.raises(InputError, match=r"unknown plane 'Fetal knee'"):
        open_dataset(f"african:{african}")
    with pytest.raises(InputError, match="centre 'Chad'.*known"):
        _write(african, ["1,Fetal brain,1,Malawi,a1"], {})
        open_dataset(f"african:{african}?centre=Chad")
    (african / "African_planes_database.csv").write_text("Patient_num,Plane,Train,Center\n1,Fetal brain,1,Malawi\n")
    with pytest.raises(InputError, match="missing column.*Image_name"):
        open_dataset(f"african:{african}")


def test_the_benchmark_scores_it_on_plane_groups(african) -> None:
    from pcbm.benchmark.data import class_mapping, open_labelled

    s = open_labelled(f"african:{african}")
    assert s.labels == ["head", "femur", "abdomen", "head", "thorax"]
    assert "1 byte-identical duplicate image(s) dropped (0 with a different label)" in s.notes
    level, mapping, classes = class_mapping(["trans_thalamic", "trans_cerebellar", "abdomen", "femur", "thorax",
                                             "other"], s.labels)
    assert level == "group" and mapping["trans_cerebellar"] == "head" and sorted(classes) == ["abdomen", "femur",
                                                                                              "head", "thorax"]


def test_fetal_planes_db_cross_scanner_split(tmp_path) -> None:
    root = tmp_path / "fpdb"
    (root / "Images").mkdir(parents=True)
    rows = ["Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"]
    for i, m in enumerate(["Aloka", "Voluson E6", "Voluson S10", "Aloka"]):
        cv2.imwrite(str(root / "Images" / f"i{i}.png"), np.full((20, 20), 9 * i, np.uint8))
        rows.append(f"i{i};{i};Fetal femur;Not A Brain;op;{m};1")
    (root / "FETAL_PLANES_DB_data.csv").write_text("\n".join(rows) + "\n")
    rest = open_dataset(f"fetal_planes_db:{root}?exclude_machine=Voluson E6")
    held = open_dataset(f"fetal_planes_db:{root}?machine=Voluson E6")
    assert len(rest) == 3 and len(held) == 1 and all(rest[i].meta["machine"] != "Voluson E6" for i in range(3))
    assert len(open_dataset(f"fetal_planes_db:{root}?exclude_machine=aloka+voluson s10")) == 1
    with pytest.raises(InputError, match="exclude_machine 'philips' names no machine; known: Aloka"):
        open_dataset(f"fetal_planes_db:{root}?exclude_machine=Philips")
