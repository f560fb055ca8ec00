"""The service's parts with known answers: PSI and KS, the shared window, energy (fake RAPL), tokens."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
from pcbm.errors import InputError
from pcbm.serve.auth import MIN_TOKEN_CHARS, TokenChecker, check_exposure, is_loopback, load_tokens
from pcbm.serve.drift import MIN_N, concept_drift, decile_cdf, drift_summary, plane_mix_drift, psi
from pcbm.serve.energy import EnergyMeter, rapl_zones
from pcbm.serve.window import WindowStore, window_arrays


def _entry(sample: np.ndarray) -> dict:
    edges = np.linspace(0, 1, 11)
    return {"n": len(sample), "applicable_share": 1.0, "mean": float(sample.mean()),
            "deciles": np.quantile(sample, np.linspace(0, 1, 11)).tolist(),
            "histogram": {"edges": edges.tolist(), "counts": np.histogram(sample, edges)[0].tolist()}}


def test_psi_known_answers() -> None:
    assert psi([1, 1], [1, 1]) == 0
    a, e = np.array([0.9, 0.1]), np.array([0.5, 0.5])
    assert psi(e, a) == pytest.approx((0.4 * math.log(0.9 / 0.5)) + (-0.4 * math.log(0.1 / 0.5)))
    assert math.isfinite(psi([1, 0], [0, 1]))  # an empty bin is floored, not infinite


def test_decile_cdf_with_ties_and_outside() -> None:
    F = decile_cdf([0, 0, 0, 0, 0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert F(np.array([-1.0]))[0] == 0 and F(np.array([0.0]))[0] == pytest.approx(0.4)
    assert F(np.array([0.55]))[0] == pytest.approx(0.55) and F(np.array([2.0]))[0] == 1


def test_a_shifted_window_drifts_and_a_like_one_does_not() -> None:
    rng = np.random.default_rng(0)
    ref = _entry(rng.beta(2, 5, 2000))
    same = concept_drift(ref, rng.beta(2, 5, 400))
    moved = concept_drift(ref, rng.beta(5, 2, 400))
    assert same["psi"] < 0.1 and same["level"] == "stable" and same["ks_pvalue"] > 0.01
    assert moved["psi"] > 0.25 and moved["level"] == "significant" and moved["ks_pvalue"] < 1e-6
    few = concept_drift(ref, rng.beta(5, 2, MIN_N - 1))
    assert few["psi"] is None and few["ks_statistic"] is None and few["n"] == MIN_N - 1
    with_nan = concept_drift(ref, np.r_[rng.beta(2, 5, 100), [np.nan] * 100])
    assert with_nan["n"] == 100 and with_nan["applicable_share"] == 0.5


def test_plane_mix_drift() -> None:
    ref = {p: 1 / len(PLANE_NAMES) for p in PLANE_NAMES}
    even = plane_mix_drift(ref, np.arange(8 * 10) % 8)
    one = plane_mix_drift(ref, np.zeros(80, int))
    assert even["psi"] == pytest.approx(0, abs=1e-9) and one["psi"] > 1 and one["window"]["trans_thalamic"] == 1.0


def test_drift_summary_covers_every_concept() -> None:
    rng = np.random.default_rng(1)
    ref = {"concepts": {n: _entry(rng.random(2000)) for n in PROPERTY_CONCEPT_NAMES},
           "plane_mix": {p: 1 / 8 for p in PLANE_NAMES}}
    # PSI of a like-for-like sample is about (bins - 1) * (1/n + 1/n_ref): 0.014 here
    d = drift_summary(ref, rng.integers(0, 8, 1000), rng.random((1000, len(PROPERTY_CONCEPT_NAMES))))
    assert set(d["concepts"]) == set(PROPERTY_CONCEPT_NAMES) and d["max_concept_level"] == "stable"
    empty = drift_summary(ref, np.empty(0, int), np.empty((0, len(PROPERTY_CONCEPT_NAMES))))
    assert empty["n"] == 0 and empty["max_concept_psi"] is None


def test_window_merges_workers_keeps_the_newest_and_compacts(tmp_path) -> None:
    w = WindowStore(tmp_path, size=5, n_values=2)
    for t in range(40):  # compaction happens along the way
        w.add(float(t), plane=t % 8, status=t % 3, values=np.array([t, np.nan]))
    assert (tmp_path / f"window-{os.getpid()}.f64").stat().st_size <= 8 * 4 * 5 * 4
    other = np.array([[100.5, 2, 0, 7, 7], [1.5, 3, 0, 8, 8]], "<f8")  # another worker's file
    (tmp_path / "window-99999999.f64").write_bytes(other.tobytes() + b"\0\0\0")  # a record half-written
    times, planes, statuses, values = w.arrays()
    assert times.tolist() == [36, 37, 38, 39, 100.5] and planes[-1] == 2 and values[-1, 0] == 7


def test_window_document_round_trip(tmp_path) -> None:
    w = WindowStore(tmp_path, size=10)
    row = np.full(len(PROPERTY_CONCEPT_NAMES), np.nan)
    row[0] = 0.25
    w.add(1.0, 3, 1, row)
    doc = w.to_json({"n": 1}, {"name": "m"})
    planes, values = window_arrays(doc)
    assert planes.tolist() == [3] and values[0, 0] == 0.25 and np.isnan(values[0, 1])
    assert doc["statuses"] == ["close_to_standard"]
    with pytest.raises(InputError, match="not a pcbm serve window"):
        window_arrays({"planes": ["nowhere"], "values": {}})


def _fake_rapl(root, energy: int, top: int = 1000_000_000) -> None:
    z = root / "intel-rapl:0"
    z.mkdir(parents=True, exist_ok=True)
    (z / "energy_uj").write_text(str(energy))
    (z / "max_energy_range_uj").write_text(str(top))
    sub = root / "intel-rapl:0:0"  # a sub-zone: not counted again
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("5")


def test_energy_from_rapl_with_wraparound(tmp_path) -> None:
    _fake_rapl(tmp_path, 999_000_000)
    assert [z.name for z in rapl_zones(tmp_path)] == ["intel-rapl:0"]
    m = EnergyMeter(powercap_root=tmp_path)
    assert m.method == "rapl" and "measured" in m.description
    m.begin()
    _fake_rapl(tmp_path, 2_000_000)  # wrapped: 1 J to the top, then 2 J
    assert m.end() == pytest.approx(3.0)


def test_energy_estimate_without_rapl(tmp_path) -> None:
    m = EnergyMeter(watts_per_core=20.0, powercap_root=tmp_path / "none")
    assert m.method == "cpu-time estimate" and "20 W per busy core" in m.description
    m.reset()
    m.begin()
    x = 0.0
    for i in range(300_000):  # burn some CPU
        x += i ** 0.5
    j = m.end()
    assert j > 0 and j == pytest.approx(j)  # charged CPU seconds x 20 W
    with pytest.raises(ValueError):
        EnergyMeter(watts_per_core=0)


def test_tokens_from_file_and_environment(tmp_path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops team\n" + "a" * 20 + "\n\n" + "b" * 30 + "\n")
    assert load_tokens(f, env="") == ("a" * 20, "b" * 30)
    assert load_tokens(None, env=" " + "c" * 16 + ",," + "d" * 16) == ("c" * 16, "d" * 16)
    f.write_text("short\n")
    with pytest.raises(InputError, match=f"line 1: a token must be at least {MIN_TOKEN_CHARS}") as e:
        load_tokens(f, env="")
    assert "short" not in str(e.value)  # a token is never shown
    with pytest.raises(InputError, match="not found"):
        load_tokens(tmp_path / "missing", env="")


def test_exposure_rules() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"):
        assert is_loopback(host)
    for host in ("0.0.0.0", "10.0.0.5", "example.org", "::"):
        assert not is_loopback(host)
    check_exposure("0.0.0.0", ("x" * 20,), False)  # tokens: any host
    check_exposure("127.0.0.1", (), True)
    with pytest.raises(InputError, match="loopback"):
        check_exposure("0.0.0.0", (), True)
    with pytest.raises(InputError, match="no API tokens"):
        check_exposure("127.0.0.1", (), False)


def test_token_checker() -> None:
    c = TokenChecker(("a" * 20, "b" * 20))
    assert c.check("Bearer " + "b" * 20) and c.check("bearer " + "a" * 20)
    assert not any(c.check(h) for h in (None, "", "Bearer", "Bearer " + "a" * 19, "Basic " + "a" * 20, "a" * 20))
    assert TokenChecker(()).check(None)


def test_settings_never_show_the_tokens() -> None:
    from pcbm.serve.service import ServeSettings

    assert "s3cret" not in repr(ServeSettings(tokens=("s3cret-token-0123456789",)))
    with pytest.raises(InputError, match="concurrency"):
        ServeSettings(max_in_flight=1, concurrency=2)
