"""The folder format: reading, writing, round trip, and bad inputs."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from pcbm.data import Sample, open_dataset
from pcbm.data.folder import FolderDataset, write_folder
from pcbm.data.io import write_png
from pcbm.errors import InputError


def make_samples(n: int = 3) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (48, 64), dtype=np.uint8)
        head = np.zeros((48, 64), np.uint8)
        cv2.ellipse(head, (32, 24), (20, 14), 0, 0, 360, 1, -1)
        fov = np.zeros((48, 64), bool)
        fov[2:46, 2:62] = True
        out.append(Sample(
            image=img, pixel_spacing_mm=0.5 if i else None,
            masks={"head": head.astype(bool), "cerebellum": np.zeros((48, 64), bool)},
            properties={"head_visible": 1.0, "cerebellum_visible": 0.0, "hc_mm": 52.5 if i else None},
            plane="trans_thalamic", standard=bool(i % 2), id=f"img{i}", subject=f"p{i // 2}",
            field_of_view=fov, meta={"broken": "csp_visible", "notes": ["x"]},
        ))
    return out


def test_round_trip(tmp_path) -> None:
    samples = make_samples()
    out = write_folder(samples, tmp_path / "ds", progress=False)
    assert (out / "masks" / "_fov" / "img0.png").exists()
    ds = open_dataset(f"folder:{out}")
    assert len(ds) == 3 and [ds.subject_of(i) for i in range(3)] == ["p0", "p0", "p1"]
    for a, b in zip(samples, ds, strict=True):
        assert b.id == a.id and b.subject == a.subject and b.plane == a.plane and b.standard == a.standard
        assert b.pixel_spacing_mm == a.pixel_spacing_mm
        np.testing.assert_array_equal(b.image, a.image)
        assert set(b.masks) == {"head", "cerebellum"}  # the empty (labelled absent) mask survives
        assert not b.masks["cerebellum"].any() and (b.masks["head"] == a.masks["head"]).all()
        assert (b.field_of_view == a.field_of_view).all()
        assert b.properties == a.properties  # None ("na") survives as None
        assert b.meta["broken"] == "csp_visible" and b.source == "folder"


def test_overwrite_dataset_but_not_other_folders(tmp_path) -> None:
    out = write_folder(make_samples(2), tmp_path / "ds", progress=False)
    write_folder(make_samples(1), out, progress=False)
    assert len(open_dataset(f"folder:{out}")) == 1
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(InputError, match="refusing"):
        write_folder(make_samples(1), other, progress=False)
    assert (other / "thesis.tex").exists()


def test_failed_write_leaves_nothing(tmp_path) -> None:
    bad = make_samples(2)
    bad[1].id = bad[0].id
    with pytest.raises(InputError, match="duplicate sample id"):
        write_folder(bad, tmp_path / "ds", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_without_labels_csv(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    write_png(tmp_path / "images" / "a.png", np.zeros((5, 6), np.uint8))
    write_png(tmp_path / "images" / "b.png", np.zeros((5, 6), np.uint8))
    ds = FolderDataset(tmp_path)
    assert len(ds) == 2 and ds[0].plane is None and ds[0].masks == {} and ds[1].id == "b"


def _layout(tmp_path, header: list[str], rows: list[list[str]], mask_dir: str = "head"):
    write_folder(make_samples(2), tmp_path / "d", progress=False)
    root = tmp_path / "d"
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    if mask_dir != "head":
        (root / "masks" / "head").rename(root / "masks" / mask_dir)
    return root


def test_unknown_concept_folder_and_column(tmp_path) -> None:
    root = _layout(tmp_path, ["image"], [["img0.png"]], mask_dir="cerebelum")
    with pytest.raises(InputError, match="cerebelum.*did you mean 'cerebellum'"):
        open_dataset(f"folder:{root}")
    root = _layout(tmp_path / "b", ["image", "csp_visibel"], [["img0.png", "1"]])
    with pytest.raises(InputError, match=r"labels.csv, line 1.*csp_visibel.*did you mean 'csp_visible'"):
        open_dataset(f"folder:{root}")


@pytest.mark.parametrize("header,row,match", [
    (["image", "plane"], ["img0.png", "trans_thalamik"], "line 2.*did you mean 'trans_thalamic'"),
    (["image", "standard"], ["img0.png", "maybe"], "line 2, column 'standard'"),
    (["image", "pixel_spacing_mm"], ["img0.png", "-1"], "line 2, column 'pixel_spacing_mm'"),
    (["image", "hc_mm"], ["img0.png", "big"], "line 2, column 'hc_mm'"),
    (["image", "plane"], ["img0.png"], "line 2: 1 fields, expected 2"),
    (["plane"], ["trans_thalamic"], "no 'image' column"),
])
def test_malformed_labels_name_line(tmp_path, header, row, match) -> None:
    root = _layout(tmp_path, header, [row])
    with pytest.raises(InputError, match=match):
        open_dataset(f"folder:{root}")


def test_mask_size_mismatch_and_missing_image(tmp_path) -> None:
    root = write_folder(make_samples(2), tmp_path / "d", progress=False)
    write_png(root / "masks" / "head" / "img1.png", np.zeros((10, 10), bool))
    ds = open_dataset(f"folder:{root}")
    with pytest.raises(InputError, match=r"masks/head/img1.png has size 10x10.*images/img1.png has 64x48"):
        ds[1]
    (root / "images" / "img0.png").unlink()
    with pytest.raises(InputError, match="not found.*img0.png"):
        ds[0]


def test_missing_folder_and_empty_dataset(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        open_dataset(f"folder:{tmp_path / 'nothing'}")
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="empty"):
        open_dataset(f"folder:{tmp_path}")
