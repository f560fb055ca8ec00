"""``sononet_frames:PATH``: the 13 real SonoNet example frames as a dataset.

``../shared/data/sononet/frames/<CLASS>.tiff``, the vendor screen cropped away (rows 115:734,
columns 81:874 of the 735 × 975 grabs, as the authors do), labelled through SonoNet's class -> plane
map (the same as :data:`pcbm.models.sononet.CLASS_TO_PLANE`, kept torch-free here; a test checks the
two agree: BRAIN-TV -> trans_ventricular, BRAIN-CB -> trans_cerebellar, ABDOMINAL -> abdomen, FEMUR ->
femur, 3VV/4CH/LVOT/RVOT -> thorax, the rest -> other). Each frame is its own subject. No pixel spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcbm.data.base import EntriesDataset, register_dataset
from pcbm.data.io import read_image
from pcbm.data.sample import Sample
from pcbm.errors import InputError

SCREEN = (735, 975)
CROP = (slice(115, 734), slice(81, 874))
# SonoNet's classes in its output order -> our planes: the one map (pcbm.models.sononet's CLASS_TO_PLANE is it)
SONONET_PLANES = {
    "3VV": "thorax", "4CH": "thorax", "ABDOMINAL": "abdomen", "BACKGROUND": "other",
    "BRAIN-CB": "trans_cerebellar", "BRAIN-TV": "trans_ventricular", "FEMUR": "femur", "KIDNEYS": "other",
    "LIPS": "other", "LVOT": "thorax", "PROFILE": "other", "RVOT": "thorax", "SPINE-CORONAL": "other",
    "SPINE-SAGITTAL": "other",
}


@dataclass(frozen=True)
class _Frame:
    image: Path
    subject: str
    cls: str


class SonoNetFramesDataset(EntriesDataset):
    """The SonoNet example frames (see the module docstring)."""

    name = "sononet_frames"

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        folder = root / "frames" if (root / "frames").is_dir() else root
        files = sorted(folder.glob("*.tiff")) + sorted(folder.glob("*.png"))
        if not files:
            raise InputError(f"sononet_frames: no .tiff or .png frames in {folder}")
        unknown = [f.stem for f in files if f.stem.upper() not in SONONET_PLANES]
        if unknown:
            raise InputError(f"sononet_frames: {unknown[0]!r} is not a SonoNet class; known: {', '.join(SONONET_PLANES)}")
        self.entries = [_Frame(f, f.stem, f.stem.upper()) for f in files]

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        e = self.entry(index)
        image, _ = read_image(e.image)
        if image.shape == SCREEN:
            image = np.ascontiguousarray(image[CROP])
        return Sample(image=image, plane=SONONET_PLANES[e.cls], id=e.cls, subject=e.subject, source="sononet_frames",
                      meta={"sononet_class": e.cls, "path": str(e.image)})


@register_dataset("sononet_frames")
def _open_frames(path: str | None) -> SonoNetFramesDataset:
    if not path:
        raise InputError("data spec 'sononet_frames:' needs a path, e.g. sononet_frames:../shared/data/sononet")
    return SonoNetFramesDataset(path)
