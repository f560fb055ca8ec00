"""Resolve attribution targets given by name: a plane, a property concept or a visual concept."""

from __future__ import annotations

from typing import Literal

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.errors import InputError, unknown_name

TargetKind = Literal["plane", "property", "visual"]
_ORDERS: dict[str, tuple[str, ...]] = {
    "plane": PLANE_NAMES,
    "property": PROPERTY_CONCEPT_NAMES,
    "visual": VISUAL_CONCEPT_NAMES,
}


def resolve_target(target: str | int, kind: TargetKind | None = None) -> tuple[TargetKind, int]:
    """Turn a target name into (kind, index).

    A bare name is looked up as a plane first, then a property concept, then a visual concept
    ("femur" and "abdomen" are both planes and structures: write ``"visual:femur"`` for the mask).
    An int is an index into ``kind``'s order (``plane`` when not given).

    Example:
        >>> resolve_target("csp_visible")
        ('property', 4)
        >>> resolve_target("visual:femur")
        ('visual', 11)
    """
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise TypeError(f"target must be a name or an index, got {target!r}")
    if isinstance(target, int):
        kind = kind or "plane"
        if kind not in _ORDERS:
            raise InputError(f"unknown target kind {kind!r}; choose plane, property or visual")
        n = len(_ORDERS[kind])
        if not 0 <= target < n:
            raise InputError(f"{kind} index {target} out of range 0..{n - 1}")
        return kind, target
    name = target
    if ":" in name:
        prefix, _, name = name.partition(":")
        if prefix not in _ORDERS:
            raise InputError(f"unknown target kind {prefix!r} in {target!r}; choose plane, property or visual")
        kind = prefix  # type: ignore[assignment]
    kinds = [kind] if kind else ["plane", "property", "visual"]
    for k in kinds:
        if name in _ORDERS[k]:
            return k, _ORDERS[k].index(name)  # type: ignore[return-value]
    known = [n for k in kinds for n in _ORDERS[k]]
    raise unknown_name(name, known, "target" if not kind else f"{kind} target")
