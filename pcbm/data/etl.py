"""DICOM → folder-format ETL: de-identify, harmonise (mask burned-in text, crop to the sector,
resize) and write images, ``labels.csv`` and a ``manifest.csv`` of hashes.

:func:`run_etl` walks a folder for DICOM files and converts each: de-identified by
:func:`pcbm.data.deid.deidentify` before anything is used, then :func:`pcbm.data.harmonise.harmonise`
blacks out everything outside the header's ultrasound region ∩ the scan sector estimated from the
pixels, crops to it and optionally resizes. It writes the folder format
(:func:`pcbm.data.folder.write_folder`) and ``manifest.csv`` with, per image: the source file
relative to the source folder, the source's and the PNG's SHA-256, the frame, the spacing and its
source, the field-of-view source, the crop box and scale, and ``burned_in_masked`` (what blanked
the text: "region", "sector", "region+sector" or "none").

Nothing is lost, nothing leaks:

* a salt is required (the pseudonyms of short patient IDs are otherwise reversible) unless
  ``insecure_no_salt``;
* the output location is checked before any conversion; a non-empty ``out`` is refused unless
  ``overwrite``; everything is built in a temporary sibling folder renamed onto ``out`` only when
  complete, so a failure (or a full disk) leaves nothing half-written and an old ``out`` intact;
* a file that fails (corrupt, truncated, no pixels, a region outside its image, …) is a failure in
  the result and the others go on;
* file and folder names can carry patient names: with ``opaque_ids`` the images are named by a
  salted hash of the source path, and neither the manifest, labels.csv, the notes, the subjects
  nor the failure messages carry a source path or name (``source_sha256`` still ties each image
  to its file for whoever holds the originals).

Example:
    >>> result = run_etl("dicoms/", "my_data", size=512, frames="first", salt="s3cret")  # doctest: +SKIP
    >>> result.n_images, result.failures  # doctest: +SKIP
    (12, [])
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pcbm._io import sha256_file
from pcbm.data.harmonise import cine_field_of_view, harmonise
from pcbm.data.sample import Sample
from pcbm.errors import InputError

_T = TypeVar("_T")

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("image", "source", "frame", "n_frames", "source_sha256", "png_sha256", "width", "height",
                    "pixel_spacing_mm", "pixel_spacing_source", "fov_source", "crop", "scale", "deidentified",
                    "burned_in_masked", "notes")
NO_SALT = ("no secret salt for the patient pseudonyms: pass --salt SECRET or set PCBM_DEID_SALT (without one, a "
           "short PatientID is recovered from its pseudonym in a fraction of a second), or --insecure-no-salt")
BUILD = ".dataset"  # sub-folder of the staged output that write_folder fills


@dataclass
class EtlResult:
    """What :func:`run_etl` did: files found, images written, manifest rows and per-file failures."""

    out: Path
    n_files: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source relative path or opaque id, message)

    @property
    def n_images(self) -> int:
        return len(self.rows)

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.rows)




def run_etl(src: str | os.PathLike[str], out: str | os.PathLike[str], size: int | None = None,
            frames: str = "all", salt: str = "", date_shift_days: int | None = None,
            progress: bool = True, opaque_ids: bool = False, overwrite: bool = False,
            insecure_no_salt: bool = False) -> EtlResult:
    """Convert every DICOM file under ``src`` into the folder format at ``out`` (see module docstring).

    Args:
        src: folder searched recursively for DICOM files (by the DICM marker or a .dcm extension).
        out: folder dataset to write; it must be missing or empty unless ``overwrite``.
        size: resize so the long side is this many pixels after cropping; None keeps the size.
        frames: "all" (every frame of a cine) or "first".
        salt: secret for patient pseudonyms, UIDs and opaque ids (see :mod:`pcbm.data.deid`).
        date_shift_days: shift header dates instead of removing them.
        progress: show a progress bar over the files.
        opaque_ids: name images ``us_<hash>`` (salted SHA-256 of the source path) instead of after the
            path, and keep no source path or name anywhere in the output or in ``result.failures``.
        overwrite: replace a non-empty ``out`` (only once the new one is complete).
        insecure_no_salt: allow an empty ``salt`` (pseudonyms of short IDs can then be reversed).

    Raises:
        InputError: no salt, ``src`` missing or holding no DICOM files, ``out`` not writable, not
        empty (without ``overwrite``) or overlapping ``src``, or a bad option — all before any
        conversion. Per-file problems do not raise; they are in ``result.failures``. Nothing is
        written when no file converts.
    """
    from pcbm._io import check_output_dir
    from pcbm.data.dicom import find_dicom_files

    if frames not in ("all", "first"):
        raise InputError(f"frames must be 'all' or 'first', got {frames!r}")
    salt = salt or ""
    if not salt.strip() and not insecure_no_salt:
        raise InputError(NO_SALT)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"DICOM source folder not found: {src}")
    s_res, o_res = src.resolve(), out.resolve()
    if o_res == s_res or s_res in o_res.parents:
        raise InputError(f"--out {out} must not be inside the source folder {src}")
    if o_res in s_res.parents:
        raise InputError(f"--out {out} contains the source folder {src}; choose a folder outside it")
    check_output_dir(out, "--out", overwrite)
    files = find_dicom_files(src)
    if not files:
        raise InputError(f"no DICOM files in {src} (looked for the 'DICM' marker and .dcm/.dicom files)")
    result = EtlResult(out=out, n_files=len(files))
    pending: list[dict[str, Any]] = []
    stream = _convert(files, src, size, frames, salt, date_shift_days, result, pending, progress, opaque_ids)
    first = next(stream, None)
    if first is None:
        return result
    _write(itertools.chain([first], stream), pending, out, overwrite)
    result.rows = pending
    return result


def _write(samples: Iterator[Sample], rows: list[dict[str, Any]], out: Path, overwrite: bool) -> None:
    """Images, labels.csv and manifest.csv, built in one staged folder renamed onto ``out`` when complete."""
    from pcbm._io import staged_dir
    from pcbm.data.folder import write_folder

    with staged_dir(out, overwrite=overwrite) as tmp:
        build = tmp / BUILD
        write_folder(samples, build, progress=False)
        for child in list(build.iterdir()):
            os.replace(child, tmp / child.name)
        build.rmdir()
        for row in rows:
            row["png_sha256"] = sha256_file(tmp / "images" / row["image"])
        _write_manifest(rows, tmp / MANIFEST)


def _opaque_id(rel: str, salt: str) -> str:
    return "us_" + hashlib.sha256(f"{salt}\0{rel}".encode()).hexdigest()[:16]


def _scrub(message: str, path: Path, rel: str, name: str) -> str:
    """``message`` with every spelling of the source path replaced by ``name``."""
    spellings = {str(path), path.as_posix(), rel, path.name}
    try:
        spellings.add(str(path.resolve()))
        spellings.add(str(path.absolute()))
    except OSError:
        pass
    for s in sorted((s for s in spellings if s), key=len, reverse=True):
        message = message.replace(s, name)
    return message


def _read_shown_as(path: Path, rel: str, shown: str | None, read: Callable[[], _T]) -> _T:
    """``read()``, its warnings re-issued with every spelling of ``path`` replaced by ``shown`` (the
    opaque id; ``None``: unchanged), so that ``--opaque-ids`` hides the file name on the console too."""
    if shown is None:
        return read()
    held: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            return read()
    finally:  # the recording has stopped here: re-issued, they are shown as usual
        for w in held:
            warnings.warn(_scrub(str(w.message), path, rel, shown), w.category, stacklevel=3)


def _read_file(path: Path, sample_id: str, size: int | None, frames: str, salt: str,
               date_shift_days: int | None) -> tuple[list[Sample], str]:
    """The harmonised samples of one file and the file's SHA-256 (raises InputError)."""
    from pcbm.data.dicom import read_dicom, short_message

    try:
        raw = read_dicom(path, frames=frames, salt=salt, date_shift_days=date_shift_days, sample_id=sample_id)
        fov = cine_field_of_view(raw)
        samples = [harmonise(s, size=size, fov=fov) for s in raw]
        return samples, sha256_file(path)
    except (InputError, KeyboardInterrupt):
        raise
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # one odd file must not stop the others
        raise InputError(f"{path}: cannot convert ({type(e).__name__}: {short_message(e)})") from None


