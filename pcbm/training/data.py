"""Samples -> tensors with label masks, ultrasound augmentations, and the mixing DataModule.

Every batch carries, next to the values, *whether* each value is labelled, so losses and metrics
skip what a sample lacks:

    image           (B, 1, S, S) float in [0, 1] (letterboxed, see pcbm.data.preprocess)
    masks           (B, V, S, S) float; mask_labelled (B, V) bool
                    mask_box (B, V) bool: the channel holds a box drawn around the structure
                    (``Sample.mask_boxes``), not its mask; mask_labelled is False there
    properties      (B, P) float: binary 0/1, continuous normalised by the long side; prop_labelled (B, P)
    plane           (B,) long, -1 when unlabelled
    plane_set       (B, K) bool: the planes the label allows (one for a plane label; TT, TV and TC for
                    a head-group label such as the African set's brain images); all False when unlabelled
    presence        (B, V) bool: structures the plane label implies present (``implied_concepts``) whose
                    mask is not labelled: an image-level (multiple-instance) target. Structures it
                    implies *absent* become labelled all-black masks, and both set the "<structure>
                    visible" property labels the dataset left out
    standard        (B,) long, -1 when unlabelled
    pixel_spacing   (B,) float, NaN when unknown;   long_side (B,) float (original pixels)
    hc_mm           (B,) float, NaN when unknown

Example:
    >>> parse_source("hc18:/data/hc18@2")
    ('hc18:/data/hc18', 2.0)
    >>> parse_source("phantom:n=100,seed=1")
    ('phantom:n=100,seed=1', 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pcbm.concepts import (
    PLANE_NAMES,
    PROPERTY_CONCEPT_NAMES,
    PROPERTY_CONCEPTS,
    VISUAL_CONCEPT_NAMES,
    implied_concepts,
    implied_properties,
    plane_group,
    planes_of_group,
)
from pcbm.data import Sample, SampleDataset
from pcbm.data.preprocess import letterbox, letterbox_mask


def parse_source(spec: str) -> tuple[str, float]:
    """Split ``SPEC@WEIGHT`` into (spec, weight); the weight defaults to 1."""
    head, at, tail = spec.rpartition("@")
    if at:
        try:
            w = float(tail)
        except ValueError:
            return spec, 1.0
        if not w > 0 or not math.isfinite(w):
            raise ValueError(f"data weight must be a positive number, got {tail!r} in {spec!r}")
        return head, w
    return spec, 1.0


def complete_properties(sample: Sample) -> dict[str, float | None]:
    """The sample's property labels, plus those its labelled masks determine (e.g. HC18's
    head_complete / head_magnified from the head mask), via ``pcbm.concepts.measure.derive_properties``.
    Labels the dataset gives win."""
    props = dict(sample.properties)
    wanted = [c.name for c in PROPERTY_CONCEPTS if c.name not in props and (
        (c.derived_from and all(v in sample.masks for v in c.derived_from)) or c.name == "gain_adequate")]
    if sample.masks and wanted:  # derive only what the dataset left out (the phantom labels everything)
        from pcbm.concepts.measure import derive_properties

        derived = derive_properties(sample.masks, sample.image, sample.pixel_spacing_mm, sample.field_of_view)
        for k, v in derived.items():
            props.setdefault(k, v)
    return props


def sample_group(sample: Sample) -> str | None:
    """The plane group a sample is labelled with: its plane's, else ``meta["plane_group"]`` (a brain image
    without a sub-plane); None when neither."""
    group = sample.meta.get("plane_group") if sample.plane is None else None
    return plane_group(sample.plane if sample.plane in PLANE_NAMES else None, group)


def plane_set(sample: Sample) -> np.ndarray:
    """(K,) bool: the planes the sample's label allows; all False when it has none (see the module docstring)."""
    out = np.zeros(len(PLANE_NAMES), bool)
    if sample.plane in PLANE_NAMES:
        out[PLANE_NAMES.index(sample.plane)] = True
    elif (group := sample_group(sample)) is not None:
        out[[PLANE_NAMES.index(p) for p in planes_of_group(group)]] = True
    return out


def implied_labels(sample: Sample) -> tuple[list[str], list[str], dict[str, float]]:
    """(structures implied present, implied absent, "<structure> visible" labels) for the structures the
    sample labels neither by mask nor by box; empty without a plane label."""
    group = sample_group(sample)
    if group is None:
        return [], [], {}
    imp = implied_concepts(None, group)
    known = set(sample.masks) | set(sample.mask_boxes)
    present = [v for v in imp.present if v not in known]
    absent = [v for v in imp.absent if v not in known]
    return present, absent, implied_properties(None, group)


