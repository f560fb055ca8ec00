"""Lazy access to Captum, so that importing pcbm (or pcbm.explain) never imports it."""

from __future__ import annotations

import importlib
from types import ModuleType


def captum_attr() -> ModuleType:
    """Return ``captum.attr``, importing it on first use.

    Raises:
        ImportError: with the install command, when captum is not installed.
    """
    try:
        return importlib.import_module("captum.attr")
    except ModuleNotFoundError as e:  # pragma: no cover - captum is a declared extra
        raise ImportError("pcbm.explain needs captum: pip install 'pcbm[explain]' (captum==0.9.0)") from e
