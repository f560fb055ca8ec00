"""The phantom's "other" scenes: every kind renders, only its own concepts are labelled, the old
blobs stay reproducible, and the other planes' scenes do not change with the option."""

from __future__ import annotations

import numpy as np
import pytest

from pcbm.concepts import VISUAL_CONCEPT_NAMES
from pcbm.data import open_dataset
from pcbm.data.phantom.dataset import render_scene
from pcbm.data.phantom.others import KINDS
from pcbm.data.phantom.render import geometry
from pcbm.data.phantom.scene import sample_scene
from pcbm.errors import InputError

#: the visual concepts an "other" scene of each kind may show (a spine or a kidney alone is no plane)
ALLOWED = {"spine": {"spine"}, "kidney": {"kidney"}}


def _by_kind(style: str = "clinic", size: int = 128, draws: int = 150) -> dict[str, dict]:
    g, rng, found = geometry(style, size), np.random.default_rng(5), {}
    for _ in range(draws):
        p = sample_scene("other", None, g, rng, "rich")
        found.setdefault(p["kind"], p)
    return found


def test_rich_draws_every_kind_and_each_renders_with_its_own_masks():
    found = _by_kind()
    assert set(found) == set(KINDS)
    g = geometry("clinic", 128)
    images = {}
    for kind, p in found.items():
        img, masks, props = render_scene(dict(p), g, np.random.default_rng(1))
        assert img.dtype == np.uint8 and img.shape == (128, 128)
        shown = {n for n in VISUAL_CONCEPT_NAMES if masks[n].any()}
        assert shown <= ALLOWED.get(kind, set()), (kind, shown)
        if kind in ALLOWED:
            assert shown == ALLOWED[kind], kind  # the structure is drawn and labelled
        images[kind] = img
    assert images["air"][g.fov].mean() < images["organ"][g.fov].mean() / 2, "the probe in air is dark"
    assert (images["screen"][g.fov] > 100).mean() < 0.2 and images["screen"].max() > 100, "text on black"
    assert images["vessel"][g.fov].std() > 10


def test_other_option_changes_only_the_other_scenes():
    rich = open_dataset("phantom:n=24,seed=4,size=96")
    blobs = open_dataset("phantom:n=24,seed=4,size=96,other=blobs")
    kinds = set()
    for a, b in zip(rich, blobs, strict=True):
        assert a.plane == b.plane and a.id == b.id
        if a.plane == "other":
            kinds.add(a.meta["other_kind"])
            assert b.meta["other_kind"] == "blobs" and not b.standard and not a.standard
        else:
            np.testing.assert_array_equal(a.image, b.image)
    assert kinds, "the set has other scenes"
    with pytest.raises(InputError, match="other="):
        open_dataset("phantom:n=4,other=fancy")
