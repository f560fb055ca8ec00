"""The backbone zoo: one registry of :class:`BackboneSpec` (one module per family, as timm and smp do).

Every backbone is built with random weights, or from a **local checkpoint file** the user gives (no
hub downloads); :func:`build_backbone` returns an :class:`~pcbm.benchmark.zoo.encoder.Encoder` that
turns grey uint8 frames into its own input (size and normalisation as its authors use them) and
pooled features.

Example:
    >>> from pcbm.benchmark.zoo import get_backbone, list_backbones
    >>> "resnet18" in list_backbones() and "usfm" in list_backbones()
    True
    >>> get_backbone("fetalclip").mean[:1]
    (0.48145466,)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pcbm.errors import InputError, look_up

POOLINGS = ("avg", "token")
FAMILY_MODULES = ("timm_family", "usfm", "fetalclip", "ultrasam", "sononet", "mofo")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Example:
        >>> BackboneSpec("x", "timm", "resnet18", pooling="cls")
        Traceback (most recent call last):
        ...
        pcbm.errors.InputError: backbone x: pooling must be one of avg, token, got 'cls'
    """

    name: str  # registry name (what --backbones takes)
    family: str  # the zoo module that builds it: timm, usfm, fetalclip, ultrasam, sononet, mofo
    arch: str  # the architecture inside the family (a timm model name, an open_clip config name, …)
    input_size: tuple[int, int] = (224, 224)  # rows × columns its authors feed it
    mean: tuple[float, ...] | None = IMAGENET_MEAN  # per-channel normalisation of [0, 1] pixels (None: its own)
    std: tuple[float, ...] | None = IMAGENET_STD
    in_chans: int = 3  # grey frames are repeated over the channels
    pooling: str = "avg"  # default feature pooling: "avg" (mean of tokens / spatial mean) or "token" (CLS)
    is_vit: bool = False  # a transformer (the PCBM protocol needs a CNN encoder: see protocols.pcbm_protocol)
    smp_encoder: str | None = None  # the segmentation_models_pytorch encoder of the same network, if any
    resize: str = "letterbox"  # "letterbox" (aspect kept, padded) or "stretch" (SonoNet's plain resize)
    kwargs: dict[str, Any] = field(default_factory=dict)  # architecture arguments
    tiny: dict[str, Any] = field(default_factory=dict)  # arguments of a tiny variant for tests
    note: str = ""  # where the weights come from, licence, caveats

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise InputError(f"backbone {self.name}: pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.resize not in ("letterbox", "stretch"):
            raise InputError(f"backbone {self.name}: resize must be letterbox or stretch, got {self.resize!r}")


_REGISTRY: dict[str, BackboneSpec] = {}
_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    _REGISTRY[spec.name] = spec
    return spec


def register_family(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a family's builder: ``builder(spec, checkpoint, pooling, input_size, overrides) -> nn.Module``
    giving pooled features ``(B, D)`` and a ``num_features`` attribute."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _BUILDERS[name] = fn
        return fn

    return deco


def _load_families() -> None:
    for mod in FAMILY_MODULES:
        importlib.import_module(f"pcbm.benchmark.zoo.{mod}")


def list_backbones() -> list[str]:
    """Registered backbone names."""
    _load_families()
    return list(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """The spec of a registered backbone.

    Raises:
        pcbm.errors.UnknownNameError: with the closest name and the list.
    """
    _load_families()
    return look_up(name, _REGISTRY, "backbone")


def build_backbone(name: str, checkpoint: str | None = None, pooling: str | None = None,
                   image_size: int | None = None, config: str | None = None, tiny: bool = False) -> Any:
    """An :class:`~pcbm.benchmark.zoo.encoder.Encoder` for ``name``.

    Args:
        name: a registered backbone.
        checkpoint: a local weights file in the format its authors publish (random init when None,
            except SonoNet-16, which reads ../shared/weights when present).
        pooling: "avg" or "token" (CLS); None: the backbone's default.
        image_size: a square input side replacing the authors' size (small CPU runs); None keeps theirs.
        config: a model configuration file where the family takes one (FetalCLIP's JSON).
        tiny: the spec's tiny variant (tests).

    Raises:
        InputError: unknown name or pooling, a missing or mismatched checkpoint.
    """
    from pcbm.benchmark.zoo.encoder import Encoder

    spec = get_backbone(name)
    pooling = pooling or spec.pooling
    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling {pooling!r}; choose {', '.join(POOLINGS)}")
    if image_size is not None and image_size < 16:
        raise InputError(f"image size must be at least 16 px, got {image_size}")
    size = spec.input_size if image_size is None else _scaled(spec.input_size, image_size)
    overrides = {**spec.kwargs, **(spec.tiny if tiny else {})}
    net = _BUILDERS[spec.family](spec, checkpoint=checkpoint, pooling=pooling, input_size=size,
                                 overrides=overrides, config=config)
    return Encoder(net, spec, size, pooling)


def _scaled(authors: tuple[int, int], side: int) -> tuple[int, int]:
    """The authors' aspect at ``side`` rows, columns rounded to a multiple of 16."""
    rows, cols = authors
    return side, max(16, round(side * cols / rows / 16) * 16) if rows != cols else side
