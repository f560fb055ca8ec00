"""The model-family registry: every registered family builds, keeps the forward contract and is
queried through ``model.family``; unknown names suggest; legacy ``concept_free`` configs still load."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES
from pcbm.errors import InputError, UnknownNameError
from pcbm.models import (
    DEFAULT_DIR,
    PCBM,
    FamilyModel,
    Intervention,
    ModelConfig,
    ModelFamily,
    PCBMOutput,
    build_model,
    get_family,
    get_model_config,
    list_families,
    list_model_configs,
    register_family,
)
from pcbm.models import families as families_mod

V, P, K = len(VISUAL_CONCEPT_NAMES), len(PROPERTY_CONCEPT_NAMES), len(PLANE_NAMES)


def _smallest_config(family: str) -> ModelConfig:
    """The family's registered config with the smallest input (its test variant, as timm's test_* models)."""
    cfgs = [get_model_config(n) for n in list_model_configs() if get_model_config(n).family == family]
    assert cfgs, f"model family {family!r} has no registered model config to test it with"
    return min(cfgs, key=lambda c: c.input_size)


@pytest.mark.parametrize("name", list_families())
def test_family_builds_and_keeps_the_forward_contract(name: str) -> None:
    cfg = _smallest_config(name)
    model = build_model(cfg).eval()
    family = get_family(name)
    assert isinstance(model, FamilyModel) and model.family is family and model.input_size == cfg.input_size
    s = cfg.input_size
    with torch.no_grad():
        out = model(torch.rand(2, 1, s, s), None, pixel_spacing_mm=torch.tensor([0.2, 0.2]),
                    long_side=torch.tensor([2.0 * s, 2.0 * s]))
    assert isinstance(out, PCBMOutput)
    assert out.plane_logits.shape == (2, K) and out.plane_probs.shape == (2, K)
    torch.testing.assert_close(out.plane_probs.sum(1), torch.ones(2))
    assert out.properties.shape == (2, P) and out.applicable.shape == (2, P) and out.applicable.dtype == torch.bool
    assert out.standard.shape == (2,) and len(out.status) == 2 and len(out.missing) == 2
    if family.has_concepts:
        assert out.masks.shape == (2, V, s, s) and out.concept_inputs is not None and out.concept_inputs.shape == (2, P)
    else:
        assert out.masks.shape[:2] == (2, V) and bool(out.masks.isnan().all()) and not bool(out.applicable.any())
        assert out.concept_inputs is None


@pytest.mark.parametrize("name", list_families())
def test_family_encoder_names_a_submodule(name: str) -> None:
    family = get_family(name)
    if family.encoder is None:
        pytest.skip(f"{name} names no encoder")
    model = build_model(_smallest_config(name))
    assert sum(p.numel() for p in model.get_submodule(family.encoder).parameters()) > 0


@pytest.mark.parametrize("name", list_families(has_concepts=False))
def test_family_without_concepts_refuses_interventions(name: str) -> None:
    cfg = _smallest_config(name)
    model = build_model(cfg).eval()
    with pytest.raises(InputError, match=f"needs a model with concepts.*family {name!r}"):
        model(torch.rand(1, 1, cfg.input_size, cfg.input_size), Intervention(properties={"head_visible": 1.0}))
    with pytest.raises(InputError, match="a concept report needs a model with concepts"):
        model.family.require_concepts("a concept report")


def test_registry_lists_and_filters() -> None:
    assert list_families()[:2] == ["pcbm", "concept_free"]
    assert "pcbm" in list_families(has_concepts=True) and "concept_free" in list_families(has_concepts=False)
    assert set(list_families(trainable=True)) >= {"pcbm", "concept_free"}
    assert get_model_config("small").family == "pcbm" and get_model_config("baseline").family == "concept_free"


def test_unknown_family_suggests() -> None:
    with pytest.raises(UnknownNameError, match="unknown model family 'pcbn'; did you mean 'pcbm'"):
        get_family("pcbn")
    with pytest.raises(KeyError, match="did you mean 'concept_free'"):
        build_model(get_model_config("tiny", family="concept-free"))
    with pytest.raises(InputError, match="family must be a model family name"):
        get_model_config("tiny", family="")


def test_a_model_class_refuses_another_familys_config() -> None:
    with pytest.raises(InputError, match="of model family 'concept_free', not 'pcbm'; build it with build_model"):
        PCBM(get_model_config("tiny_baseline"))


@pytest.mark.parametrize(("flag", "family"), [(True, "concept_free"), (False, "pcbm")])
def test_legacy_concept_free_key_maps_to_the_family(flag: bool, family: str) -> None:
    d = get_model_config("tiny").to_dict()
    del d["family"]
    cfg = ModelConfig.from_dict({**d, "concept_free": flag, "extras": {}})
    assert cfg.family == family and "concept_free" not in cfg.to_dict()
    assert ModelConfig.from_dict({**d, "concept_free": flag, "family": family}) == cfg
    assert get_model_config("tiny", concept_free=flag).family == family


def test_legacy_concept_free_key_that_disagrees_or_is_not_a_bool() -> None:
    d = get_model_config("tiny").to_dict()
    with pytest.raises(InputError, match="concept_free=true and family='pcbm', which disagree"):
        ModelConfig.from_dict({**d, "concept_free": True})
    with pytest.raises(InputError, match="concept_free must be true or false"):
        ModelConfig.from_dict({**d, "concept_free": "yes"})


def test_shipped_config_loads_unchanged() -> None:
    saved = json.loads((DEFAULT_DIR / "config.json").read_text(encoding="utf-8"))["model"]
    assert saved["concept_free"] is False  # written before model families
    assert ModelConfig.from_dict(saved) == get_model_config("small")


def test_register_family_refuses_a_clash_and_repeats_are_no_ops() -> None:
    pcbm = get_family("pcbm")
    assert register_family(pcbm) is pcbm
    with pytest.raises(ValueError, match="registered already"):
        register_family(ModelFamily("pcbm", PCBM, has_concepts=False))
    assert get_family("pcbm") is pcbm


class _Reference(FamilyModel):
    """A toy reference classifier: two own classes mapped onto our planes, no concepts, not trainable."""

    FAMILY = "toy_reference"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, image: torch.Tensor, intervention: Intervention | None = None,
                pixel_spacing_mm: float | torch.Tensor | None = None,
                long_side: float | torch.Tensor | None = None) -> PCBMOutput:
        if intervention:
            self.family.require_concepts("an intervention")
        b = image.shape[0]
        own = torch.stack([image.mean((1, 2, 3)), -image.mean((1, 2, 3))], 1) * self.scale  # (B, 2)
        logits = image.new_full((b, K), -math.inf)
        for j, plane in enumerate(self.family.plane_map.values()):
            logits[:, PLANE_NAMES.index(plane)] = own[:, j]
        nan_m, nan_p = image.new_full((b, V, 1, 1), math.nan), image.new_full((b, P), math.nan)
        standard = torch.zeros(b, dtype=torch.bool)
        return PCBMOutput(nan_m, nan_m, nan_p, nan_p, torch.zeros(b, P, dtype=torch.bool), logits, logits.softmax(1),
                          standard, ["close_to_standard"] * b, [[] for _ in range(b)])


def test_a_reference_family_registers_and_is_not_trainable(monkeypatch: pytest.MonkeyPatch) -> None:
    fam = ModelFamily("toy_reference", _Reference, has_concepts=False, trainable=False,
                      plane_map={"brain_tv": "trans_ventricular", "background": "other"})
    monkeypatch.setitem(families_mod._REGISTRY, fam.name, fam)
    model = build_model(get_model_config("tiny", family="toy_reference")).eval()
    assert model.family is fam and "toy_reference" in list_families(trainable=False)
    out = model(torch.rand(3, 1, 64, 64))
    assert set(out.planes) <= {"trans_ventricular", "other"}
    with pytest.raises(InputError, match="'toy_reference' is pretrained and not trainable.*trainable families: pcbm"):
        model.family.require_trainable()
    with pytest.raises(InputError, match="needs a model with concepts"):
        model(torch.rand(1, 1, 64, 64), Intervention(properties={"head_visible": 1.0}))


def test_plane_map_is_checked() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'trans_ventricular'"):
        ModelFamily("bad", PCBM, has_concepts=False, plane_map={"tv": "trans_ventriculr"})
    with pytest.raises(ValueError, match="a concept model predicts our planes"):
        ModelFamily("bad", PCBM, has_concepts=True, plane_map={"tv": "trans_ventricular"})
