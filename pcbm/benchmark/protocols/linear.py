"""Linear probe: logistic regression on frozen, standardised features; C chosen on an inner grouped split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcbm.benchmark.splits import inner_split
from pcbm.benchmark.stats import scores

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def fit_probe(x: np.ndarray, y: Sequence[str], subjects: Sequence[str], seed: int = 0,
              c_grid: Sequence[float] = C_GRID):  # noqa: ANN201 - sklearn Pipeline
    """The probe refitted on all of ``x`` at the C with the best inner macro-F1; its ``chosen_c``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y, dtype=object)
    fit, sel = inner_split(list(y), list(subjects), seed)
    labels = sorted(set(y))

    def model(c: float):  # noqa: ANN202
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    best_c, best = c_grid[0], -1.0
    if len(set(y[fit])) > 1:
        for c in c_grid:
            f1 = scores(y[sel], model(c).fit(x[fit], y[fit]).predict(x[sel]), labels)["macro_f1"]
            if f1 > best:
                best_c, best = c, f1
    probe = model(best_c).fit(x, y)
    probe.chosen_c = best_c
    return probe
