"""SonoNet-16, the pretrained reference family: the authors' 13 example frames (one per class) come
out right at its own 14-class level and on our planes; the npz loader refuses a foreign file; the
weights are found where documented; ``pcbm predict sononet16`` works and concept commands refuse.

Needs ``../shared/weights/sononet16/SonoNet16.npz`` (or ``$PCBM_SONONET16_WEIGHTS``) and the frames in
``../shared/data/sononet/frames``; the tests that need them skip, saying so, when they are absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pcbm.cli import main
from pcbm.concepts import PLANE_NAMES
from pcbm.errors import InputError
from pcbm.models import SonoNet16, build_model, load_model, run_model, save_model
from pcbm.models import sononet as sononet_mod
from pcbm.models.sononet import CLASS_NAMES, CLASS_TO_PLANE, WEIGHTS_ENV, find_weights, load_npz

FRAMES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet" / "frames"
CROP = (slice(115, 734), slice(81, 874))  # the authors' crop of the vendor's screen (rows, columns)


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return find_weights()
    except InputError as e:
        pytest.skip(f"SonoNet-16 weights absent: {e}")


@pytest.fixture(scope="module")
def sononet(weights: Path) -> SonoNet16:
    model, info = load_model("sononet16")
    assert info["weights"] == str(weights) and info["run_dir"] is None
    return model


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    """Class name -> the cropped frame, grayscale as the authors' preprocessing (mean of R, G, B)."""
    files = sorted(FRAMES.glob("*.tiff"))
    if len(files) != len(CLASS_NAMES) - 1:  # one per class but BACKGROUND
        pytest.skip(f"SonoNet example frames absent from {FRAMES}")
    out = {}
    for f in files:
        rgb = cv2.imread(str(f), cv2.IMREAD_COLOR)[CROP]
        out[f.stem] = np.round(rgb.astype(np.float32).mean(2)).astype(np.uint8)
    return out


def test_example_frames_are_classified_right(sononet: SonoNet16, frames: dict[str, np.ndarray]) -> None:
    out, boxes = run_model(sononet, list(frames.values()))
    own = [CLASS_NAMES[i] for i in out.class_probs.argmax(1).tolist()]
    right = [name for name, got in zip(frames, own, strict=True) if got == name]
    assert len(right) >= 12, f"right: {right}; predicted {dict(zip(frames, own, strict=True))}"
    coarse = [name for name, plane in zip(frames, out.planes, strict=True) if plane == CLASS_TO_PLANE[name]]
    assert len(coarse) >= 12, f"right on our planes: {coarse}; predicted {dict(zip(frames, out.planes, strict=True))}"
    for j, name in enumerate(frames):
        assert boxes[j].original_shape == (619, 793)
        known = out.planes[j] != "other" and float(out.plane_probs[j].max()) >= sononet.config.min_confidence
        assert out.status[j] == ("close_to_standard" if known else "not_a_known_plane"), name
    assert not bool(out.standard.any()) and out.standard_logit is None


def test_plane_probabilities_sum_the_classes(sononet: SonoNet16, frames: dict[str, np.ndarray]) -> None:
    out, _ = run_model(sononet, [frames["BRAIN-CB"], frames["LVOT"]])
    cp = out.class_probs
    for plane in PLANE_NAMES:
        cols = [i for i, c in enumerate(CLASS_NAMES) if CLASS_TO_PLANE[c] == plane]
        want = cp[:, cols].sum(1) if cols else torch.zeros(2)
        torch.testing.assert_close(out.plane_probs[:, PLANE_NAMES.index(plane)], want)
    assert bool(torch.isfinite(out.plane_logits).all())
    for plane in ("trans_thalamic", "cervix"):  # no SonoNet class
        assert out.plane_logits[:, PLANE_NAMES.index(plane)].tolist() == [-1e4, -1e4]
    torch.testing.assert_close(out.plane_logits.softmax(1), out.plane_probs)


def test_prepare_resizes_and_standardises_times_255() -> None:
    model = build_model("sononet16")
    img = np.random.default_rng(0).integers(0, 256, (100, 700), dtype=np.uint8)
    x, boxes = model.prepare([img, np.full((50, 50), 7, np.uint8)])
    assert tuple(x.shape) == (2, 1, 224, 288) and [b.long_side for b in boxes] == [700, 50]
    assert abs(float(x[0].mean())) < 1e-2 and math.isclose(float(x[0].std(correction=0)), 255.0, rel_tol=1e-3)
    assert float(x[1].abs().max()) == 0.0  # a flat frame: zeros, not NaN
    with pytest.raises(InputError, match="image 0 must be a non-empty 2-D uint8 array.*float32"):
        model.prepare([np.zeros((10, 10), np.float32)])


