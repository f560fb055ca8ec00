"""The procedural B-mode phantom: the built-in dataset (``phantom:n=…,seed=…,style=…``).

Example:
    >>> from pcbm.data import open_dataset
    >>> ds = open_dataset("phantom:n=8,seed=1,size=128")
    >>> sorted({s.plane for s in ds})[:2]
    ['abdomen', 'cervix']
"""

from __future__ import annotations

from pcbm.data.base import SampleDataset, register_dataset
from pcbm.data.phantom.dataset import MIX, PLANE_GROUPS, RANDOM, PhantomDataset, make_sample
from pcbm.data.phantom.scene import breakable
from pcbm.data.phantom.styles import STYLE_NAMES, TRAIN_STYLES, ScannerStyle, get_style, random_style
from pcbm.data.phantom.sweep import sweep

__all__ = ["MIX", "PLANE_GROUPS", "RANDOM", "STYLE_NAMES", "TRAIN_STYLES", "PhantomDataset", "ScannerStyle",
           "breakable", "get_style", "make_sample", "phantom", "random_style", "sweep"]


@register_dataset("phantom")
def phantom(path: str | None = None, n: int = 1000, seed: int = 0, style: str = "default", size: int = 256,
            standard_fraction: float = 0.5, planes: str | None = None, other: str = "rich") -> PhantomDataset:
    """Dataset factory for the spec ``phantom:n=…,seed=…,style=…,size=…,standard_fraction=…,planes=…,other=rich|blobs``."""
    return PhantomDataset(n=n, seed=seed, style=str(style), size=size, standard_fraction=standard_fraction,
                          planes=planes, other=str(other))


@register_dataset("pose")
def pose(path: str | None = None, n: int = 1000, seed: int = 0, style: str = "mix", size: int = 256,
         near_fraction: float = 0.3, planes: str | None = None) -> SampleDataset:
    """Dataset factory for the probe-pose phantom ``pose:n=…,seed=…,style=…,size=…,near_fraction=…,planes=…``
    (:class:`pcbm.data.phantom.pose.dataset.PoseDataset`)."""
    from pcbm.data.phantom.pose.dataset import PoseDataset

    return PoseDataset(n=n, seed=seed, style=str(style), size=size, near_fraction=near_fraction, planes=planes)
