"""Temperature scaling, the out-of-distribution score, and 'unlike the training data' in predict and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pcbm.errors import InputError
from pcbm.models import build_model, predict_images, save_model
from pcbm.training.calibration import (
    FILE,
    REASON,
    GaussianScore,
    Reliability,
    expected_calibration_error,
    fit_reliability,
    fit_temperature,
    frame_features,
    load_reliability,
)


def test_temperature_undoes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    true_logits = rng.normal(size=(n, k)) * 1.5
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(k, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, labels)  # three times too sure
    assert 2.5 < t < 3.6
    over = np.exp(true_logits * 3) / np.exp(true_logits * 3).sum(1, keepdims=True)
    assert expected_calibration_error(over, labels) > 0.1
    assert expected_calibration_error(p, labels) < 0.05
    with pytest.raises(InputError, match="at least 2"):
        fit_temperature(np.zeros((1, 3)), np.zeros(1))


def test_gaussian_score_ranks_far_frames_higher() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 20)) * np.linspace(0.1, 5, 20)
    x[:, 0] = 3.0  # a constant feature must not divide by zero
    g = GaussianScore.fit(x)
    inside = g.score(rng.normal(size=(200, 20)) * np.linspace(0.1, 5, 20) + np.r_[3.0, np.zeros(19)])
    shifted = rng.normal(size=(200, 20)) * np.linspace(0.1, 5, 20)
    shifted[:, 1] += 5.0  # 14 sd of the tight feature: small against the loose ones, far all the same
    outside = g.score(shifted + np.r_[3.0, np.zeros(19)])
    assert np.median(inside) < 1.2 and (outside > np.quantile(inside, 0.99)).mean() > 0.95
    g2 = GaussianScore.from_dict(json.loads(json.dumps(g.to_dict())))
    assert np.allclose(g2.score(shifted), g.score(shifted))


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    rel = fit_reliability(model, ["phantom:n=24,seed=5"], per_source=12, quantile=0.9)
    run = tmp_path_factory.mktemp("run")
    save_model(model, run)
    rel.save(run / FILE)
    return run, rel


def test_fit_records_what_it_did(calibrated_run) -> None:
    _, rel = calibrated_run
    f = rel.fitted
    assert f["data"] == ["phantom:n=24,seed=5"] and f["sources"]["phantom:n=24,seed=5"]["fit"] > 0
    assert 0 <= f["ece_before"] <= 1 and 0 <= f["ece_after"] <= 1 and rel.temperature > 0
    assert np.isfinite(rel.threshold) and f["features"] == len(rel.gaussian.mean)


def test_loaded_model_flags_unlike_frames(calibrated_run) -> None:
    from pcbm.data import open_dataset
    from pcbm.models import load_model

    run, rel = calibrated_run
    model, info = load_model(run)
    assert model.reliability is not None and info["reliability"]["temperature"] == pytest.approx(rel.temperature)
    phantom = [s.image for s in open_dataset("phantom:n=4,seed=77")]
    noise = [np.random.default_rng(3).integers(0, 255, (180, 240), dtype=np.uint8), np.full((200, 200), 255, np.uint8)]
    res = predict_images(model, phantom + noise)
    for r in res:
        assert set(r["reliability"]) == {"ood_score", "threshold", "unlike_training_data", "temperature"}
        assert r["reliability"]["unlike_training_data"] == (r["status_reason"] == REASON)
        if r["status_reason"]:
            assert r["status"] == "not_a_known_plane" and not r["standard"] and r["missing_criteria"] == []
    # white noise and a blank frame are far from every phantom scene the Gaussian saw
    assert all(r["reliability"]["ood_score"] > max(p["reliability"]["ood_score"] for p in res[:4]) for r in res[4:])
    assert all(r["status_reason"] == REASON for r in res[4:])
    # the temperature changes the probabilities, never the plane
    model.attach_reliability(None)
    raw = predict_images(model, phantom)
    assert [r["plane"] for r in raw] == [r["plane"] for r in res[:4]]
    assert all(r["reliability"] is None and r["status_reason"] is None for r in raw)


def test_report_shows_the_caution(calibrated_run) -> None:
    from pcbm.explain import explain_image
    from pcbm.models import load_model

    run, _ = calibrated_run
    model, info = load_model(run)
    rep = explain_image(model, np.full((200, 200), 255, np.uint8), info, heatmap=None)
    assert rep.status == "not_a_known_plane" and rep.status_reason == REASON
    assert rep.cautions and REASON in rep.cautions[0]
    page = rep.to_html()
    assert "Caution" in page and REASON in page and page.index("Caution") < page.index("ISUOG checklist")
    d = rep.to_dict()
    assert d["decision"]["status_reason"] == REASON and d["reliability"]["unlike_training_data"]
    assert "Caution" in rep.to_markdown()


def test_bad_files_and_arguments(tmp_path, calibrated_run) -> None:
    _, rel = calibrated_run
    p = tmp_path / FILE
    rel.save(p)
    with pytest.raises(InputError, match="exists"):
        rel.save(p)
    assert load_reliability(p).threshold == pytest.approx(rel.threshold)
    p.write_text('{"format": 1, "temperature": -1, "groups": [], "threshold": 1}')
    with pytest.raises(InputError, match="not positive"):
        load_reliability(p)
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a pcbm reliability file"):
        load_reliability(p)
    with pytest.raises(InputError, match="needs data"):
        fit_reliability(build_model("tiny"), [])
    with pytest.raises(InputError, match="has no concepts"):
        fit_reliability(build_model("tiny_baseline"), ["phantom:n=4"])


def test_features_have_every_group() -> None:
    model = build_model("tiny").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    f = frame_features(out)
    assert f.shape[0] == 2 and np.isfinite(f).all()
    assert out.features is not None and f.shape[1] == out.concept_inputs.shape[1] + 2 * 15 + 2 + out.features.shape[1]
    assert Reliability().score(out).tolist() == [0.0, 0.0]
