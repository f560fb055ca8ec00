"""Alzubaidi et al. 2023 fetal brain structure masks (FETAL_PLANES_DB brain images), ``alzubaidi:PATH``.

Layout: ``images/<name>.png`` and ``masks/<name>.png``, one colour mask per image in PASCAL-VOC
colours: (0,0,0) background, (128,0,0) brain (the skull ellipse, filled), (0,128,0) CSP,
(128,128,0) lateral ventricle. Both sources are CC BY 4.0 (cite Burgos-Artizzu et al. 2020 and
Alzubaidi et al. 2023).

What the masks do and do not say, and how each is used:

* **head**: brain ∪ CSP ∪ ventricle colours (the CSP and ventricle are drawn over the brain), a
  full mask of our ``head`` concept.
* **csp**, **lateral_ventricle**: oriented *rectangles around* the structure, not contours. They go
  to ``Sample.mask_boxes``, never to ``Sample.masks``: training learns "nothing outside the box,
  something in every row and column the box spans" from them (a box loss), Dice against them is a
  box figure, and no property is derived from their shape.
* **not drawn is not absent**: the CSP is drawn in every image, so ``csp_visible`` is 1 for all;
  the ventricle is drawn in 20 of 56, so ``lateral_ventricle_visible`` is 1 where drawn and
  *unlabelled* (not 0) elsewhere.
* **plane**: the brain sub-plane is not recorded (the two that could be checked are
  trans-ventricular), so ``plane`` is None and ``meta["plane_group"]`` is ``"head"``.
* **pixel spacing** is not recorded: None (lengths stay unlabelled).

Subject = the ``PatientNNNNN`` prefix of the file name (FETAL_PLANES_DB's patient), so a patient's
images never straddle train and val.

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("alzubaidi:../shared/data/alzubaidi_brain")  # doctest: +SKIP
    >>> sorted(ds[0].mask_boxes)  # doctest: +SKIP
    ['csp', 'lateral_ventricle']
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.io import decode_image, list_images, read_image
from pcbm.data.sample import Sample
from pcbm.errors import InputError

#: the mask colours (RGB) of each label
COLOURS: dict[str, tuple[int, int, int]] = {"brain": (128, 0, 0), "csp": (0, 128, 0), "lateral_ventricle": (128, 128, 0)}
BOX_CONCEPTS = ("csp", "lateral_ventricle")  # drawn as rectangles around the structure
_PATIENT = re.compile(r"^(Patient\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class AlzubaidiEntry:
    image: Path
    mask: Path

    @property
    def subject(self) -> str:
        m = _PATIENT.match(self.image.stem)
        return m.group(1) if m else self.image.stem


def read_colour_mask(path: Path, shape: tuple[int, int], image_path: Path) -> dict[str, np.ndarray]:
    """The label masks of one colour mask file: name -> bool (H, W) for every colour in COLOURS.

    Raises:
        InputError: unreadable file, a size other than the image's, or colours that are not the
            dataset's (a different palette would silently give empty masks).
    """
    arr = decode_image(path, "mask")
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(f"mask {path}: expected a colour (RGB) mask in PASCAL-VOC colours, got a "
                         f"{'grey' if arr.ndim == 2 else f'{arr.shape[2]}-channel'} image")
    if arr.shape[:2] != shape:
        raise InputError(f"mask {path} has size {arr.shape[1]}x{arr.shape[0]} (WxH) but image {image_path} has "
                         f"{shape[1]}x{shape[0]}")
    rgb = arr[:, :, 2::-1].astype(np.int16)  # OpenCV decodes BGR
    out = {name: np.all(np.abs(rgb - np.array(c)) <= 8, axis=2) for name, c in COLOURS.items()}
    known = np.all(rgb <= 8, axis=2)
    for m in out.values():
        known |= m
    if known.mean() < 0.99:
        raise InputError(f"mask {path}: {100 * (1 - known.mean()):.1f} % of pixels have colours other than "
                         f"background, brain (128,0,0), CSP (0,128,0) and ventricle (128,128,0)")
    return out


class AlzubaidiDataset(EntriesDataset):
    """The 56 Alzubaidi fetal brain images (see the module docstring)."""

    name = "alzubaidi"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"alzubaidi folder not found: {self.root}" if not self.root.exists()
                             else f"alzubaidi folder {self.root} is a file, not a folder")
        images, masks = self.root / "images", self.root / "masks"
        if not images.is_dir() or not masks.is_dir():
            raise InputError(f"{self.root}: not an Alzubaidi brain folder (expected images/ and masks/ with one "
                             "colour mask per image, of the same name)")
        self.spec = f"alzubaidi:{self.root}"
        self.entries: list[AlzubaidiEntry] = []
        missing = []
        for image in list_images(images):
            mask = masks / f"{image.stem}.png"
            if mask.exists():
                self.entries.append(AlzubaidiEntry(image, mask))
            else:
                missing.append(image.name)
        if missing:
            raise InputError(f"{self.spec}: {len(missing)} image(s) without a mask in {masks} "
                             f"(e.g. {', '.join(missing[:3])})")

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        image, notes = read_image(e.image)
        labels = read_colour_mask(e.mask, image.shape, e.image)
        head = labels["brain"] | labels["csp"] | labels["lateral_ventricle"]
        if not head.any():
            raise InputError(f"mask {e.mask}: no brain drawn (an empty head mask)")
        boxes = {name: labels[name] for name in BOX_CONCEPTS if labels[name].any()}
        properties: dict[str, float | None] = {"head_visible": 1.0}
        for name in boxes:  # drawn -> visible; not drawn -> unlabelled ("not drawn" is not "absent")
            properties[f"{name}_visible"] = 1.0
        meta: dict[str, object] = {"path": str(e.image), "plane_group": "head", "box_masks": sorted(boxes)}
        if notes:
            meta["notes"] = [f"{e.image.name}: {n}" for n in notes]
        return Sample(image=image, masks={"head": head}, mask_boxes=boxes, properties=properties, plane=None,
                      standard=None, id=e.image.stem, subject=e.subject, source="alzubaidi", meta=meta)


@register_dataset("alzubaidi")
def _open_alzubaidi(path: str | None) -> AlzubaidiDataset:
    if not path:
        raise InputError("data spec 'alzubaidi:' needs a path, e.g. alzubaidi:../shared/data/alzubaidi_brain")
    return AlzubaidiDataset(path)
