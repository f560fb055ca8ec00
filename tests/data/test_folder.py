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


def test_existing_folder_refused_unless_overwrite(tmp_path) -> None:
    out = write_folder(make_samples(2), tmp_path / "ds", progress=False)
    (out / "NOTES.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty; refusing.*--overwrite"):
        write_folder(make_samples(1), out, progress=False)
    assert (out / "NOTES.txt").read_text() == "mine" and len(open_dataset(f"folder:{out}")) == 2
    write_folder(make_samples(1), out, progress=False, overwrite=True)  # replaced whole, not mixed
    assert len(open_dataset(f"folder:{out}")) == 1 and not (out / "NOTES.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary left behind
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="refusing"):
            write_folder(make_samples(1), other, progress=False, overwrite=overwrite)
    assert (other / "thesis.tex").exists()


def test_output_checked_before_any_sample_is_made(tmp_path, monkeypatch) -> None:
    def never():
        raise AssertionError("a sample was rendered before the output was checked")
        yield

    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_folder(never(), tmp_path / "file", progress=False)
    with pytest.raises(InputError, match="file.*is a file, not a folder"):
        write_folder(never(), tmp_path / "file" / "sub", progress=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr("pcbm._io.os.access", lambda *a, **k: False)  # a read-only folder, even for root
    with pytest.raises(InputError, match="folder .*ro is not writable"):
        write_folder(never(), ro / "out", progress=False)


def test_failed_write_leaves_nothing(tmp_path) -> None:
    bad = make_samples(2)
    bad[1].id = bad[0].id
    with pytest.raises(InputError, match="duplicate sample id"):
        write_folder(bad, tmp_path / "ds", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_without_labels_csv(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    write_png(tmp_path / "images" / "a.png", np.zeros((20, 24), np.uint8))
    write_png(tmp_path / "images" / "b.png", np.zeros((20, 24), np.uint8))
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
    (["image", "plane"], ["img0.png", "trans_thalamik"], "line 2: column 'plane'.*did you mean 'trans_thalamic'"),
    (["image", "standard"], ["img0.png", "maybe"], "line 2: column 'standard': expected 1/0"),
    (["image", "pixel_spacing_mm"], ["img0.png", "-1"], r"line 2: column 'pixel_spacing_mm' must be .* \[0.01, 10\]"),
    (["image", "pixel_spacing_mm"], ["img0.png", "nan"], "line 2: column 'pixel_spacing_mm' must be a finite"),
    (["image", "pixel_spacing_mm"], ["img0.png", "0"], "line 2: column 'pixel_spacing_mm'.*got '0'"),
    (["image", "pixel_spacing_mm"], ["img0.png", "inf"], "line 2: column 'pixel_spacing_mm'"),
    (["image", "hc_mm"], ["img0.png", "big"], "line 2: column 'hc_mm' must be a number"),
    (["image", "hc_mm"], ["img0.png", "-3"], "line 2: column 'hc_mm' must be a positive number"),
    (["image", "csp_visible"], ["img0.png", "2"], "line 2: column 'csp_visible': expected 1/0"),
    (["image", "plane"], ["img0.png"], "line 2: 1 fields, expected 2"),
    (["image"], ["../../etc/passwd"], "line 2: column 'image'.*must be a file name"),
    (["plane"], ["trans_thalamic"], "line 1: no 'image' column"),
    (["image;plane"], ["img0.png;abdomen"], "line 1: wrong delimiter.*';'-separated, expected ','"),
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


def test_many_problems_listed_at_once(tmp_path) -> None:
    root = _layout(tmp_path, ["image", "pixel_spacing_mm", "standard"],
                   [["img0.png", "0", "x"], ["img1.png", "nan", "1"], ["img0.png", "1", "1"], ["img1.png", "x"]])
    with pytest.raises(InputError) as e:
        open_dataset(f"folder:{root}")
    msg = str(e.value)
    assert msg.startswith("5 problems in folder:") and "line 2: column 'pixel_spacing_mm'" in msg
    assert "line 2: column 'standard'" in msg and "line 3: column 'pixel_spacing_mm'" in msg
    assert "and 2 more" in msg and f"pcbm data check folder:{root}" in msg
    ds = FolderDataset(root, lenient=True)
    assert len(ds) == 2 and ds[0].pixel_spacing_mm is None and ds[0].standard is None  # bad cells read as empty
    assert [w.rsplit(" ", 1)[1] for w, _ in ds.problems] == ["2", "2", "3", "4", "5"]
    assert "already listed on line 2" in ds.problems[3][1] and "2 fields, expected 3" in ds.problems[4][1]


@pytest.mark.parametrize("content,match", [
    (b"", "labels.csv: empty file"),
    (b"\n\n", "labels.csv: empty file"),
    (b"image,plane\nimg0.png,abdomen\nimg\xe9.png,abdomen\n", r"labels.csv, line 3: not UTF-8 text \(byte 0xe9\)"),
    (b"image,image\nimg0.png,img0.png\n", "line 1: column 'image' appears twice"),
])
def test_malformed_labels_files(tmp_path, content, match) -> None:
    root = write_folder(make_samples(1), tmp_path / "d", progress=False)
    (root / "labels.csv").write_bytes(content)
    with pytest.raises(InputError, match=match):
        open_dataset(f"folder:{root}")


def test_missing_folder_and_empty_dataset(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        open_dataset(f"folder:{tmp_path / 'nothing'}")
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="empty"):
        open_dataset(f"folder:{tmp_path}")
