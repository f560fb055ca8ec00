"""The probe-pose phantom as a dataset (``pose:``): what a navigating model is fine-tuned on."""

from __future__ import annotations

import numpy as np
import pytest

from pcbm.concepts.ontology import VISUAL_CONCEPT_NAMES
from pcbm.data import open_dataset
from pcbm.data.phantom.pose import POSE_PLANES
from pcbm.errors import InputError


def test_pose_samples_are_deterministic_labelled_frames():
    ds = open_dataset("pose:n=12,seed=3,size=96")
    assert len(ds) == 12
    a, b = ds[5], open_dataset("pose:n=12,seed=3,size=96")[5]
    assert np.array_equal(a.image, b.image) and a.meta == b.meta
    assert not np.array_equal(a.image, open_dataset("pose:n=12,seed=4,size=96")[5].image)
    targets = [ds[i].meta["target"] for i in range(len(POSE_PLANES))]
    assert targets == list(POSE_PLANES)  # the target planes cycle
    for s in (ds[i] for i in range(len(ds))):
        assert s.source == "pose" and s.image.shape == (96, 96) and s.image.dtype == np.uint8
        assert set(s.masks) == set(VISUAL_CONCEPT_NAMES) and s.pixel_spacing_mm > 0
        assert s.meta["style"] in ("default", "clinic", "portable", "highres")  # mix: training styles only
        # a plane label only where the frame meets every criterion of exactly one plane
        if s.plane is None:
            assert s.standard is None and len(s.meta["standard_for"]) != 1
        else:
            assert s.standard is True and s.meta["standard_for"] == [s.plane]


def test_pose_near_fraction_one_puts_frames_close_to_the_plane():
    near = open_dataset("pose:n=12,seed=1,size=64,near_fraction=1,planes=femur")
    far = open_dataset("pose:n=12,seed=1,size=64,near_fraction=0,planes=femur")
    d_near = np.mean([np.abs(near[i].meta["offset"]).sum() for i in range(12)])
    d_far = np.mean([np.abs(far[i].meta["offset"]).sum() for i in range(12)])
    assert {near[i].meta["target"] for i in range(12)} == {"femur"}
    assert d_near < d_far / 2


def test_pose_splits_are_by_frame_and_disjoint():
    tr = open_dataset("pose:n=40,seed=2,size=64", split="train")
    va = open_dataset("pose:n=40,seed=2,size=64", split="val")
    assert len(tr) + len(va) == 40 and len(va) > 0


@pytest.mark.parametrize("spec, words", [
    ("pose:n=4,style=nope", "unknown pose-phantom style"),
    ("pose:n=4,planes=cervix", "unknown pose-phantom plane"),
    ("pose:n=0", "n >= 1"),
    ("pose:n=4,near_fraction=2", "near_fraction"),
    ("pose:n=4,sizes=64", "sizes"),
])
def test_pose_bad_specs_are_named(spec, words):
    with pytest.raises(InputError, match=words):
        open_dataset(spec)
