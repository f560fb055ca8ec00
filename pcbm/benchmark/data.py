"""The study's data: a labelled set from a data spec, the SonoNet example frames as a dataset kind,
and the class mapping an out-of-domain set is scored with. The SonoNet example frames are the
dataset kind ``sononet_frames:PATH`` (:mod:`pcbm.data.sononet_frames`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcbm.benchmark.splits import label_of
from pcbm.data.base import SampleDataset, open_dataset
from pcbm.data.sononet_frames import SONONET_PLANES, SonoNetFramesDataset  # noqa: F401 - re-exported
from pcbm.errors import InputError


@dataclass
class LabelledSet:
    """A dataset's labelled samples: the indices used, their labels and subjects."""

    spec: str
    dataset: SampleDataset
    indices: list[int]
    labels: list[str]
    subjects: list[str]
    ids: list[str]
    dropped_unlabelled: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return short_name(self.spec)

    def images(self) -> list[np.ndarray]:
        return [self.dataset[i].image for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)


def open_labelled(spec: str) -> LabelledSet:
    """Open ``spec`` and keep the samples with a label (plane or plane group).

    Raises:
        InputError: a bad spec, or no labelled sample.
    """
    ds = open_dataset(spec)
    idx, labels, subjects, ids, dropped = [], [], [], [], 0
    for i in range(len(ds)):
        s = ds[i]
        lab = label_of(s)
        if lab is None:
            dropped += 1
            continue
        idx.append(i)
        labels.append(lab)
        subjects.append(f"{ds.name}:{ds.subject_of(i)}")
        ids.append(s.id or ds.item_name(i))
    if not idx:
        raise InputError(f"data {spec!r} has no sample with a plane label")
    notes = []
    dup = getattr(ds, "duplicates", None)
    if dup:
        notes.append(f"{len(dup)} byte-identical duplicate image(s) dropped ({sum(not s for *_, s in dup)} with "
                     "a different label)")
    if dropped:
        notes.append(f"{dropped} sample(s) without a plane label left out")
    return LabelledSet(spec, ds, idx, labels, subjects, ids, dropped, notes)


def short_name(spec: str) -> str:
    """A file-safe short name of a spec: ``phantom-n=120-seed=2-style=heldout``, ``african-Zenodo``."""
    kind, _, rest = spec.partition(":")
    rest = Path(rest.split("?")[0]).name + ("-" + rest.split("?", 1)[1] if "?" in rest else "") if "/" in rest else rest
    safe = "".join(c if c.isalnum() or c in "=-_." else "-" for c in f"{kind}-{rest}".strip("-"))
    return safe[:80]


def class_mapping(id_classes: list[str], ood_labels: list[str]) -> tuple[str, dict[str, str], list[str]]:
    """How an external set is scored: (level, model class -> scored label, the set's classes).

    Plane level when every label of the set is one of the model's classes; else plane-group level
    (head, abdomen, femur, thorax, cervix, other: the ontology's groups), both sides mapped. A
    prediction onto a class the set does not have counts as an error.
    """
    from pcbm.concepts import get_plane

    def group(name: str) -> str:
        try:
            return get_plane(name).group
        except KeyError:
            return name

    set_classes = sorted(set(ood_labels), key=ood_labels.index)
    if set(set_classes) <= set(id_classes):
        return "plane", {c: c for c in id_classes}, set_classes
    mapping = {c: group(c) for c in id_classes}
    return "group", mapping, sorted({group(c) for c in set_classes}, key=[group(c) for c in ood_labels].index)


def describe_mapping(name: str, level: str, mapping: dict[str, str], classes: list[str]) -> str:
    """One line for the log and the table: what is scored, and which model classes the set lacks."""
    absent = [c for c, v in mapping.items() if v not in classes]
    moved = [f"{c}->{v}" for c, v in mapping.items() if v != c and v in classes]
    parts = [f"{name}: scored at {level} level on its {len(classes)} class(es) {', '.join(classes)}"]
    if moved:
        parts.append(f"mapped {', '.join(moved)}")
    if absent:
        parts.append(f"model classes absent from it (predictions of them count as errors): {', '.join(absent)}")
    return "; ".join(parts)
