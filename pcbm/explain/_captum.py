"""Lazy access to Captum, so that importing pcbm (or pcbm.explain) never imports it."""

from __future__ import annotations

from types import ModuleType


def captum_attr() -> ModuleType:
    """Return ``captum.attr``, importing it on first use.

    Raises:
        InputError: with the install command, when captum is not installed.
    """
    from pcbm.errors import optional_import

    return optional_import("captum.attr", "explain", "pcbm.explain")
