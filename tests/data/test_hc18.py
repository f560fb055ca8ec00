"""HC18: the shared layout (real data), the official layout (fixtures with outlines), bad CSVs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pcbm.concepts.measure import derive_properties, ellipse_perimeter
from pcbm.data import open_dataset
from pcbm.data.hc18 import fill_outline, subject_of_stem
from pcbm.errors import InputError

SPACING = 0.2


def make_official(root, names=("000_HC", "001_HC", "001_2HC"), gap: bool = False, subdir: bool = False):
    """Official challenge layout: NNN_HC.png + NNN_HC_Annotation.png (outline) + the CSV."""
    folder = root / "training_set" if subdir else root
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    for i, name in enumerate(names):
        a, b = 100 + 10 * i, 70 + 5 * i
        img = np.full((270, 400), 40, np.uint8)
        cv2.imwrite(str(folder / f"{name}.png"), img)
        outline = np.zeros((270, 400), np.uint8)
        cv2.ellipse(outline, (200, 135), (a, b), 15, 0, 350 if gap else 360, 255, 2)
        cv2.imwrite(str(folder / f"{name}_Annotation.png"), outline)
        lines.append(f"{name}.png,{SPACING},{ellipse_perimeter(a, b) * SPACING:.2f}")
    (root / "training_set_pixel_size_and_HC.csv").write_text("\n".join(lines) + "\n")
    return root


def test_subject_of_stem() -> None:
    assert subject_of_stem("017_HC") == subject_of_stem("017_2HC") == "017"
    assert subject_of_stem("weird") == "weird"


@pytest.mark.parametrize("subdir", [False, True])
def test_official_layout_filled_outline(tmp_path, subdir) -> None:
    ds = open_dataset(f"hc18:{make_official(tmp_path, subdir=subdir)}")
    assert len(ds) == 3 and [ds.subject_of(i) for i in range(3)] == ["000", "001", "001"]
    s = ds[1]
    assert s.plane == "trans_thalamic" and s.standard is None and s.pixel_spacing_mm == SPACING
    assert set(s.masks) == {"head"} and set(s.properties) == {"hc_mm"}
    head = s.masks["head"]
    assert head[135, 200] and not head[0, 0]  # filled inside, not outside
    hc = derive_properties(s.masks, pixel_spacing_mm=SPACING)["hc_mm"]
    assert hc == pytest.approx(s.properties["hc_mm"], rel=0.02)


def test_fill_outline_with_gap_falls_back_to_ellipse(tmp_path) -> None:
    ds = open_dataset(f"hc18:{make_official(tmp_path, gap=True)}")
    s = ds[0]
    assert s.masks["head"][135, 200] and s.masks["head"].sum() > 0.9 * np.pi * 100 * 70
    assert not fill_outline(np.zeros((5, 5), bool)).any()


def test_test_subset_without_hc(tmp_path) -> None:
    (tmp_path / "test_set").mkdir()
    cv2.imwrite(str(tmp_path / "test_set" / "000_HC.png"), np.zeros((20, 30), np.uint8))
    (tmp_path / "test_set_pixel_size.csv").write_text("filename,pixel size(mm)\n000_HC.png,0.1\n")
    s = open_dataset(f"hc18:{tmp_path}?subset=test")[0]
    assert s.masks == {} and s.properties == {} and s.pixel_spacing_mm == 0.1


@pytest.mark.parametrize("line,match", [
    ("001_HC.png,0.2", "line 3: expected 3 fields"),
    ("001_HC.png,abc,50", "line 3: column 2 .*must be a number"),
    ("001_HC.png,-0.2,50", r"line 3: column 2 .*in \[0\.01, 10\]"),
    ("001_HC.png,nan,50", "line 3: column 2 .*finite"),
    ("001_HC.png,0.2,0", "line 3: column 3 .*positive"),
    ("000_HC.png,0.2,50", "line 3: filename '000_HC.png' is already listed on line 2"),
    ("001_HC.png;0.2;50", "line 3: expected 3 fields"),
])
def test_malformed_csv_names_file_and_line(tmp_path, line, match) -> None:
    root = make_official(tmp_path)
    csv = root / "training_set_pixel_size_and_HC.csv"
    rows = csv.read_text().splitlines()
    rows[2] = line
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=f"training_set_pixel_size_and_HC.csv, {match}"):
        open_dataset(f"hc18:{root}")


def test_every_csv_problem_collected(tmp_path) -> None:
    root = make_official(tmp_path)
    csv = root / "training_set_pixel_size_and_HC.csv"
    rows = csv.read_text().splitlines()
    rows[1] = "000_HC.png,0,50"
    rows[2] = "001_HC.png,0.2,inf"
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"2 problems in hc18:.*line 2: column 2.*line 3: column 3"):
        open_dataset(f"hc18:{root}")
    ds = open_dataset(f"hc18:{root}", lenient=True)
    assert len(ds) == 3 and ds[0].pixel_spacing_mm is None and ds[1].properties == {} and len(ds.problems) == 2
    csv.write_bytes(b"filename;pixel size(mm);head circumference (mm)\n000_HC.png;0.2;50\n")
    with pytest.raises(InputError, match="line 1: wrong delimiter"):
        open_dataset(f"hc18:{root}")
    csv.write_bytes(b"")
    with pytest.raises(InputError, match="training_set_pixel_size_and_HC.csv: empty file"):
        open_dataset(f"hc18:{root}")


def test_not_an_hc18_folder_and_bad_option(tmp_path) -> None:
    with pytest.raises(InputError, match="not an HC18 folder"):
        open_dataset(f"hc18:{tmp_path}")
    with pytest.raises(InputError, match="not found"):
        open_dataset(f"hc18:{tmp_path / 'missing'}")
    with pytest.raises(InputError, match="unknown option"):
        open_dataset(f"hc18:{make_official(tmp_path)}?colour=red")


@pytest.mark.realdata
def test_shared_layout(hc18_path) -> None:
    ds = open_dataset(f"hc18:{hc18_path}")
    assert len(ds) == 806
    subjects = {ds.subject_of(i) for i in range(len(ds))}
    assert len(subjects) < len(ds)
    val = set(ds.split_indices("val"))
    train = set(ds.split_indices("train"))
    assert not {ds.subject_of(i) for i in val} & {ds.subject_of(i) for i in train}
    errors = []
    for i in range(0, len(ds), 40):  # a subset, for speed; the full check is in test_check.py
        s = ds[i]
        assert s.image.dtype == np.uint8 and s.masks["head"].shape == s.image.shape
        hc = derive_properties(s.masks, pixel_spacing_mm=s.pixel_spacing_mm)["hc_mm"]
        errors.append(abs(hc - s.properties["hc_mm"]))
    assert np.mean(errors) <= 1.0


def test_masks_follow_the_annotation_centre_line(tmp_path) -> None:
    """The recorded HC is the outline's centre line: the centre-line mask measures it, the filled one is long."""
    root = make_official(tmp_path, names=("000_HC",))
    centre, filled = (open_dataset(f"hc18:{root}{opt}")[0] for opt in ("", "?mask=filled"))
    recorded = centre.properties["hc_mm"]
    err_centre = derive_properties(centre.masks, pixel_spacing_mm=SPACING)["hc_mm"] - recorded
    err_filled = derive_properties(filled.masks, pixel_spacing_mm=SPACING)["hc_mm"] - recorded
    assert err_filled > 0.5 and abs(err_centre) < err_filled / 2
    assert centre.masks["head"].sum() < filled.masks["head"].sum()


def test_unknown_mask_option_is_named(tmp_path) -> None:
    with pytest.raises(InputError, match="option mask must be centre or filled, got 'outer'"):
        open_dataset(f"hc18:{make_official(tmp_path)}?mask=outer")


def test_centre_line_mask_keeps_an_empty_mask_empty() -> None:
    from pcbm.data.hc18 import centre_line_mask

    assert not centre_line_mask(np.zeros((8, 8), bool)).any()
