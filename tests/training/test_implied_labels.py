"""Real images with a plane label only: what the label implies (ontology), how it is encoded, and the
losses and refit that read it (plane groups, image-level presence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import ListDataset  # tests/training is on sys.path (pytest's rootdir-less import)

from pcbm.concepts import (
    IMPLIED_BY_GROUP,
    PLANE_NAMES,
    VISUAL_CONCEPT_NAMES,
    implied_concepts,
    implied_properties,
    planes_of_group,
)
from pcbm.data import Sample, open_dataset
from pcbm.errors import InputError
from pcbm.training.data import encode_sample, plane_set
from pcbm.training.losses import plane_loss, presence_loss


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64), dtype=np.uint8)


def test_the_implications_are_well_formed() -> None:
    for group, imp in IMPLIED_BY_GROUP.items():
        assert not set(imp.present) & set(imp.absent), group
        assert set(imp.present) | set(imp.absent) <= set(VISUAL_CONCEPT_NAMES), group
    assert "bladder" not in {v for imp in IMPLIED_BY_GROUP.values() for v in imp.absent}  # maternal: any frame
    assert implied_concepts("other") == implied_concepts(None, None) == IMPLIED_BY_GROUP["other"]
    with pytest.raises(InputError, match="plane group"):
        implied_concepts(None, "knee")


def test_the_implications_hold_on_the_phantoms_ground_truth() -> None:
    """Every structure a plane implies absent is absent from every phantom scene of that plane, and every
    structure it implies present is there in its standard scenes (a non-standard femur may lack the femur)."""
    checked = 0
    for s in open_dataset("phantom:n=120,seed=5,size=96"):
        if s.plane is None:
            continue
        imp = implied_concepts(s.plane)
        assert not any(s.masks[v].any() for v in imp.absent), (s.id, s.plane)
        if s.standard:
            assert all(s.masks[v].any() for v in imp.present), (s.id, s.plane)
            checked += 1
    assert checked > 20


def test_a_brain_image_without_sub_plane_is_encoded_as_the_head_group() -> None:
    s = Sample(image=_image(), id="brain", meta={"plane_group": "head"})
    e = encode_sample(s, 64)
    assert [PLANE_NAMES[i] for i in np.flatnonzero(e["plane_set"])] == list(planes_of_group("head"))
    assert e["plane"] == -1  # no single plane: the plane metrics skip it
    assert [VISUAL_CONCEPT_NAMES[i] for i in np.flatnonzero(e["presence"])] == ["head"]
    absent = {VISUAL_CONCEPT_NAMES[i] for i in np.flatnonzero(e["mask_labelled"])}
    assert absent == set(implied_concepts(None, "head").absent)
    assert not e["masks"].any()  # absent = labelled, all black
    from pcbm.concepts import get_concept

    props = {name: e["properties"][get_concept(name).index] for name in ("head_visible", "femur_visible")}
    assert props == {"head_visible": 1.0, "femur_visible": 0.0}
    assert not e["prop_labelled"][get_concept("csp_visible").index]  # the CSP is neither implied nor labelled


def test_labels_the_dataset_gives_win_over_implied_ones() -> None:
    femur = np.zeros((48, 64), bool)  # a femur plane whose femur mask is labelled empty (a broken scene)
    s = Sample(image=_image(1), id="f", plane="femur", masks={"femur": femur}, properties={"femur_visible": 0.0})
    e = encode_sample(s, 64)
    i = VISUAL_CONCEPT_NAMES.index("femur")
    from pcbm.concepts import get_concept

    assert not e["presence"][i] and e["mask_labelled"][i] and not e["masks"][i].any()
    assert e["properties"][get_concept("femur_visible").index] == 0.0
    assert implied_properties("femur")["femur_visible"] == 1.0
    unlabelled = encode_sample(Sample(image=_image(2), id="u"), 64)
    assert not unlabelled["plane_set"].any() and not unlabelled["presence"].any() and not unlabelled["mask_labelled"].any()


def test_plane_set_loss_is_cross_entropy_for_one_plane_and_sums_a_group() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, len(PLANE_NAMES))
    target = torch.tensor([0, 3, -1, 7])
    allowed = torch.zeros(4, len(PLANE_NAMES), dtype=torch.bool)
    for row, t in enumerate(target.tolist()):
        if t >= 0:
            allowed[row, t] = True
    assert torch.allclose(plane_loss(logits, target, allowed), plane_loss(logits, target))
    head = torch.tensor([[p in planes_of_group("head") for p in PLANE_NAMES]])
    lg = logits[:1]
    expected = -torch.log(lg.softmax(1)[0, head[0]].sum())
    assert torch.allclose(plane_loss(lg, torch.tensor([-1]), head), expected)
    assert float(plane_loss(lg, torch.tensor([-1]), torch.zeros_like(head))) == 0.0


def test_presence_loss_wants_the_structure_somewhere_not_everywhere() -> None:
    lg = torch.full((2, 3, 16, 16), -6.0, requires_grad=True)
    present = torch.tensor([[True, False, False], [False, False, False]])
    high = presence_loss(lg, present)
    spot = lg.detach().clone()
    spot[0, 0, 2:8, 2:8] = 6.0  # 36 pixels: more than the top-k pool
    assert float(presence_loss(spot, present)) < 0.01 < float(high.detach())
    high.backward()
    assert lg.grad[0, 0].abs().sum() > 0 and lg.grad[0, 1:].abs().sum() == 0 and lg.grad[1].abs().sum() == 0


def test_refit_reads_plane_group_labels() -> None:
    from pcbm.models import build_model
    from pcbm.training.refit import collect_concepts, refit_decision

    samples = [Sample(image=_image(i), id=f"b{i}", meta={"plane_group": "head"}) for i in range(3)]
    samples += [Sample(image=_image(9), id="f", plane="femur"), Sample(image=_image(10), id="none")]
    model = build_model("tiny")
    x, allowed = collect_concepts(model, ListDataset(samples), 10)
    assert allowed.shape == (4, len(PLANE_NAMES)) and sorted(allowed.sum(1).tolist()) == [1, 3, 3, 3]  # unlabelled skipped
    info = refit_decision(model, [ListDataset(samples)], 10, steps=40)
    assert info["n"] == 4 and info["train_accuracy"] >= 0.75  # at least the three brains land in the head group
    assert plane_set(samples[-1]).sum() == 0
