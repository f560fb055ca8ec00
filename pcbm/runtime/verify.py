"""Packages that cannot lie: the manifest, the optional signature, and every metadata value checked.

A package (``pcbm export``) holds :data:`~pcbm.layout.MANIFEST`: one ``sha256  name`` line for every
file in the folder, ``metadata.json`` included. :func:`verify_package` (what :class:`pcbm.runtime.Engine`
runs before loading anything, and ``pcbm verify PKG``) finds every problem at once:

* a file that is not in the manifest, missing, changed, a link or a folder (only plain files at the
  top level), a name that is not a plain file name (no ``/``, ``..`` or absolute paths);
* ``metadata.json``'s own ``files`` list disagreeing with the manifest;
* a metadata value of the wrong type or outside its range (input size, thresholds, graph and file
  names, the head refiner's crop, the ontology);
* with a key (``$PCBM_PACKAGE_KEY`` or ``key=``): a missing or wrong signature.

What each stops: the **manifest** stops corruption, a file swapped or edited, a file added (e.g. a
graph beside the listed one) and an edited ``metadata.json`` — anything short of rewriting the
manifest itself, which needs no secret. The **signature** (``package.sig``: HMAC-SHA256 of the
manifest under a key the site keeps, written by ``pcbm export`` when the key is set) stops that too:
nobody without the key can make a package this pcbm accepts when the key is set.

The identity a package serves (:func:`package_digest`) is the sha256 of its manifest, so it names the
bytes that were verified, not a value copied from the metadata.

Example:
    >>> from pcbm.runtime.verify import manifest_lines
    >>> manifest_lines({"metadata.json": "ab" * 32})
    'abababababababababababababababababababababababababababababababab  metadata.json\\n'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pcbm.errors import InputError
from pcbm.layout import MANIFEST, METADATA, SIGNATURE

KEY_ENV = "PCBM_PACKAGE_KEY"  # the site's signing key (text); set: export signs, the runtime requires a signature
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def manifest_lines(files: Mapping[str, str]) -> str:
    """The manifest's text: ``sha256  name`` per file, sorted by name (``sha256sum -c`` reads it)."""
    return "".join(f"{files[n]}  {n}\n" for n in sorted(files))


def signing_key(key: str | bytes | None = None) -> bytes | None:
    """``key``, else ``$PCBM_PACKAGE_KEY``, as bytes; None when neither is set."""
    k = key if key is not None else os.environ.get(KEY_ENV)
    if k is None or k == "":
        return None
    return k.encode() if isinstance(k, str) else bytes(k)


def write_manifest(folder: str | os.PathLike[str], key: str | bytes | None = None) -> str:
    """Write :data:`MANIFEST` over every file in ``folder`` (and :data:`SIGNATURE` with a key); the digest."""
    from pcbm._io import sha256_file

    folder = Path(folder)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.name not in (MANIFEST, SIGNATURE)}
    text = manifest_lines(files)
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    k = signing_key(key)
    if k is not None:
        (folder / SIGNATURE).write_text(hmac.new(k, text.encode(), hashlib.sha256).hexdigest() + "\n", encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def package_digest(folder: str | os.PathLike[str]) -> str:
    """The sha256 of the package's manifest: the identity of every byte it lists."""
    return hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()


def _read_manifest(folder: Path, problems: list[str]) -> dict[str, str]:
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"no {MANIFEST} (a package from an older pcbm, or not a package): export it again")
        return {}
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"cannot read {MANIFEST}: {type(e).__name__}")
        return {}
    files: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        parts = line.split("  ", 1)
        if len(parts) != 2 or not _HEX.match(parts[0]) or not _NAME.match(parts[1]):
            problems.append(f"{MANIFEST} line {i} is not 'SHA256  NAME' with a plain file name")
            continue
        files[parts[1]] = parts[0]
    if METADATA not in files:
        problems.append(f"{MANIFEST} does not cover {METADATA}")
    return files


def _check_files(folder: Path, files: Mapping[str, str], hashes: bool, problems: list[str]) -> None:
    from pcbm._io import sha256_file

    for p in sorted(folder.iterdir()):
        if p.name in (MANIFEST, SIGNATURE):
            continue
        if p.is_symlink() or not p.is_file():
            problems.append(f"{p.name}: not a plain file (links and folders are refused)")
        elif p.name not in files:
            problems.append(f"{p.name}: not in {MANIFEST} (a file was added)")
    for name, want in files.items():
        p = folder / name
        if not p.is_file() or p.is_symlink():
            problems.append(f"{name}: listed in {MANIFEST} but missing")
        elif hashes and sha256_file(p) != want:
            problems.append(f"{name}: altered (its sha256 differs from {MANIFEST})")