def test_npz_loader_refuses_a_foreign_file(tmp_path: Path) -> None:
    model = build_model("sononet16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    few = tmp_path / "few.npz"
    np.savez(few, np.zeros(3), np.zeros(4))
    with pytest.raises(InputError, match=r"few\.npz is not SonoNet-16's weights: 2 arrays.*expected 75"):
        load_npz(model, few)
    shapes = [a.shape for a in _real_like_arrays(model)]
    shapes[5] = (16, 16, 5, 5)
    bad = tmp_path / "bad.npz"
    np.savez(bad, *[np.ones(s, np.float32) for s in shapes])
    with pytest.raises(InputError, match=r"bad\.npz.*arr_5 \(block 2\) has shape \(16, 16, 5, 5\), expected \(16, 16, 3, 3\)"):
        load_npz(model, bad)
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(InputError, match=r"cannot read SonoNet-16 weights .*text\.npz"):
        load_npz(model, text)
    for k, v in model.state_dict().items():  # nothing half-loaded
        torch.testing.assert_close(v, before[k])


def _real_like_arrays(model: SonoNet16) -> list[np.ndarray]:
    arrays = []
    for block in (m for m in model.modules() if isinstance(m, torch.nn.Sequential) and isinstance(m[0], torch.nn.Conv2d)):
        arrays += [block[0].weight.detach().numpy()] + [np.ones(block[1].num_features, np.float32)] * 4
    return arrays


def test_weights_are_looked_for_where_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nope.npz"))
    with pytest.raises(InputError, match=f"\\${WEIGHTS_ENV}=.*nope.npz is not a file"):
        load_model("sononet16")
    monkeypatch.delenv(WEIGHTS_ENV)
    monkeypatch.setattr(sononet_mod, "_REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared" / "weights" / "sononet16" / "SonoNet16.npz"  # tmp/repo/../shared/…
    with pytest.raises(InputError, match=f"looked for {shared} and .*SonoNet16.npz; set \\${WEIGHTS_ENV}"):
        load_model("sononet16")
    npz = tmp_path / "w.npz"
    np.savez(npz, *_real_like_arrays(build_model("sononet16")))
    monkeypatch.setenv(WEIGHTS_ENV, str(npz))
    assert load_model("sononet16")[1]["weights"] == str(npz)


def test_saved_sononet_loads_back_as_a_run(sononet: SonoNet16, frames: dict[str, np.ndarray], tmp_path: Path) -> None:
    save_model(sononet, tmp_path)
    again, info = load_model(tmp_path)
    assert isinstance(again, SonoNet16) and info["run_dir"] == str(tmp_path)
    torch.testing.assert_close(run_model(again, [frames["FEMUR"]])[0].class_probs,
                               run_model(sononet, [frames["FEMUR"]])[0].class_probs)


def test_cli_predict_prints_plane_and_own_class(sononet: SonoNet16, frames: dict[str, np.ndarray],
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cb.png"
    cv2.imwrite(str(path), frames["BRAIN-CB"])
    main(["predict", "sononet16", str(path)])
    [res] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert res["plane"] == "trans_cerebellar" and res["model_class"] == "BRAIN-CB"
    assert res["status"] == "close_to_standard" and res["standard"] is False and res["properties"] == {}
    assert math.isclose(sum(res["model_class_probs"].values()), 1.0, abs_tol=1e-3)


def test_cli_eval_runs(sononet: SonoNet16, capsys: pytest.CaptureFixture[str]) -> None:
    main(["eval", "sononet16", "--data", "phantom:n=2,size=64", "--batch-size", "2", "--threads", "1"])
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 2 and "dice" not in m and m["plane_macro_f1"] is not None


@pytest.mark.parametrize(("args", "what"), [(["report", "--out", "{tmp}/r"], "a concept report"),
                                            (["intervene", "--set", "csp_visible=1"], "an intervention")])
def test_cli_concept_commands_refuse(sononet: SonoNet16, frames: dict[str, np.ndarray], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], args: list[str], what: str) -> None:
    path = tmp_path / "tv.png"
    cv2.imwrite(str(path), frames["BRAIN-TV"])
    cmd, *opts = args
    with pytest.raises(SystemExit) as exc:
        main([cmd, "sononet16", str(path), *(o.format(tmp=tmp_path) for o in opts)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{what} needs a model with concepts" in err and "'sononet16'" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
