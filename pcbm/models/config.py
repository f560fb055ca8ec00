"""Named model configurations: frozen dataclasses in a registry (``get_model_config("small")``).

Example:
    >>> from pcbm.models.config import get_model_config
    >>> cfg = get_model_config("tiny")
    >>> cfg.encoder, cfg.input_size
    ('tu-resnet10t', 64)
    >>> get_model_config("small", input_size=192).input_size
    192
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pcbm.errors import InputError, look_up

_ARCHS = ("Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "Linknet", "MAnet", "PAN", "UPerNet", "Segformer")


INPUT_NORMS = ("none", "instance")


@dataclass(frozen=True)
class ModelConfig:
    name: str  # registry name (kept in the run's config so a run can be rebuilt)
    family: str = "pcbm"  # model family (pcbm.models.families): "pcbm", "concept_free" (encoder -> plane
    # head) or a pretrained reference classifier ("sononet16")
    arch: str = "Unet"  # segmentation_models_pytorch architecture class name
    encoder: str = "tu-resnet18"  # smp encoder name ("resnet18", "mobilenet_v2", "tu-<timm name>", …)
    encoder_depth: int = 4  # encoder stages used (3–5); fewer = smaller and faster
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16)  # one per encoder stage (Unet family)
    encoder_weights_path: str | None = None  # optional local state_dict for the encoder (no hub downloads)
    input_size: int = 256  # side of the square (letterboxed) input, pixels
    property_cnn_channels: tuple[int, ...] = (16, 32, 64)  # small CNN on the downsampled masks
    property_cnn_input: int = 64  # masks are average-pooled to this side before the CNN
    property_hidden: int = 128  # hidden width of the property MLP
    property_uses_image: bool = True  # image statistics inside the masks / field of view (gain, echogenicity)
    input_norm: str = "none"  # segmenter / encoder input: "none" (image as is) or "instance" (per-image
    # zero mean, unit variance, so a too-dark or too-bright frame looks like any other to the segmenter;
    # the property head still sees the raw image, which is where gain_adequate is judged)
    decision: str = "linear"  # "linear" (each weight is evidence) or "mlp"
    decision_hidden: int = 64  # hidden width when decision == "mlp"
    min_confidence: float = 0.5  # below this top plane probability the status is "not_a_known_plane"

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:  # the name is looked up when the model is built
            raise InputError(f"family must be a model family name, got {self.family!r}")
        if self.arch not in _ARCHS:
            raise InputError(f"unknown architecture {self.arch!r}; choose from {', '.join(_ARCHS)}")
        if not 3 <= self.encoder_depth <= 5:
            raise InputError(f"encoder_depth must be 3..5, got {self.encoder_depth}")
        if self.arch in ("Unet", "UnetPlusPlus", "MAnet") and len(self.decoder_channels) != self.encoder_depth:
            raise InputError(
                f"decoder_channels {self.decoder_channels} must have encoder_depth={self.encoder_depth} entries"
            )
        if self.input_norm not in INPUT_NORMS:
            raise InputError(f"unknown input_norm {self.input_norm!r}; choose from {', '.join(INPUT_NORMS)}")
        if self.input_size < 32 or self.input_size % 2 ** self.encoder_depth:
            raise InputError(
                f"input_size must be >= 32 and a multiple of {2 ** self.encoder_depth} "
                f"(2 ** encoder_depth), got {self.input_size}"
            )
        if self.decision not in ("linear", "mlp"):
            raise InputError(f"decision must be 'linear' or 'mlp', got {self.decision!r}")
        if not 0.0 <= self.min_confidence < 1.0:
            raise InputError(f"min_confidence must be in [0, 1), got {self.min_confidence}")
        if self.property_cnn_input < 8:
            raise InputError(f"property_cnn_input must be >= 8, got {self.property_cnn_input}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        d["property_cnn_channels"] = list(self.property_cnn_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        d = _legacy_family({k: v for k, v in d.items() if k not in _RETIRED})
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown model config keys {unknown}; known: {', '.join(sorted(known))}")
        for key in ("decoder_channels", "property_cnn_channels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


_RETIRED = ("extras",)  # keys that runs written by earlier versions carry; read and ignored


def _legacy_family(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with the ``concept_free`` bool of runs written before model families turned into ``family``."""
    d = dict(d)
    if "concept_free" not in d:
        return d
    flag = d.pop("concept_free")
    if not isinstance(flag, bool):
        raise InputError(f"concept_free must be true or false, got {flag!r} (newer configs name a family instead)")
    family = "concept_free" if flag else "pcbm"
    if d.setdefault("family", family) != family:
        raise InputError(f"model config has concept_free={str(flag).lower()} and family={d['family']!r}, which disagree")
    return d
_REGISTRY: dict[str, ModelConfig] = {}


def register_model_config(cfg: ModelConfig) -> ModelConfig:
    """Add a configuration to the registry under ``cfg.name``."""
    _REGISTRY[cfg.name] = cfg
    return cfg


def list_model_configs() -> list[str]:
    return list(_REGISTRY)


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """A registered configuration, optionally with fields replaced (validated again).

    Raises:
        KeyError: unknown name, with the closest registered one and the list.
    """
    cfg = look_up(name, _REGISTRY, "model config")
    return dataclasses.replace(cfg, **_legacy_family(overrides)) if overrides else cfg


# tiny: for tests and smoke runs — 0.4 M parameters, well under a second per batch on CPU.
register_model_config(
    ModelConfig(
        "tiny", encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8), input_size=64,
        property_cnn_channels=(8, 16), property_cnn_input=32, property_hidden=32, input_norm="instance",
    )
)
# tiny_baseline: the concept-free counterpart of tiny.
register_model_config(
    ModelConfig(
        "tiny_baseline", encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8), input_size=64,
        family="concept_free", input_norm="instance",
    )
)
# small: the default — ResNet-18 (4 stages, 3.6 M parameters, ~15 MB) U-Net at 256 px.
register_model_config(ModelConfig("small", input_norm="instance"))
# small_mlp: as small, with a one-hidden-layer MLP decision instead of the linear one.
register_model_config(ModelConfig("small_mlp", decision="mlp", input_norm="instance"))
# baseline: concept-free comparison — the same encoder, a direct plane (+ standardness) head.
register_model_config(ModelConfig("baseline", family="concept_free", input_norm="instance"))
# sononet16: the pretrained SonoNet-16 reference classifier (pcbm.models.sononet; 224 × 288 input of its
# own, 288 its long side; the smp fields are unused). load_model("sononet16") loads its weights.
register_model_config(ModelConfig("sononet16", family="sononet16", encoder="sononet16", input_size=288))
# small_sononet: as small, with SonoNet-16's conv blocks as the encoder, starting from the authors' real-data
# weights (the encoder's "sononet16" weights: $PCBM_SONONET16_WEIGHTS or ../shared/weights/sononet16).
register_model_config(ModelConfig("small_sononet", encoder="sononet16", encoder_weights_path="sononet16",
                                  input_norm="instance"))
# baseline_sononet: the concept-free baseline on the same pretrained SonoNet-16 encoder.
register_model_config(ModelConfig("baseline_sononet", family="concept_free", encoder="sononet16",
                                  encoder_weights_path="sononet16", input_norm="instance"))
