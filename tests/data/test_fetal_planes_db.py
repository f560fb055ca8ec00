"""FETAL_PLANES_DB on a tiny fixture built here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.data import open_dataset
from pcbm.data.fetal_planes_db import map_plane
from pcbm.errors import InputError

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "
ROWS = [
    ("Patient00001_Plane1_1_of_15", "1", "Other", "Not A Brain", "Other", "Aloka", "1"),
    ("Patient00001_Plane3_1_of_3", "1", "Fetal brain", "Trans-thalamic", "Op. 1", "Voluson E6", "1"),
    ("Patient00002_Plane3_2_of_3", "2", "Fetal brain", "Trans-cerebellum", "Op. 2", "Voluson E6", "0"),
    ("Patient00002_Plane3_3_of_3", "2", "Fetal brain", "Trans-ventricular", "Op. 2", "Voluson E6", "0"),
    ("Patient00003_Plane3_1_of_1", "3", "Fetal brain", "Other", "Op. 1", "Aloka", "1"),
    ("Patient00003_Plane2_1_of_1", "3", "Fetal abdomen", "Not A Brain", "Op. 1", "Aloka", "1"),
    ("Patient00004_Plane5_1_of_1", "4", "Fetal femur", "Not A Brain", "Op. 3", "Voluson S10", "0"),
    ("Patient00004_Plane6_1_of_1", "4", "Fetal thorax", "Not A Brain", "Op. 3", "Voluson S10", "0"),
    ("Patient00005_Plane4_1_of_1", "5", "Maternal cervix", "Not A Brain", "Op. 3", "Aloka", "1"),
]
EXPECTED = ["other", "trans_thalamic", "trans_cerebellar", "trans_ventricular", "other", "abdomen", "femur",
            "thorax", "cervix"]


def make_fpdb(root, rows=ROWS, rgb: bool = False):
    (root / "Images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        img = np.full((30, 40, 3) if rgb else (30, 40), 100, np.uint8)
        cv2.imwrite(str(root / "Images" / f"{r[0]}.png"), img)
    (root / "FETAL_PLANES_DB_data.csv").write_text("\n".join([HEADER, *(";".join(r) for r in rows)]) + "\n")
    return root


def test_planes_subjects_and_samples(tmp_path) -> None:
    ds = open_dataset(f"fetal_planes_db:{make_fpdb(tmp_path)}")
    assert [s.plane for s in ds] == EXPECTED
    assert [ds.subject_of(i) for i in range(len(ds))] == [r[1] for r in ROWS]
    s = ds[1]
    assert s.masks == {} and s.properties == {} and s.pixel_spacing_mm is None and s.standard is None
    assert s.meta["machine"] == "Voluson E6" and s.source == "fetal_planes_db"


def test_machine_and_official_split_filters(tmp_path) -> None:
    root = make_fpdb(tmp_path)
    assert len(open_dataset(f"fetal_planes_db:{root}?machine=voluson e6")) == 3
    assert len(open_dataset(f"fetal_planes_db:{root}?train=0")) == 4
    with pytest.raises(InputError, match="machine 'Philips'.*known: Aloka, Voluson E6, Voluson S10"):
        open_dataset(f"fetal_planes_db:{root}?machine=Philips")
    with pytest.raises(InputError, match="unknown option"):
        open_dataset(f"fetal_planes_db:{root}?colour=1")


def test_subject_split_keeps_patients_together(tmp_path) -> None:
    ds = open_dataset(f"fetal_planes_db:{make_fpdb(tmp_path)}")
    for seed in range(5):
        val = {ds.subject_of(i) for i in ds.split_indices("val", 0.4, seed)}
        train = {ds.subject_of(i) for i in ds.split_indices("train", 0.4, seed)}
        assert not val & train


def test_rgb_images_get_note(tmp_path) -> None:
    s = open_dataset(f"fetal_planes_db:{make_fpdb(tmp_path, rgb=True)}")[0]
    assert s.image.ndim == 2 and "grayscale" in s.meta["notes"][0]


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(InputError, match="no FETAL_PLANES_DB_data.csv"):
        open_dataset(f"fetal_planes_db:{tmp_path}")
    root = make_fpdb(tmp_path / "a")
    csv = root / "FETAL_PLANES_DB_data.csv"
    csv.write_text(csv.read_text().replace(";", ","))
    with pytest.raises(InputError, match="line 1: wrong delimiter.*','-separated, expected ';'"):
        open_dataset(f"fetal_planes_db:{root}")
    csv.write_text("Image_name;Plane\nX;Other\n")
    with pytest.raises(InputError, match="line 1: missing column.*Patient_num"):
        open_dataset(f"fetal_planes_db:{root}")
    root = make_fpdb(tmp_path / "b", rows=[*ROWS[:2], ("X", "9", "Fetal heart", "Not A Brain", "o", "m", "1")])
    with pytest.raises(InputError, match="line 4: column 'Plane': unknown Plane 'Fetal heart'"):
        open_dataset(f"fetal_planes_db:{root}")
    root = make_fpdb(tmp_path / "c")
    (root / "Images" / f"{ROWS[0][0]}.png").unlink()
    with pytest.raises(InputError, match="not found.*Patient00001_Plane1_1_of_15.png"):
        open_dataset(f"fetal_planes_db:{root}")[0]
    assert map_plane("Fetal brain", "Not A Brain") == "other"


def test_every_csv_problem_collected(tmp_path) -> None:
    rows = [ROWS[0], ("Y", "", "Other", "x", "o", "Aloka", "1"), ("Z", "9", "Fetal heart", "x", "o", "Aloka", "yes"),
            ROWS[0], ("W", "9")]
    root = make_fpdb(tmp_path, rows=rows)
    with pytest.raises(InputError, match=r"5 problems in fetal_planes_db:.*line 3: empty 'Patient_num'.*and 2 more"):
        open_dataset(f"fetal_planes_db:{root}")
    ds = open_dataset(f"fetal_planes_db:{root}", lenient=True)
    assert len(ds) == 3 and ds[2].plane is None and ds.subject_of(1) == "Y"
    messages = [m for _, m in ds.problems]
    assert any("unknown Plane" in m for m in messages) and any("'Train': expected 0 or 1" in m for m in messages)
    assert any("already listed on line 2" in m for m in messages) and any("2 fields" in m for m in messages)
