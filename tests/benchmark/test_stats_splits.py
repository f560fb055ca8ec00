"""Known answers for the study's statistics and folds."""

from __future__ import annotations

import numpy as np
import pytest

from pcbm.benchmark.splits import grouped_folds, inner_split
from pcbm.benchmark.stats import bootstrap_ci, friedman_nemenyi, mcnemar_exact, mcnemar_table, scores
from pcbm.errors import InputError


def test_mcnemar_on_a_hand_made_table() -> None:
    # 10 discordant pairs, 9 one way: two-sided exact p = 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0
    truth = ["a"] * 12
    a = ["a"] * 10 + ["b"] * 2  # right on 10
    b = ["b"] * 9 + ["a"] * 2 + ["b"]  # right on 9 and 10 only
    assert mcnemar_table(truth, a, b) == (9, 1, pytest.approx(22 / 1024))


def test_scores_known_values_and_classes_outside_the_set() -> None:
    t = ["x", "x", "y", "y"]
    s = scores(t, ["x", "z", "y", "y"], labels=["x", "y"])  # 'z' is outside the set's classes: an error
    assert s["accuracy"] == 0.75 and s["balanced_accuracy"] == 0.75
    assert s["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)  # x: P 1, R 1/2; y: perfect


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_subjects() -> None:
    rng = np.random.default_rng(0)
    t = rng.choice(["a", "b", "c"], 300)
    p = np.where(rng.random(300) < 0.8, t, rng.choice(["a", "b", "c"], 300))
    subj = np.repeat(np.arange(100), 3).astype(str)
    ci = bootstrap_ci(t, p, subj, ["a", "b", "c"], n_boot=300)
    point = scores(t, p, ["a", "b", "c"])
    for m in ("macro_f1", "accuracy", "balanced_accuracy"):
        lo, hi = ci[m]
        assert lo <= point[m] <= hi and hi - lo < 0.2
    one = bootstrap_ci(t, p, np.zeros(300).astype(str), ["a", "b", "c"], n_boot=50)  # one subject: no spread
    assert one["accuracy"][0] == one["accuracy"][1] == point["accuracy"]


def test_friedman_nemenyi_ranks_a_consistent_winner_first() -> None:
    table = np.array([[0.9, 0.7, 0.5], [0.85, 0.75, 0.6], [0.95, 0.7, 0.4], [0.9, 0.8, 0.55], [0.88, 0.72, 0.5]])
    r = friedman_nemenyi(table)
    assert r["mean_ranks"] == [1.0, 2.0, 3.0]
    assert r["statistic"] == pytest.approx(10.0) and r["p"] == pytest.approx(np.exp(-5), rel=1e-6)  # chi2(2) sf
    assert r["cd"] == pytest.approx(2.343 * np.sqrt(3 * 4 / 30), rel=1e-3)  # Demsar's q_0.05(k=3) = 2.343
    assert r["p_pairs"][0][2] < 0.05 < r["p_pairs"][0][1]
    assert friedman_nemenyi(table[:, :2])["p"] is None  # two methods: Friedman undefined, McNemar instead


def test_grouped_folds_never_share_a_subject_and_are_stratified() -> None:
    rng = np.random.default_rng(1)
    subjects = np.repeat([f"s{i}" for i in range(40)], 3)
    labels = np.array([["a", "b", "c"][i % 3] for i in range(40) for _ in range(3)])
    ids = [str(i) for i in range(120)]
    rng.shuffle(ids)
    folds = grouped_folds(ids, labels, subjects, k=5, seed=0)
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(120))  # every image tested once
    for tr, te in folds:
        assert not set(subjects[tr]) & set(subjects[te])
        assert set(labels[te]) == {"a", "b", "c"}
    assert [te.tolist() for _, te in folds] == [te.tolist() for _, te in grouped_folds(ids, labels, subjects, 5, 0)]
    fit, sel = inner_split(labels[folds[0][0]], subjects[folds[0][0]])
    assert not set(subjects[folds[0][0]][fit]) & set(subjects[folds[0][0]][sel])
    with pytest.raises(InputError, match="needs at least 5 subjects; the data have 2"):
        grouped_folds(["0", "1"], ["a", "b"], ["p", "q"], k=5)


def test_scores_agree_with_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(3)
    t = rng.choice(["a", "b", "c", "d"], 200)
    p = np.where(rng.random(200) < 0.6, t, rng.choice(["a", "b", "c"], 200))
    s = scores(t, p, ["a", "b", "c", "d"])
    assert s["macro_f1"] == pytest.approx(f1_score(t, p, labels=["a", "b", "c", "d"], average="macro"))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(t, p))