def _check_signature(folder: Path, key: bytes | None, problems: list[str]) -> None:
    sig = folder / SIGNATURE
    if key is None:
        return
    if not sig.is_file():
        problems.append(f"no {SIGNATURE}, but a signing key is set ({KEY_ENV}): the package is unsigned")
        return
    want = hmac.new(key, (folder / MANIFEST).read_bytes(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig.read_text(encoding="utf-8").strip(), want):
        problems.append(f"{SIGNATURE} does not match: the package was changed or signed with another key")


def _number(meta: Mapping[str, Any], path: str, lo: float, hi: float, problems: list[str], integer: bool = False,
            lo_open: bool = False) -> None:
    v: Any = meta
    for k in path.split("."):
        v = v.get(k) if isinstance(v, Mapping) else None
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and (
        v > lo if lo_open else v >= lo) and v <= hi and (not integer or float(v).is_integer())
    if not ok:
        kind = "an integer" if integer else "a number"
        problems.append(f"metadata {path} must be {kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v!r}")


def check_metadata(meta: Any, files: Mapping[str, str]) -> list[str]:
    """Every problem with ``metadata.json``'s values (its graphs and files must be in ``files``)."""
    from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES

    if not isinstance(meta, Mapping):
        return [f"{METADATA} is not a JSON object"]
    problems: list[str] = []
    onto = meta.get("ontology")
    if not isinstance(onto, Mapping) or onto.get("planes") != list(PLANE_NAMES) or onto.get(
            "visual_concepts") != list(VISUAL_CONCEPT_NAMES) or [c.get("name") for c in onto.get(
            "property_concepts") or [] if isinstance(c, Mapping)] != list(PROPERTY_CONCEPT_NAMES):
        problems.append("exported with another ontology than this pcbm's (concept or plane names differ): "
                        "export it again with this version")
    model = meta.get("model")
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str) or not model.get("name"):
        problems.append("metadata model.name must be a non-empty string")
    _number(meta, "input.size", 32, 2048, problems, integer=True)
    _number(meta, "thresholds.min_confidence", 0.0, 1.0, problems, lo_open=True)
    graphs = meta.get("graphs")
    if not isinstance(graphs, Mapping) or set(graphs) != {"segment", "properties", "decision"}:
        problems.append("metadata graphs must name exactly segment, properties and decision")
        graphs = {}
    named = dict(graphs)
    ref = meta.get("head_refiner")
    if ref is not None:
        if not isinstance(ref, Mapping):
            problems.append("metadata head_refiner must be an object or null")
        else:
            named["head_refiner"] = ref.get("file")
            _number(meta, "head_refiner.size", 32, 2048, problems, integer=True)
            _number(meta, "head_refiner.margin", 1.0, 4.0, problems)
            if not isinstance(ref.get("flip_tta", True), bool):
                problems.append("metadata head_refiner.flip_tta must be true or false")
    if meta.get("reliability") is not None:
        named["reliability"] = meta.get("reliability")
    for what, name in named.items():
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"metadata {what} must be a plain file name in the package, got {name!r}")
        elif name not in files:
            problems.append(f"metadata {what} names {name}, which {MANIFEST} does not list")
    listed = meta.get("files")
    if isinstance(listed, Mapping):
        wrong = sorted(n for n, h in listed.items() if files.get(n) != h)
        if wrong:
            problems.append(f"metadata files disagree with {MANIFEST} on {', '.join(wrong)}")
    return problems


def verify_package(folder: str | os.PathLike[str], key: str | bytes | None = None, hashes: bool = True
                   ) -> tuple[dict[str, Any], list[str]]:
    """(metadata, every problem found) of the package in ``folder``: files against the manifest
    (``hashes=False`` checks presence only), the signature when a key is set, every metadata value."""
    folder = Path(folder)
    if not (folder / METADATA).is_file():
        raise InputError(f"{folder} is not a pcbm model package (no {METADATA}; make one with pcbm export)")
    problems: list[str] = []
    files = _read_manifest(folder, problems)
    if files:
        _check_files(folder, files, hashes, problems)
        _check_signature(folder, signing_key(key), problems)
    try:
        meta = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return {}, [*problems, f"cannot read {METADATA}: {type(e).__name__}: {str(e)[:120]}"]
    return (meta if isinstance(meta, dict) else {}), problems + check_metadata(meta, files)


def open_verified(folder: str | os.PathLike[str], hashes: bool = True) -> dict[str, Any]:
    """The package's metadata once :func:`verify_package` finds nothing wrong, else one InputError
    listing every problem."""
    meta, problems = verify_package(folder, hashes=hashes)
    if problems:
        raise InputError(f"model package {folder} fails verification: " + "; ".join(problems))
    return meta


__all__ = ["KEY_ENV", "check_metadata", "manifest_lines", "open_verified", "package_digest", "signing_key",
           "verify_package", "write_manifest"]
