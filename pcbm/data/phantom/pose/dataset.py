"""Probe-pose phantom frames as a dataset (``pose:n=…,seed=…,style=…``): what a navigating model reads.

Each sample is a fresh fetus cut at a random probe pose around one of :data:`POSE_PLANES` (cycled):
most poses anywhere in the starting box (:data:`~pcbm.data.phantom.pose.START_BOX`, times 1.25), a
share close to the standard pose, as the navigation fit draws them. Masks and properties are the
ground truth, so the segmenter and property head learn to read these sections (which a 2D phantom
scene never shows: structures cut obliquely, half in view, slices between two planes).

Plane labels: a frame that meets every criterion of exactly one pose plane is labelled with it
(standard); every other frame has no plane or status label (its concepts are still supervised):
a section between two planes is not any plane's "non-standard" example, and calling it "other"
would teach the decision a falsehood.

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("pose:n=6,seed=1,size=96")
    >>> s = ds[0]
    >>> s.source, s.image.shape, s.meta["target"]
    ('pose', (96, 96), 'trans_thalamic')
"""

from __future__ import annotations

import numpy as np

from pcbm.data.base import SampleDataset
from pcbm.data.phantom.dataset import MIX
from pcbm.data.phantom.pose.scene import POSE_PLANES, PoseScene, random_pose
from pcbm.data.phantom.styles import STYLE_IDS, STYLE_NAMES, TRAIN_STYLES
from pcbm.data.sample import Sample
from pcbm.errors import InputError, look_up

_MIX_ID = 97  # the key of a "mix" style in a sample's random stream (as the 2D phantom's)


def make_pose_sample(seed: int, index: int, style: str = MIX, size: int = 256, near_fraction: float = 0.3,
                     planes: tuple[str, ...] = POSE_PLANES) -> Sample:
    """Render pose-phantom sample ``index`` (deterministic per seed, index, style, size)."""
    rng = np.random.default_rng([int(seed), int(index), _MIX_ID if style == MIX else STYLE_IDS[style], int(size), 20])
    name = str(TRAIN_STYLES[int(rng.integers(len(TRAIN_STYLES)))]) if style == MIX else style
    target = planes[index % len(planes)]
    scene = PoseScene.sample(rng, style=name, size=size)
    pose = random_pose(scene, target, rng, scale=0.35 if rng.random() < near_fraction else 1.25)
    frame = scene.render(pose, rng)
    standard_for = [p for p in POSE_PLANES if frame.standard_for(p)]
    plane = standard_for[0] if len(standard_for) == 1 else None
    return Sample(image=frame.image, pixel_spacing_mm=float(frame.pixel_spacing_mm), masks=dict(frame.masks),
                  properties=dict(frame.properties), plane=plane, standard=True if plane else None,
                  id=f"pose-{seed}-{index}", subject=f"pose-{seed}-{index}", source="pose",
                  field_of_view=np.asarray(frame.fov).copy(),
                  meta={"style": name, "target": target, "standard_for": standard_for,
                        "offset": [round(float(v), 3) for v in scene.plane_offset(pose, target)],
                        "gestational_age_weeks": round(float(scene.fetus.ga), 2)})


class PoseDataset(SampleDataset):
    """Pose-phantom frames rendered on the fly (no disk).

    Args:
        n: number of samples.
        seed: dataset seed.
        style: a scanner style name, or "mix" (each fetus one of the training styles).
        size: image side in pixels.
        near_fraction: share of poses drawn close to the target plane's standard pose.
        planes: target planes ("+"-separated names from :data:`POSE_PLANES`), cycled; default all.
    """

    name = "pose"

    def __init__(self, n: int = 1000, seed: int = 0, style: str = MIX, size: int = 256, near_fraction: float = 0.3,
                 planes: str | tuple[str, ...] | None = None):
        look_up(style, (*STYLE_NAMES, MIX), "pose-phantom style")
        if int(n) < 1 or int(size) < 48:
            raise InputError(f"pose phantom needs n >= 1 and size >= 48, got n={n}, size={size}")
        if not 0.0 <= float(near_fraction) <= 1.0:
            raise InputError(f"near_fraction must be in [0, 1], got {near_fraction}")
        items = POSE_PLANES if planes in (None, "", "all") else tuple(
            str(p).strip() for p in (planes.split("+") if isinstance(planes, str) else planes))
        for p in items:
            look_up(p, POSE_PLANES, "pose-phantom plane")
        self.n, self.seed, self.style, self.size = int(n), int(seed), str(style), int(size)
        self.near_fraction, self.planes = float(near_fraction), items

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not -self.n <= index < self.n:
            raise IndexError(f"pose index {index} out of range for n={self.n}")
        return make_pose_sample(self.seed, index % self.n, self.style, self.size, self.near_fraction, self.planes)

    def subject_of(self, index: int) -> str:
        return f"pose-{self.seed}-{index}"