def encode_sample(sample: Sample, size: int, augment: Callable[..., dict] | None = None) -> dict[str, Any]:
    """One sample as fixed-size arrays (see the module docstring); ``augment`` is an albumentations
    transform applied to the letterboxed image and masks together."""
    image, box = letterbox(sample.image, size)
    mask_labelled = np.zeros(len(VISUAL_CONCEPT_NAMES), bool)
    masks = np.zeros((len(VISUAL_CONCEPT_NAMES), size, size), np.float32)
    for name, m in sample.masks.items():
        if name in VISUAL_CONCEPT_NAMES:
            i = VISUAL_CONCEPT_NAMES.index(name)
            masks[i] = letterbox_mask(m, box)
            mask_labelled[i] = True
    mask_box = np.zeros(len(VISUAL_CONCEPT_NAMES), bool)
    for name, m in sample.mask_boxes.items():
        if name in VISUAL_CONCEPT_NAMES:
            i = VISUAL_CONCEPT_NAMES.index(name)
            masks[i] = letterbox_mask(m, box)
            mask_box[i] = True
    present, absent, implied = implied_labels(sample)
    presence = np.zeros(len(VISUAL_CONCEPT_NAMES), bool)
    for name in present:
        presence[VISUAL_CONCEPT_NAMES.index(name)] = True
    for name in absent:  # a labelled, all-black mask: "labelled and absent"
        mask_labelled[VISUAL_CONCEPT_NAMES.index(name)] = True
    if augment is not None:
        res = augment(image=image, masks=list(masks))
        image = np.clip(res["image"], 0, 1).astype(np.float32)
        masks = np.stack(res["masks"]).astype(np.float32)
    spacing = sample.pixel_spacing_mm
    props = complete_properties(sample)
    for name, value in implied.items():
        props.setdefault(name, value)
    values = np.zeros(len(PROPERTY_CONCEPT_NAMES), np.float32)
    labelled = np.zeros(len(PROPERTY_CONCEPT_NAMES), bool)
    for c in PROPERTY_CONCEPTS:
        v = props.get(c.name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if c.binary:
            values[c.index], labelled[c.index] = float(v >= 0.5), True
        elif spacing:
            values[c.index], labelled[c.index] = float(v) / (spacing * box.long_side), True
    hc = props.get("hc_mm")
    return {
        "image": image[None],
        "masks": masks,
        "mask_labelled": mask_labelled,
        "mask_box": mask_box,
        "properties": values,
        "prop_labelled": labelled,
        "plane": np.int64(PLANE_NAMES.index(sample.plane) if sample.plane in PLANE_NAMES else -1),
        "plane_set": plane_set(sample),
        "presence": presence,
        "standard": np.int64(-1 if sample.standard is None else int(bool(sample.standard))),
        "pixel_spacing": np.float32(spacing if spacing else math.nan),
        "long_side": np.float32(box.long_side),
        "hc_mm": np.float32(hc if hc is not None else math.nan),
    }


def ultrasound_augment(strength: float = 1.0, seed: int | None = None) -> Callable[..., dict]:
    """Label-preserving augmentations: mild geometry (flip, ±8° rotation, ±5 % scale, ±3 % shift —
    small, so completeness / angle / magnification labels stay true), gain / contrast / gamma,
    Gaussian and multiplicative (speckle-like) noise, blur.

    albumentations draws from its own generator, not numpy's or torch's: ``seed`` seeds it (None:
    a fresh random state); DataLoader workers reseed their copy (:func:`seed_worker`)."""
    import albumentations as A

    s = strength
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(1 - 0.05 * s, 1 + 0.05 * s), rotate=(-8 * s, 8 * s), translate_percent=(-0.03 * s, 0.03 * s),
                 interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT,
                 fill=0, fill_mask=0, p=0.7),
        A.RandomBrightnessContrast(brightness_limit=0.08 * s, contrast_limit=0.15 * s, p=0.5),
        A.RandomGamma(gamma_limit=(85, 115), p=0.3),
        A.OneOf([A.GaussNoise(std_range=(0.01, 0.04)),
                 A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=False, elementwise=True)], p=0.4),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.2),
    ], seed=seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's copy of the augmentation its own seed, taken
    from the worker's torch seed (the loader's generator + worker id, so a seeded run repeats), and
    seed numpy / random / torch in the worker as Lightning does."""
    from lightning.fabric.utilities.seed import pl_worker_init_function

    info = torch.utils.data.get_worker_info()
    if info is not None:
        for ds in getattr(info.dataset, "datasets", [info.dataset]):
            aug = getattr(ds, "augment", None)
            if aug is not None and hasattr(aug, "set_random_seed"):
                aug.set_random_seed(info.seed % 2**32)
    pl_worker_init_function(worker_id)


class EncodedDataset(Dataset):
    """A SampleDataset seen as encoded dicts of arrays (torch Dataset)."""

    def __init__(self, samples: SampleDataset, size: int, augment: Callable[..., dict] | None = None):
        self.samples, self.size, self.augment = samples, size, augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return encode_sample(self.samples[index], self.size, self.augment)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack encoded samples; the image goes channels_last."""
    batch = torch.utils.data.default_collate(list(items))
    batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return batch


def auto_workers() -> int:
    """DataLoader workers: one less than the CPU count, at most 8 (1 on a 2-core machine)."""
    import os

    return max(0, min(8, (os.cpu_count() or 1) - 1))
