"""Dataset base class, the dataset registry and data-spec parsing (``hc18:PATH``, ``phantom:n=…``)."""

from __future__ import annotations

import hashlib
import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcbm.data.sample import Sample
from pcbm.errors import InputError, unknown_name

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

    def item_name(self, index: int) -> str:
        """A short, cheap name of sample ``index`` for reports and JSON (default ``<name>_<index>``)."""
        return f"{self.name}_{index:05d}"

    def stratum_of(self, index: int) -> str | None:
        """The stratum sample ``index`` belongs to for splits (a plane, a centre), or None (default): a
        dataset that names strata is split stratified, each stratum's subjects in the same proportion."""
        return None

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
        subjects = [self.subject_of(i) for i in range(len(self))]
        strata: dict[str, str | None] = {}
        for i, subject in enumerate(subjects):
            strata.setdefault(subject, self.stratum_of(i))  # a subject's stratum is its first image's
        if all(v is None for v in strata.values()):
            val = {s for s in strata if _is_val(s, val_fraction, seed)}
        else:
            val = _stratified_val(strata, val_fraction, seed)
        return [i for i, subject in enumerate(subjects) if (subject in val) == want_val]


class EntriesDataset(SampleDataset):
    """A dataset indexed by a list ``self.entries`` of records that each carry a ``subject``.

    Subclasses fill ``self.entries`` in ``__init__`` and build a Sample from ``self.entry(index)``.
    """

    entries: list

    def __len__(self) -> int:
        return len(self.entries)

    def subject_of(self, index: int) -> str:
        return self.entries[index].subject

    def item_name(self, index: int) -> str:
        """The file stem of the entry's image when it has one; else ``<name>_<index>``."""
        image = getattr(self.entries[index], "image", None)
        return Path(image).stem if isinstance(image, str | Path) else super().item_name(index)

    def entry(self, index: int):  # noqa: ANN201 - the subclass's record type
        """The record of sample ``index``; IndexError outside the dataset (so iteration stops)."""
        if not 0 <= index < len(self.entries):
            raise IndexError(index)
        return self.entries[index]


def _hash01(subject: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{subject}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _is_val(subject: str, fraction: float, seed: int) -> bool:
    return _hash01(subject, seed) < fraction


def _stratified_val(strata: dict[str, str | None], fraction: float, seed: int) -> set[str]:
    """Validation subjects: in every stratum, ``round(fraction * n)`` of its n subjects (at least one where
    it has two or more), the first by a hash of (seed, subject) — order-free and repeatable.

    Example:
        >>> strata = {f"s{i}": "a" if i < 8 else "b" for i in range(12)}
        >>> val = _stratified_val(strata, 0.25, 0)
        >>> sum(strata[s] == "a" for s in val), sum(strata[s] == "b" for s in val)
        (2, 1)
    """
    by: dict[str | None, list[str]] = {}
    for subject, stratum in strata.items():
        by.setdefault(stratum, []).append(subject)
    val: set[str] = set()
    for members in by.values():
        n = len(members)
        k = max(1, round(fraction * n)) if n >= 2 else 0
        val.update(sorted(members, key=lambda s: _hash01(s, seed))[:k])
    return val


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

    def item_name(self, index: int) -> str:
        return self.base.item_name(self.indices[index])

    def stratum_of(self, index: int) -> str | None:
        return self.base.stratum_of(self.indices[index])


@dataclass(frozen=True)
class DatasetItem:
    """A reference to sample ``index`` of a dataset, read only when used (``pcbm report`` and
    ``pcbm predict`` given a data spec: each image with its own pixel spacing and recorded values)."""

    dataset: SampleDataset
    index: int
    spec: str

    @property
    def name(self) -> str:
        return self.dataset.item_name(self.index)

    def load(self) -> Sample:
        return self.dataset[self.index]


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


SPLITS = ("train", "val", "all")
PATHLESS_KINDS = ("phantom", "pose")  # kinds whose options follow ':' directly (``phantom:n=20,seed=3``)


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split a data spec into (kind, path, options).

    Forms: ``phantom``, ``phantom:n=200,seed=3,style=clinic``, ``hc18:PATH``,
    ``folder:PATH``, ``fetal_planes_db:PATH?machine=Voluson E6&split=val``. Options after a
    path follow ``?`` and are ``&``-separated; for path-less kinds they follow ``:`` and are
    ``,``-separated (``?`` and ``&`` work too). Values that look like numbers become numbers.

    Raises:
        InputError: an empty spec, an option without ``=``, or an option given twice.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("empty data spec; expected e.g. 'phantom:n=100', 'hc18:PATH' or 'folder:PATH'")
    head = spec.split(":", 1)[0]
    kind, _, rest = spec.partition("?" if "?" in head else ":")
    if "?" in head:
        rest = "?" + rest
    kind = kind.strip().lower()
    path: str | None = None
    if kind in PATHLESS_KINDS:
        opts_text, sep = rest.lstrip("?").replace("?", ",").replace("&", ","), ","
    else:
        path, _, opts_text = rest.partition("?")
        sep = "&"
        path = path or None
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in opts_text.split(sep))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(f"bad option {item!r} in data spec {spec!r}; expected key=value")
        if key in options:
            raise InputError(f"option {key!r} given twice in data spec {spec!r}")
        options[key] = _coerce(value.strip())
    return kind, path, options


