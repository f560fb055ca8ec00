"""One way to open a model: :func:`open_predictor` for every command, ``live``, ``serve`` and the explain API.

A reference is ``"default"`` (the shipped weights), ``"sononet16"`` (or another built-in name), a run
folder (``pcbm train``), a model package folder (``pcbm export``: it holds ``metadata.json``) or a
registry address ``models:/NAME@ALIAS`` (or ``/VERSION``; needs the ``mlflow`` extra).

* ``open_predictor(ref)`` opens a package on the torch-free runtime (:class:`pcbm.runtime.Engine`) and
  anything else in torch (the :class:`~pcbm.models.families.FamilyModel` that ``load_model`` gives).
* ``open_predictor(ref, runtime=True)`` always gives an :class:`~pcbm.runtime.Engine`: a run or
  ``default`` is exported once (:func:`pcbm.export.package.export_package`) into a cache keyed by the
  sha256 of the files the export reads, so the second start takes seconds, not minutes.

:func:`as_pipeline` turns either into the one prediction pipeline (:class:`pcbm.pipeline.Pipeline`).
Importing this module never imports torch.

Example:
    >>> from pcbm.predictor import cache_dir
    >>> cache_dir().name
    'packages'
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcbm.layout import is_package
from pcbm.pipeline import Pipeline

CACHE_ENV = "PCBM_CACHE"  # where exported runs are kept (default ~/.cache/pcbm)
#: the files of a run folder that decide its package (what the export reads)
RUN_FILES = ("model.pt", "config.json", "reliability.json", "head_refiner.pt", "metrics.json", "MODEL_CARD.md")


def cache_dir() -> Path:
    """The folder of exported runs: ``$PCBM_CACHE/packages`` (default ``~/.cache/pcbm/packages``)."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pcbm"
    return Path(root) / "packages"


def run_digest(run: Path) -> str:
    """sha256 over the run's :data:`RUN_FILES` (names and bytes) and this pcbm's version: the cache key."""
    from pcbm import __version__
    from pcbm._io import sha256_file

    h = hashlib.sha256(f"pcbm {__version__}\n".encode())
    for name in RUN_FILES:
        p = run / name
        if p.is_file():
            h.update(f"{name} {sha256_file(p)}\n".encode())
    return h.hexdigest()


def package_for(ref: str, say: Callable[[str], None] = lambda _m: None) -> tuple[Path, Path | None]:
    """(package folder, temporary folder to remove when done or None) of any reference.

    A package is used as it is; ``models:/…`` is downloaded into a temporary folder; a run or
    ``default`` is exported once into :func:`cache_dir` under its :func:`run_digest` (a later call
    finds it there).

    Raises:
        InputError: no model at ``ref``, a model without concepts, or an export that failed.
    """
    if is_package(ref):
        return Path(ref), None
    if str(ref).startswith("models:/"):
        from pcbm.registry import download

        tmp = Path(tempfile.mkdtemp(prefix="pcbm-model-"))
        try:
            return download(str(ref), tmp, say), tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return exported(ref, say), None


def exported(ref: str, say: Callable[[str], None] = lambda _m: None) -> Path:
    """The package of a run or ``default``, exported into the cache the first time (atomically: a
    package appears there whole or not at all; a concurrent export of the same run is harmless)."""
    from pcbm.models.io import resolve_run

    run = resolve_run(ref)
    digest = run_digest(run)
    target = cache_dir() / digest[:32]
    if is_package(target):
        say(f"{ref}: package from the cache ({target})")
        return target
    from pcbm.export.package import export_package

    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"exporting {ref} once into the cache {target} (about 2 minutes for default on 2 cores; later starts "
        "reuse it)")
    work = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}.", dir=target.parent))
    try:
        built = export_package(str(ref), work / "pkg", progress=lambda m: say(f"export: {m}"))
        try:
            os.replace(built, target)  # atomic; fails if another process put it there first
        except OSError:
            if not is_package(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def open_predictor(ref: str | os.PathLike[str], *, runtime: bool = False, threads: int | None = None,
                   say: Callable[[str], None] = lambda _m: None) -> Any:
    """Open ``ref`` (see the module docstring): an :class:`~pcbm.runtime.Engine` for a package or a
    registry address (or anything, with ``runtime``), else the torch model of a run, ``default`` or
    a built-in name. ``threads``: the runtime's intra-op threads, or torch's CPU threads (None: as set).

    Raises:
        InputError: no model at ``ref`` (one line saying what is there and what was expected).
    """
    ref = str(ref)
    if runtime or is_package(ref) or ref.startswith("models:/"):
        from pcbm.runtime import Engine

        package, tmp = package_for(ref, say)
        if tmp is not None:  # a downloaded package: kept while this process runs (its files are read later)
            atexit.register(shutil.rmtree, tmp, True)
        return Engine(package, threads=threads or None)
    import torch

    from pcbm.models import load_model

    if threads:
        torch.set_num_threads(threads)
    return load_model(ref)[0]


def as_pipeline(predictor: Any) -> Pipeline:
    """The one prediction pipeline of what :func:`open_predictor` gave (a package's Engine is one; a
    torch model with concepts runs its :class:`~pcbm.models.stages.TorchStages`)."""
    if isinstance(predictor, Pipeline):
        return predictor
    from pcbm.models.inference import pipeline_of

    return pipeline_of(predictor)


def is_runtime(predictor: Any) -> bool:
    """Whether ``predictor`` runs on the torch-free runtime (a model package's Engine)."""
    from pcbm.runtime.engine import OnnxStages

    return isinstance(predictor, Pipeline) and isinstance(predictor.stages, OnnxStages)


def require_concepts(predictor: Any, what: str) -> None:
    """An InputError naming ``what`` unless ``predictor`` has concepts (a package always has)."""
    if not isinstance(predictor, Pipeline):
        predictor.family.require_concepts(what)


__all__ = ["CACHE_ENV", "as_pipeline", "cache_dir", "exported", "is_runtime", "open_predictor", "package_for",
           "require_concepts", "run_digest"]
