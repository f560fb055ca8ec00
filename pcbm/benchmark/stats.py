"""Scores and paired tests of the backbone study (numpy, sklearn, scipy).

Example:
    >>> mcnemar_exact(b=0, c=6)   # 6 discordant pairs all one way: p = 2 / 2**6
    0.03125
    >>> scores(["a", "b", "b"], ["a", "b", "a"], labels=["a", "b"])["accuracy"]
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("macro_f1", "balanced_accuracy", "accuracy")


def scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Macro-F1 and balanced accuracy over the classes of ``labels`` present in ``y_true`` (a prediction
    outside them is an error), and accuracy — as sklearn's ``f1_score(average="macro", labels=…)``,
    ``balanced_accuracy_score`` and ``accuracy_score`` compute them."""
    t, p = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    if len(t) == 0:
        return {m: float("nan") for m in METRICS}
    classes = [c for c in labels if np.any(t == c)]
    index = {c: i for i, c in enumerate(classes)}
    ti = np.array([index.get(c, -1) for c in t])
    pi = np.array([index.get(c, -1) for c in p])
    return _scores_idx(ti, pi, len(classes))


def _scores_idx(ti: np.ndarray, pi: np.ndarray, k: int) -> dict[str, float]:
    """:func:`scores` on class indices (-1: a class outside the scored ones)."""
    right = ti == pi
    support = np.bincount(ti[ti >= 0], minlength=k).astype(float)
    tp = np.bincount(ti[right & (ti >= 0)], minlength=k).astype(float)
    predicted = np.bincount(pi[pi >= 0], minlength=k).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(k), where=present)
    return {"macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
            "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
            "accuracy": float(right.mean())}


def bootstrap_ci(y_true: Sequence[str], y_pred: Sequence[str], subjects: Sequence[str], labels: Sequence[str],
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile confidence intervals of :func:`scores` on the pooled predictions, resampling
    *subjects* with replacement (each drawn subject brings all its images), so a patient's correlated
    images count once. Classes are those of ``labels`` present in the whole set."""
    t, p, s = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), np.asarray(subjects, dtype=object)
    classes = [c for c in labels if np.any(t == c)]
    index = {c: i for i, c in enumerate(classes)}
    ti = np.array([index.get(c, -1) for c in t])
    pi = np.array([index.get(c, -1) for c in p])
    uniq, inv = np.unique(s, return_inverse=True)
    members = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
        for m, v in _scores_idx(ti[idx], pi[idx], len(classes)).items():
            draws[m].append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))) for m, v in draws.items()}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (``b``: only the first right,
    ``c``: only the second right): a binomial test of b against (b + c, 1/2)."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    return float(binomtest(int(b), int(b + c), 0.5).pvalue)


def mcnemar_table(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str]) -> tuple[int, int, float]:
    """(b, c, p): images only model A got right, only B got right, and the exact McNemar p."""
    t, a, bb = np.asarray(y_true, dtype=object), np.asarray(pred_a, dtype=object), np.asarray(pred_b, dtype=object)
    ra, rb = a == t, bb == t
    b, c = int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))
    return b, c, mcnemar_exact(b, c)


def friedman_nemenyi(table: np.ndarray, alpha: float = 0.05) -> dict[str, object]:
    """Friedman test over folds (rows: folds, columns: methods; higher is better) with Nemenyi's
    post-hoc test (Demšar 2006).

    Returns:
        ``statistic``, ``p`` (None with fewer than 3 methods, where Friedman is undefined),
        ``mean_ranks`` (1 = best), ``cd`` (critical difference at ``alpha``) and ``p_pairs`` (k × k).
    """
    from scipy.stats import friedmanchisquare, rankdata, studentized_range

    x = np.asarray(table, float)
    n, k = x.shape
    ranks = np.vstack([rankdata(-row) for row in x])
    mean_ranks = ranks.mean(0)
    se = np.sqrt(k * (k + 1) / (6.0 * n))
    q = studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2) if k >= 2 else float("nan")
    diff = np.abs(mean_ranks[:, None] - mean_ranks[None, :])
    p_pairs = studentized_range.sf(diff / se * np.sqrt(2), k, np.inf) if k >= 2 else np.ones((k, k))
    np.fill_diagonal(p_pairs, 1.0)
    stat = p = None
    if k >= 3 and n >= 2:
        res = friedmanchisquare(*x.T)
        stat, p = float(res.statistic), float(res.pvalue)
    return {"statistic": stat, "p": p, "mean_ranks": mean_ranks.tolist(), "cd": float(q * se),
            "p_pairs": np.asarray(p_pairs).tolist()}