def _coerce(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _check_options(kind: str, factory: Callable[..., SampleDataset], options: dict[str, Any], spec: str) -> None:
    """Refuse unknown options and values of the wrong type, naming the spec and the choices; coerce the rest."""
    sig = inspect.signature(factory)
    params = list(sig.parameters.values())[1:]  # the first is the path
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "lenient"}
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        for key in options:
            if key not in named:
                raise unknown_name(key, [*named, "split", "val_fraction", "split_seed"], "option", f" in data spec {spec!r}")
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # noqa: BLE001 - an unresolvable annotation only loses the type check
        hints = {}
    for key, value in list(options.items()):
        want = _plain_type(hints.get(key))
        default = named[key].default if key in named else None
        if want is None and type(default) in (int, float, str):  # unannotated: the default's type
            want = type(default)
        if want is int and not isinstance(value, int):
            raise InputError(f"option {key} in data spec {spec!r} must be an integer, got {value!r}")
        if want is float and not isinstance(value, int | float):
            raise InputError(f"option {key} in data spec {spec!r} must be a number, got {value!r}")
        if want is str and not isinstance(value, str):
            options[key] = str(value)


def _plain_type(hint: Any) -> type | None:
    """int / float / str for a hint like ``int`` or ``int | None``; None for anything else."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float, str) else None


def open_dataset(spec: str, split: str = "all", val_fraction: float = 0.2, seed: int = 0,
                 lenient: bool = False) -> SampleDataset:
    """Open a dataset from a spec string, optionally one subject-level split of it.

    Args:
        spec: the data spec (see :func:`parse_spec`); ``split=``, ``val_fraction=`` and ``split_seed=`` in the
            spec override ``split``, ``val_fraction`` and ``seed``.
        split: "all", "train" or "val".
        val_fraction: fraction of subjects in val.
        seed: split seed.
        lenient: for ``pcbm data check``: keep the problems of malformed label files in
            ``ds.problems`` (``(where, message)`` pairs) and the rows that could be read, instead of
            raising; an empty dataset is returned instead of refused.

    Raises:
        InputError: an unknown kind, option, split or value, a missing path, a malformed dataset
        (the first few problems, and how many more) or an empty one — naming the spec.

    Example:
        >>> ds = open_dataset("phantom:n=8,seed=1")  # doctest: +SKIP
        >>> ds[0].plane  # doctest: +SKIP
        'trans_thalamic'
    """
    kind, path, options = parse_spec(spec)
    _load_builtin()
    if kind not in _REGISTRY:
        raise unknown_name(kind, sorted(_REGISTRY), "dataset kind", f" in data spec {spec!r}")
    split = str(options.pop("split", split))
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r} in data spec {spec!r}; choose {', '.join(SPLITS)}")
    val_fraction = options.pop("val_fraction", val_fraction)
    seed = options.pop("split_seed", seed)
    if not isinstance(val_fraction, int | float) or not 0 < val_fraction < 1:
        raise InputError(f"option val_fraction in data spec {spec!r} must be a number in (0, 1), got {val_fraction!r}")
    if not isinstance(seed, int):
        raise InputError(f"option split_seed in data spec {spec!r} must be an integer, got {seed!r}")
    factory = _REGISTRY[kind]
    _check_options(kind, factory, options, spec)
    if lenient and "lenient" in inspect.signature(factory).parameters:
        options["lenient"] = True
    ds = factory(path, **options)
    if len(ds) == 0 and not lenient:
        raise InputError(f"dataset {spec!r} is empty")
    if split == "all":
        return ds
    return Subset(ds, ds.split_indices(split, val_fraction, seed))


def dataset_kinds() -> list[str]:
    """Every registered dataset kind (the built-in ones imported first), sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    """Import the built-in dataset modules so their ``@register_dataset`` calls run."""
    import importlib

    for mod in ("pcbm.data.hc18", "pcbm.data.alzubaidi", "pcbm.data.fetal_planes_db", "pcbm.data.folder", "pcbm.data.phantom",
                "pcbm.data.dicom", "pcbm.data.african", "pcbm.data.sononet_frames"):
        importlib.import_module(mod)
