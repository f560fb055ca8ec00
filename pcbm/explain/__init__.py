"""Explanations: concept contributions, Captum attributions, concept reports, interventions.

Everything is loaded on first use, so ``import pcbm.explain`` imports neither torch nor captum.

Example:
    >>> from pcbm.explain import DecisionExplainer, ConceptReport, intervene  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # attributions
    "DecisionExplainer": "pcbm.explain.explainers",
    "PropertyExplainer": "pcbm.explain.explainers",
    "PixelExplainer": "pcbm.explain.explainers",
    "ConceptAttribution": "pcbm.explain.results",
    "PixelAttribution": "pcbm.explain.results",
    "resolve_target": "pcbm.explain.targets",
    # reports
    "ConceptReport": "pcbm.explain.report",
    "CriterionRow": "pcbm.explain.report",
    "MeasurementRow": "pcbm.explain.report",
    "explain_image": "pcbm.explain.build",
    "write_reports": "pcbm.explain.build",
    "find_pixel_spacing": "pcbm.data.io",
    # interventions
    "intervene": "pcbm.explain.interventions",
    "InterventionResult": "pcbm.explain.interventions",
    "build_intervention": "pcbm.explain.interventions",
    "DecisionSummary": "pcbm.explain.interventions",
    "parse_intervention": "pcbm.explain.interventions",
    "Policy": "pcbm.explain.curves",
    "RandomPolicy": "pcbm.explain.curves",
    "UncertaintyPolicy": "pcbm.explain.curves",
    "GreedyPolicy": "pcbm.explain.curves",
    "NoisyExpert": "pcbm.explain.curves",
    "ConceptSet": "pcbm.explain.curves",
    "intervention_curve": "pcbm.explain.curves",
    "InterventionCurve": "pcbm.explain.curves",
    "leakage_check": "pcbm.explain.curves",
    "LeakageReport": "pcbm.explain.curves",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pcbm.explain' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
