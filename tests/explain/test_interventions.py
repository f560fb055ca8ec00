"""Interventions: the public API, the CLI, policies, the noisy expert, curves and leakage checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.concepts import BINARY_PROPERTIES, PLANE_NAMES, PROPERTY_CONCEPT_NAMES, get_concept, get_plane
from pcbm.errors import InputError
from pcbm.explain import (
    ConceptSet,
    GreedyPolicy,
    NoisyExpert,
    RandomPolicy,
    UncertaintyPolicy,
    intervene,
    intervention_curve,
    leakage_check,
    parse_intervention,
)

runner = CliRunner()
TT = get_plane("trans_thalamic")
P = len(PROPERTY_CONCEPT_NAMES)


def _standard_tt() -> np.ndarray:
    v = np.zeros(P)
    v[get_concept("head_visible").index] = 1.0
    for c in TT.criteria:
        v[get_concept(c.property).index] = 1.0 if c.expected else 0.0
    return v


def _toy_set() -> ConceptSet:
    """Three standard TT images: one predicted right, one with the cerebellum wrongly seen,
    one with the thalami uncertain and wrong."""
    true = _standard_tt()
    pred = np.stack([true, true, true]).copy()
    pred[1, get_concept("cerebellum_visible").index] = 0.9
    pred[2, get_concept("thalamus_visible").index] = 0.45
    truth = np.stack([true] * 3)
    truth[:, [get_concept(n).index for n in ("hc_mm", "bpd_mm", "ofd_mm", "ac_mm", "fl_mm")]] = np.nan
    return ConceptSet(pred, truth, np.full(3, TT.index), np.ones(3, int), ["a", "b", "c"], np.zeros((3, P)))


def test_policies_and_curves_on_a_hand_set_decision(tiny_model):
    cs = _toy_set()
    greedy = intervention_curve(tiny_model, cs, GreedyPolicy())
    assert greedy.accuracy[0] == pytest.approx(1 / 3)
    assert greedy.accuracy[1] == pytest.approx(1.0) and greedy.concepts_to_fix(0.9) == 1
    unc = intervention_curve(tiny_model, cs, UncertaintyPolicy(), max_k=3)
    assert unc.accuracy[1] == pytest.approx(1.0) and len(unc.k) == 4
    rnd = intervention_curve(tiny_model, cs, RandomPolicy(), seed=3)
    assert rnd.accuracy[-1] == pytest.approx(1.0)  # every concept corrected by a perfect expert
    assert len(rnd.k) == len(BINARY_PROPERTIES) + 1
    wrong = intervention_curve(tiny_model, cs, UncertaintyPolicy(), expert=NoisyExpert(1.0))
    assert wrong.accuracy[-1] == pytest.approx(0.0)  # an expert who is always wrong breaks everything
    d = greedy.to_dict()
    assert d["policy"] == "greedy" and d["concepts_to_fix_90"] == 1 and d["concepts_to_gain_90"] == 1
    assert wrong.concepts_to_gain(0.9) is None and wrong.concepts_to_fix(0.9) is None
    ax = greedy.plot()
    unc.plot(ax=ax)
    assert len(ax.lines) == 2


def test_leakage_check_on_toy_set(tiny_model):
    rep = leakage_check(tiny_model, _toy_set())
    assert rep.predicted == pytest.approx(1 / 3) and rep.true_concepts == pytest.approx(1.0)
    assert rep.zero_properties == 0.0 and rep.zero_masks == 0.0 and rep.chance == 1.0
    assert "true concepts 1.000" in str(rep) and rep.to_dict()["n"] == 3
    rep.plot()


def test_noisy_expert_error_rate():
    rng = np.random.default_rng(0)
    e = NoisyExpert(0.2)
    answers = np.array([e.answer(1.0, rng) for _ in range(5000)])
    assert abs((answers == 0).mean() - 0.2) < 0.02
    with pytest.raises(ValueError):
        NoisyExpert(1.5)


def test_concept_set_from_phantom(tiny_model):
    from pcbm.data import open_dataset

    ds = open_dataset("phantom:n=6,seed=2")
    cs = ConceptSet.from_model(tiny_model, ds, batch_size=4)
    assert cs.predicted.shape == (6, P) and cs.true.shape == (6, P) and len(cs.ids) == 6
    assert set(cs.plane.tolist()) <= set(range(len(PLANE_NAMES)))
    i = get_concept("head_visible").index
    assert np.all(np.isin(cs.true[:, i], [0.0, 1.0]))
    assert cs.zero_mask_values.shape == (6, P)
    curve = intervention_curve(tiny_model, cs, GreedyPolicy(), max_k=2)
    assert curve.accuracy.shape == (3,) and np.all(np.diff(curve.accuracy) >= -1e-9)


def test_intervene_sets_and_erases(tiny_model, small_image):
    # forcing every TT criterion on makes this model call the plane standard TT; then the
    # cerebellum turns it not standard and the criterion is named
    ok = {c.property: (1 if c.expected else 0) for c in TT.criteria} | {"head_visible": 1}
    r = intervene(tiny_model, small_image, set=ok)
    assert r.after.plane == "trans_thalamic" and r.after.status == "standard"
    r2 = intervene(tiny_model, small_image, set=ok | {"cerebellum_visible": "yes"})
    assert r2.after.status == "close_to_standard" and r2.after.missing == ["cerebellum_visible"]
    assert "cerebellum_visible = no" in str(r2)
    r3 = intervene(tiny_model, small_image, erase=["kidney", ("head", (0, 0, 60, 45))], set={"csp": 1.0})
    assert r3.intervention.visual["kidney"] == 0.0 and r3.intervention.visual["csp"] == 1.0
    head = r3.intervention.visual["head"]
    s = tiny_model.input_size
    assert head.shape == (s, s) and float(head[s // 2 - 4, 4]) == 0.0  # top-left quadrant erased
    assert any("head: erased in box" in c for c in r3.corrections)
    assert json.loads(json.dumps(r3.to_dict()))["corrections"]
    r3.plot()


def test_intervene_errors(tiny_model, small_image):
    with pytest.raises(KeyError, match="did you mean 'cerebellum_visible'"):
        intervene(tiny_model, small_image, set={"cerebelum_visible": 1})
    with pytest.raises(InputError, match="probability"):
        intervene(tiny_model, small_image, set={"csp_visible": 3})
    with pytest.raises(InputError, match="pixel spacing"):
        intervene(tiny_model, small_image, set={"hc_mm": 170})
    with pytest.raises(InputError, match="box"):
        intervene(tiny_model, small_image, erase=[("head", (0, 0, 500, 10))])
    with pytest.raises(InputError, match="property concept"):
        intervene(tiny_model, small_image, erase=["csp_visible"])


def test_parse_intervention():
    d = parse_intervention(["csp_visible=1", "csp@1,2,3,4=1", "kidney@0,0,5,5=0"], ["femur"])
    assert d == {"set": {"csp_visible": "1"}, "paint": [("csp", (1.0, 2.0, 3.0, 4.0))],
                 "erase": [("kidney", (0.0, 0.0, 5.0, 5.0)), "femur"]}
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_intervention(["csp_visible"])
    with pytest.raises(KeyError, match="did you mean 'kidney'"):
        parse_intervention([], ["kidny"])


def test_cli_intervene(tiny_run, phantom_png):
    args = ["intervene", str(tiny_run), str(phantom_png)]
    ok = [f"--set={c.property}={1 if c.expected else 0}" for c in TT.criteria] + ["--set=head_visible=1"]
    r = runner.invoke(app, [*args, *ok, "--set", "cerebellum_visible=1", "--erase", "kidney"])
    assert r.exit_code == 0, r.output
    assert "before" in r.output and "after" in r.output and "cerebellum_visible = no" in r.output
    r = runner.invoke(app, [*args, *ok, "--set", "cerebellum_visible=1", "--json"])
    d = json.loads(r.output)
    assert d["after"]["plane"] == "trans_thalamic" and d["after"]["missing"] == ["cerebellum_visible"]


def test_cli_intervene_unknown_name_is_one_clean_line(tiny_run, phantom_png):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pcbm", "intervene", str(tiny_run), str(phantom_png),
                        "--set", "cerebelum_visible=1"], capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'cerebellum_visible'" in r.stderr and "Traceback" not in r.stderr
