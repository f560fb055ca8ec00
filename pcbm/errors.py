"""Errors for bad input, and the one lookup helper for names. The CLI prints these as one line.

Example:
    >>> look_up("cerebelum", ["cerebellum", "csp"], "visual concept")
    Traceback (most recent call last):
    ...
    pcbm.errors.UnknownNameError: unknown visual concept 'cerebelum'; did you mean 'cerebellum'? known: cerebellum, csp
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class InputError(ValueError):
    """Bad user input: a missing or unreadable file, a malformed CSV, an unknown name, ….

    The message names the file (and line, for CSVs) and what is wrong. The CLI prints it as one
    line and exits 2; any other exception is a bug in pcbm and shows its traceback.
    """


class UnknownNameError(InputError, KeyError):
    """An unknown name in a registry (concept, plane, model config, dataset kind, style, …).

    A ``KeyError`` too, so ``except KeyError`` keeps working; ``str()`` is the message itself.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def unknown_name(name: Any, known: Iterable[str], what: str, where: str = "") -> UnknownNameError:
    """The error for an unknown ``name``: did-you-mean (the closest known name) plus the known list;
    ``where`` (e.g. ``" in data spec 'x:y'"``) follows the name."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return UnknownNameError(f"unknown {what} {name!r}{where}{hint} known: {', '.join(known)}")


def look_up(name: Any, registry: Mapping[str, T] | Iterable[str], what: str) -> Any:
    """``registry[name]`` for a mapping (``name`` itself for a collection of names), else
    :class:`UnknownNameError` naming the closest match and every known name.

    Example:
        >>> look_up("tiny", {"tiny": 1, "small": 2}, "model config")
        1
    """
    if isinstance(registry, Mapping):
        if name in registry:
            return registry[name]
        raise unknown_name(name, registry.keys(), what)
    names = list(registry)
    if name in names:
        return name
    raise unknown_name(name, names, what)


def optional_import(module: str, extra: str, purpose: str) -> Any:
    """``module`` imported, from one of pcbm's optional extras; when it is not installed, an
    :class:`InputError` naming what needs it and the pip command (the one way pcbm reports a missing extra).

    Example:
        >>> optional_import("json", "dev", "this example").dumps([1])
        '[1]'
        >>> optional_import("no_such_module_xyz", "mlflow", "the model registry")
        Traceback (most recent call last):
        ...
        pcbm.errors.InputError: the model registry needs no_such_module_xyz: pip install 'pcbm[mlflow]'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{purpose} needs {module.split('.')[0]}: pip install 'pcbm[{extra}]'") from None
