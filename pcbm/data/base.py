"""Dataset base class, the dataset registry and data-spec parsing (``hc18:PATH``, ``phantom:n=…``)."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pcbm.data.sample import Sample

_REGISTRY: dict[str, Callable[..., SampleDataset]] = {}


class SampleDataset(Sequence[Sample]):
    """A sequence of :class:`Sample` with subject-level splits.

    Subclasses implement ``__len__``, ``__getitem__`` and ``subject_of``; ``subject_of`` must be
    cheap (no image decoding) so that splits need no I/O.
    """

    name: str = "dataset"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]  # pragma: no cover
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def subject_of(self, index: int) -> str:
        """Subject/patient id of sample ``index`` (default: the index itself)."""
        return str(index)

    def split_indices(self, split: str, val_fraction: float = 0.2, seed: int = 0) -> list[int]:
        """Indices of a subject-level split.

        Subjects are assigned to ``val`` by a hash of (seed, subject), so a subject's images never
        straddle train and val and the split does not depend on dataset order.

        Args:
            split: "train", "val" or "all".
            val_fraction: fraction of subjects in val.
            seed: split seed.
        """
        if split == "all":
            return list(range(len(self)))
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; choose train, val or all")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        want_val = split == "val"
        return [i for i in range(len(self)) if _is_val(self.subject_of(i), val_fraction, seed) == want_val]


class EntriesDataset(SampleDataset):
    """A dataset indexed by a list ``self.entries`` of records that each carry a ``subject``.

    Subclasses fill ``self.entries`` in ``__init__`` and build a Sample from ``self.entry(index)``.
    """

    entries: list

    def __len__(self) -> int:
        return len(self.entries)

    def subject_of(self, index: int) -> str:
        return self.entries[index].subject

    def entry(self, index: int):  # noqa: ANN201 - the subclass's record type
        """The record of sample ``index``; IndexError outside the dataset (so iteration stops)."""
        if not 0 <= index < len(self.entries):
            raise IndexError(index)
        return self.entries[index]


def _is_val(subject: str, fraction: float, seed: int) -> bool:
    h = hashlib.sha256(f"{seed}:{subject}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


class Subset(SampleDataset):
    """A view on some indices of another dataset."""

    def __init__(self, base: SampleDataset, indices: Sequence[int]):
        self.base, self.indices = base, list(indices)
        self.name = base.name

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self.base[self.indices[index]]

    def subject_of(self, index: int) -> str:
        return self.base.subject_of(self.indices[index])


def register_dataset(kind: str) -> Callable[[Callable[..., SampleDataset]], Callable[..., SampleDataset]]:
    """Register a dataset factory under a spec prefix (``@register_dataset("hc18")``).

    The factory is called as ``factory(path_or_none, **options)`` where options come from the
    ``key=value`` pairs of the spec.
    """

    def deco(factory: Callable[..., SampleDataset]) -> Callable[..., SampleDataset]:
        _REGISTRY[kind] = factory
        return factory

    return deco


def list_dataset_kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split a data spec into (kind, path, options).

    Forms: ``phantom``, ``phantom:n=200,seed=3,style=clinic``, ``hc18:PATH``,
    ``folder:PATH``, ``fetal_planes_db:PATH?machine=Voluson E6&split=val``. Options after a
    path follow ``?`` and are ``&``-separated; for path-less kinds they follow ``:`` and are
    ``,``-separated. Values that look like numbers become numbers.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty data spec; expected e.g. 'phantom' or 'hc18:PATH'")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    path: str | None = None
    opts_text = ""
    if kind == "phantom":
        opts_text, sep = rest, ","
    else:
        path, _, opts_text = rest.partition("?")
        sep = "&"
        path = path or None
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in opts_text.split(sep))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bad option {item!r} in data spec {spec!r}; expected key=value")
        options[key.strip()] = _coerce(value.strip())
    return kind, path, options


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def open_dataset(spec: str, split: str = "all", val_fraction: float = 0.2, seed: int = 0) -> SampleDataset:
    """Open a dataset from a spec string, optionally one subject-level split of it.

    Example:
        >>> ds = open_dataset("phantom:n=8,seed=1")  # doctest: +SKIP
        >>> ds[0].plane  # doctest: +SKIP
        'trans_thalamic'
    """
    kind, path, options = parse_spec(spec)
    _load_builtin()
    if kind not in _REGISTRY:
        close = difflib.get_close_matches(kind, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset kind {kind!r} in spec {spec!r}{hint} known: {', '.join(sorted(_REGISTRY))}")
    split = str(options.pop("split", split))
    ds = _REGISTRY[kind](path, **options)
    if len(ds) == 0:
        raise ValueError(f"dataset {spec!r} is empty")
    if split == "all":
        return ds
    return Subset(ds, ds.split_indices(split, val_fraction, seed))


def _load_builtin() -> None:
    """Import the built-in dataset modules so their ``@register_dataset`` calls run."""
    import importlib

    for mod in ("pcbm.data.hc18", "pcbm.data.fetal_planes_db", "pcbm.data.folder", "pcbm.data.phantom",
                "pcbm.data.dicom"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a module not written yet must not break the others
            if e.name != mod:
                raise
