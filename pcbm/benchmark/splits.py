"""Patient-level folds and the class labels the study scores.

Example:
    >>> folds = grouped_folds(["a", "a", "b", "b", "c", "c", "d", "d"], ["x", "x", "y", "y", "x", "x", "y", "y"],
    ...                       ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"], k=2, seed=0)
    >>> [sorted(set(np.array(["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4"])[t])) for _, t in folds][0] != []
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcbm.data.sample import Sample
from pcbm.errors import InputError


def label_of(sample: Sample) -> str | None:
    """The class a sample is scored on: its plane, else its plane group (the African set's brain
    images without a sub-plane: ``"head"``), else None (unlabelled: left out of the study)."""
    return sample.plane or sample.meta.get("plane_group")


def grouped_folds(ids: Sequence[str], labels: Sequence[str], subjects: Sequence[str], k: int,
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index pairs: stratified by label, grouped by subject (sklearn
    ``StratifiedGroupKFold``, shuffled with ``seed``), so no subject is on both sides.

    Raises:
        InputError: fewer subjects than folds, no class with ``k`` subjects, or k < 2.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if k < 2:
        raise InputError(f"--folds must be at least 2, got {k}")
    n_subjects = len(set(subjects))
    if n_subjects < k:
        raise InputError(f"--folds {k} needs at least {k} subjects; the data have {n_subjects}")
    per_class: dict[str, set[str]] = {}
    for label, subject in zip(labels, subjects, strict=True):
        per_class.setdefault(label, set()).add(subject)
    biggest = max(per_class, key=lambda c: len(per_class[c]), default=None)
    if biggest is not None and len(per_class[biggest]) < k:  # sklearn's ValueError, said before any work
        raise InputError(f"--folds {k} needs a class with at least {k} subjects; the largest, {biggest!r}, has "
                         f"{len(per_class[biggest])}: use --folds {max(2, len(per_class[biggest]))} or fewer, or more data")
    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    x = np.zeros((len(labels), 1))
    return [(np.asarray(tr), np.asarray(te)) for tr, te in skf.split(x, np.asarray(labels), np.asarray(subjects))]


def inner_split(labels: Sequence[str], subjects: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One grouped, stratified (fit, select) split of a training fold (about 1/3 held out) for the
    linear probe's C sweep; with fewer than 3 subjects, all indices on both sides."""
    n = len(labels)
    if len(set(subjects)) < 3:
        idx = np.arange(n)
        return idx, idx
    try:
        return grouped_folds([str(i) for i in range(n)], labels, subjects, k=3, seed=seed)[0]
    except ValueError:  # every class rarer than 3: grouped, not stratified
        from sklearn.model_selection import GroupKFold

        fit, sel = next(GroupKFold(n_splits=3).split(np.zeros((n, 1)), groups=np.asarray(subjects)))
        return np.asarray(fit), np.asarray(sel)
