"""Small I/O helpers shared by the package: atomic writes so nothing is ever half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Example:
        >>> with atomic_path("/tmp/x.png") as tmp:  # doctest: +SKIP
        ...     fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it onto ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (indent 2; through :func:`jsonable`, so NaN/inf are written as null and the
    file is always strict JSON)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(jsonable(obj), f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------------------------------
# Output safety: refuse to clobber what a user made, check writability before the work, and make
# folders appear whole or not at all.


def _writable_dir(folder: Path, what: str, path: Path) -> None:
    """Raise InputError unless ``folder`` (or its nearest existing ancestor) is a writable folder."""
    from pcbm.errors import InputError

    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: folder {probe} is not writable")


def check_output_file(path: str | os.PathLike[str], what: str = "output", overwrite: bool = False) -> Path:
    """Check, before any expensive work, that a file can be written at ``path``.

    Refuses a folder, an existing file (unless ``overwrite``) and a parent that is a file or is
    not writable — each with one line naming the path.

    Raises:
        InputError: the path cannot (or must not) be written.

    Example:
        >>> check_output_file("/tmp/pcbm-doctest-new.json", "--json").name
        'pcbm-doctest-new.json'
    """
    from pcbm.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise InputError(f"{what} {path} already exists; refusing to replace it (pass --overwrite to replace it)")
    _writable_dir(path.parent, what, path)
    return path


def check_output_dir(path: str | os.PathLike[str], what: str = "--out", overwrite: bool = False,
                     allow_existing: bool = False) -> Path:
    """Check, before any expensive work, that a folder can be written at ``path``.

    A missing or empty folder is fine. A non-empty folder is refused unless ``overwrite`` (it will
    be replaced whole when the new one is complete, see :func:`staged_dir`) or ``allow_existing``
    (the caller adds files to it without replacing any). A file at ``path`` or an unwritable
    parent is refused.

    Raises:
        InputError: one line naming the path and what to do.
    """
    from pcbm.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or allow_existing):
        raise InputError(f"{what} {path} exists and is not empty; refusing to replace or mix its contents "
                         "(choose a new folder, or pass --overwrite to replace it)")
    _writable_dir(path if path.is_dir() else path.parent, what, path)
    return path


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike[str], overwrite: bool = False, what: str = "--out") -> Iterator[Path]:
    """Build a folder in a temporary sibling and rename it onto ``path`` when the block succeeds.

    On any error (or Ctrl-C) the temporary folder is removed and ``path`` is left as it was. An
    existing non-empty ``path`` is replaced only when ``overwrite`` is set, and only once the new
    folder is complete.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> with staged_dir(root / "set") as tmp:
        ...     _ = (tmp / "a.txt").write_text("x")
        >>> sorted(p.name for p in (root / "set").iterdir())
        ['a.txt']
    """
    import shutil

    path = check_output_dir(path, what, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: Path, path: Path) -> None:
    """Move the complete folder ``new`` onto ``path``; an existing ``path`` is removed only after."""
    import shutil

    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / path.name)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


def check_port_free(host: str, port: int, what: str = "--port") -> None:
    """Check, before loading a model or printing a URL, that ``host:port`` can be listened on.

    Binds a socket the way uvicorn does (``SO_REUSEADDR``) and closes it at once: a port in use, a
    host this machine does not have or a port it may not open is one line naming them.

    Raises:
        InputError: the address cannot be listened on.

    Example:
        >>> check_port_free("127.0.0.1", 0)
    """
    import errno
    import socket

    from pcbm.errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host!r}: not an address of this machine ({e})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"{what} {port}: {host}:{port} is already in use (another server is listening); "
                             f"stop it or choose another {what}") from None
        if e.errno == errno.EACCES:
            raise InputError(f"{what} {port}: not allowed to listen on {host}:{port} (ports below 1024 need "
                             f"privileges); choose another {what}") from None
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    finally:
        sock.close()
