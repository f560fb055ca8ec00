"""Concept drift against a model package's ``reference.json``: PSI per property concept and for the
plane mix, and a one-sample Kolmogorov-Smirnov test, in numpy and scipy only.

The reference (written by ``pcbm export``) holds, per property concept, the values the decision
layer reads on reference data — binary concepts as probabilities, lengths as a fraction of the
image's long side — as deciles and, for values in [0, 1], a 10-bin histogram; and the plane mix.
A live window holds the same values of recent predictions (:func:`drift_row`).

* **PSI** (population stability index) ``Σ (a - e) · ln(a / e)`` over the reference's bins (its
  histogram; else bins between its deciles), proportions floored at :data:`PSI_FLOOR` so an empty
  bin stays finite. The usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant.
* **KS**: the window's values against the reference CDF rebuilt from its 11 quantiles (piecewise
  linear between them): statistic and p-value (``scipy.stats.kstest``). The reference keeps no raw
  values, so this is a one-sample test against an approximate CDF; the reference sample's own
  uncertainty (n=200 by default) is not counted.

A concept with fewer than :data:`MIN_N` applicable values in the window gets no figures (None).

Example:
    >>> import numpy as np
    >>> e = np.array([50, 50]); round(psi(e, np.array([50, 50])), 6), round(psi(e, np.array([90, 10])), 3)
    (0.0, 0.879)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES

PSI_FLOOR = 1e-4  # proportions below this count as this (an empty bin)
MIN_N = 30  # fewer applicable values than this in the window: no PSI / KS for that concept
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
STATUSES = ("standard", "close_to_standard", "not_a_known_plane")


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two histograms (counts or proportions) over the same bins."""
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    e = np.maximum(e / max(e.sum(), 1e-12), floor)
    a = np.maximum(a / max(a.sum(), 1e-12), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float | None) -> str | None:
    """'stable', 'moderate' or 'significant' by the usual PSI thresholds (None for None)."""
    if value is None:
        return None
    return "stable" if value < PSI_MODERATE else "moderate" if value < PSI_SIGNIFICANT else "significant"


def decile_cdf(deciles: Sequence[float]) -> Any:
    """The CDF of a distribution known by its quantiles at 0, 0.1, …, 1, linear between them.

    Example:
        >>> F = decile_cdf([0, .1, .2, .3, .4, .5, .6, .7, .8, .9, 1.0])
        >>> [round(float(v), 3) for v in F(np.array([-1, 0.25, 2]))]
        [0.0, 0.25, 1.0]
    """
    q = np.asarray(deciles, np.float64)
    levels = np.linspace(0, 1, len(q))

    def cdf(x: Any) -> np.ndarray:
        x = np.asarray(x, np.float64)
        k = np.searchsorted(q, x, side="right")  # how many quantiles are <= x
        out = np.where(k >= len(q), 1.0, 0.0)
        inside = (k > 0) & (k < len(q))
        if inside.any():
            kk = k[inside]
            lo, hi = q[kk - 1], q[kk]
            out[inside] = levels[kk - 1] + (x[inside] - lo) / (hi - lo) * (levels[kk] - levels[kk - 1])
        return out

    return cdf


def _bins(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(edges, expected proportions) of a reference concept entry, or None when it has no values."""
    hist = entry.get("histogram")
    if hist:
        edges = np.asarray(hist["edges"], np.float64)
        return edges, np.asarray(hist["counts"], np.float64)
    deciles = entry.get("deciles")
    if not deciles:
        return None
    inner = np.unique(np.asarray(deciles, np.float64))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    mass = np.diff(decile_cdf(deciles)(edges))
    return edges, mass


def concept_drift(entry: Mapping[str, Any], values: np.ndarray) -> dict[str, Any]:
    """PSI and KS of one concept's window values (NaN = not applicable) against its reference entry."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    col = v[np.isfinite(v)]
    out: dict[str, Any] = {"n": int(len(col)), "applicable_share": round(float(len(col) / len(v)), 4) if len(v) else None,
                           "reference_applicable_share": entry.get("applicable_share"), "psi": None, "level": None,
                           "ks_statistic": None, "ks_pvalue": None, "mean": float(col.mean()) if len(col) else None,
                           "reference_mean": entry.get("mean")}
    bins = _bins(entry)
    if bins is None or len(col) < MIN_N:
        return out
    edges, expected = bins
    finite = edges[np.isfinite(edges)]
    clipped = np.clip(col, finite[0], finite[-1]) if entry.get("histogram") else col
    actual = np.histogram(clipped, edges)[0]
    out["psi"] = round(psi(expected, actual), 5)
    out["level"] = level(out["psi"])
    if entry.get("deciles"):
        res = stats.kstest(col, decile_cdf(entry["deciles"]))
        out["ks_statistic"], out["ks_pvalue"] = round(float(res.statistic), 5), float(res.pvalue)
    return out


def plane_mix_drift(reference_mix: Mapping[str, float], planes: np.ndarray) -> dict[str, Any]:
    """PSI of the window's predicted planes (indices into ``PLANE_NAMES``) against the reference mix."""
    counts = np.bincount(np.asarray(planes, np.int64), minlength=len(PLANE_NAMES))[: len(PLANE_NAMES)]
    expected = np.array([float(reference_mix.get(p, 0.0)) for p in PLANE_NAMES])
    n = int(counts.sum())
    mix = {p: round(float(c / n), 4) if n else None for p, c in zip(PLANE_NAMES, counts, strict=True)}
    value = round(psi(expected, counts), 5) if n >= MIN_N else None
    return {"n": n, "psi": value, "level": level(value), "window": mix, "reference": dict(reference_mix)}


def drift_row(pred: Any, shape: tuple[int, int], pixel_spacing_mm: float | None) -> np.ndarray:
    """A prediction's property values as the reference holds them: probabilities, lengths as a
    fraction of the image's long side (NaN without a pixel spacing), NaN where not applicable."""
    from pcbm.concepts.assess import property_row

    return property_row(pred.properties, pixel_spacing_mm, float(max(shape)))


def drift_summary(reference: Mapping[str, Any], planes: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Every concept's drift and the plane mix's, for a window of ``planes`` (N,) and ``values`` (N, P)."""
    concepts = reference.get("concepts") or {}
    per = {name: concept_drift(concepts.get(name) or {}, values[:, i] if len(values) else np.empty(0))
           for i, name in enumerate(PROPERTY_CONCEPT_NAMES)}
    scored = [d["psi"] for d in per.values() if d["psi"] is not None]
    worst = max(scored) if scored else None
    return {"n": int(len(planes)), "plane_mix": plane_mix_drift(reference.get("plane_mix") or {}, planes),
            "concepts": per, "max_concept_psi": worst, "max_concept_level": level(worst),
            "method": "PSI over the reference's bins (floor 1e-4); KS against the reference's decile CDF",
            "min_n": MIN_N}