def _convert(files: list[Path], src: Path, size: int | None, frames: str, salt: str, date_shift_days: int | None,
             result: EtlResult, rows: list[dict[str, Any]], progress: bool,
             opaque_ids: bool = False) -> Iterator[Sample]:
    from rich.progress import track

    from pcbm.data.dicom import sample_id_for, unique_id

    seen: set[str] = set()
    label = "DICOM files" if opaque_ids else (src.name or str(src))
    items = track(files, description=f"converting {label}", transient=True) if progress else files
    for path in items:
        rel = path.relative_to(src).as_posix()
        sid = unique_id(_opaque_id(rel, salt) if opaque_ids else sample_id_for(path, src), seen)
        try:
            samples, source_hash = _read_shown_as(path, rel, sid if opaque_ids else None,
                                                  functools.partial(_read_file, path, sid, size, frames, salt,
                                                                    date_shift_days))
        except InputError as e:
            result.failures.append((sid, _scrub(str(e), path, rel, sid)) if opaque_ids else (rel, str(e)))
            continue
        for s in samples:
            m = s.meta
            if opaque_ids:
                s = replace(s, meta={k: v for k, v in m.items() if k != "path"})
            rows.append({
                "image": f"{s.id}.png", "source": "" if opaque_ids else rel, "frame": m["frame"],
                "n_frames": m["n_frames"], "source_sha256": source_hash, "png_sha256": "",
                "width": s.image.shape[1], "height": s.image.shape[0],
                "pixel_spacing_mm": "" if s.pixel_spacing_mm is None else f"{s.pixel_spacing_mm:.6g}",
                "pixel_spacing_source": m.get("pixel_spacing_source", ""), "fov_source": m.get("fov_source", ""),
                "crop": m["crop"], "scale": m["scale"], "deidentified": m["deidentified"],
                "burned_in_masked": m["burned_in_masked"], "notes": " | ".join(m.get("notes", [])),
            })
            yield s


def _write_manifest(rows: list[dict[str, Any]], path: Path) -> None:
    from pcbm._io import atomic_open

    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        w.writerows(rows)


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a ``manifest.csv`` written by :func:`run_etl`."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
