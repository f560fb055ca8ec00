"""Model families: what a config builds and what the built model can do, in one registry.

A :class:`ModelFamily` declares a builder and the capabilities that callers branch on, so they ask
the model (``model.family.has_concepts``) instead of testing its class. ``ModelConfig.family``
names the family; :func:`pcbm.models.build_model` dispatches on it. Every family's model
subclasses :class:`FamilyModel` and keeps one forward contract:
``model(image, intervention=None, pixel_spacing_mm=None, long_side=None) -> PCBMOutput``
(a family without concepts fills the concept fields with NaN and refuses interventions).

A family registers itself where its model is defined (as timm's models do); ``pcbm.models``
imports those modules, so the registry is complete once ``pcbm.models`` is imported.

Example:
    >>> from pcbm.models import get_family, list_families
    >>> list_families()
    ['pcbm', 'concept_free', 'sononet16']
    >>> get_family("pcbm").has_concepts, get_family("concept_free").has_concepts
    (True, False)
    >>> get_family("concept-free")
    Traceback (most recent call last):
    ...
    pcbm.errors.UnknownNameError: unknown model family 'concept-free'; did you mean 'concept_free'? known: pcbm, concept_free, sononet16
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from pcbm.errors import InputError, look_up

if TYPE_CHECKING:
    import numpy as np
    import torch

    from pcbm.data.preprocess import Letterbox
    from pcbm.models.config import ModelConfig
    from pcbm.reliability import Reliability


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model and what it supports.

    Example:
        >>> from torch import nn
        >>> fam = ModelFamily("ref", lambda cfg: nn.Identity(), has_concepts=False, trainable=False,
        ...                   plane_map={"brain_tv": "trans_ventricular", "background": "other"})
        >>> fam.plane_map["brain_tv"], fam.encoder
        ('trans_ventricular', None)
    """

    name: str  # registry name: what ModelConfig.family holds
    builder: Callable[[ModelConfig], nn.Module]  # config -> model (a FamilyModel)
    has_concepts: bool  # segmenter + property head + decision: concept reports, interventions, refit, concept metrics
    encoder: str | None = None  # submodule path of the image encoder (what --freeze-encoder freezes); None: none
    trainable: bool = True  # `pcbm train` can train it (False: a pretrained reference classifier, e.g. SonoNet-16)
    plane_map: Mapping[str, str] | None = field(default=None, hash=False)  # a reference classifier's own
    # class -> our plane (pcbm.concepts.PLANE_NAMES); its forward maps its scores through it. None: our planes
    description: str = ""  # one line for listings

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a model family needs a name, got {self.name!r}")
        if not callable(self.builder):
            raise TypeError(f"model family {self.name!r}: builder must be callable, got {self.builder!r}")
        if self.plane_map is not None:
            from pcbm.concepts import PLANE_NAMES

            if self.has_concepts:
                raise ValueError(f"model family {self.name!r}: a concept model predicts our planes; no plane_map")
            for plane in self.plane_map.values():
                look_up(plane, PLANE_NAMES, "plane")
            object.__setattr__(self, "plane_map", MappingProxyType(dict(self.plane_map)))

    def require_concepts(self, what: str) -> None:
        """Raise InputError unless this family has concepts; ``what`` names the request."""
        if not self.has_concepts:
            raise InputError(f"{what} needs a model with concepts (family {', '.join(list_families(has_concepts=True))}); "
                             f"this model is of family {self.name!r}, which has none")

    def require_trainable(self) -> None:
        """Raise InputError unless ``pcbm train`` can train this family."""
        if not self.trainable:
            raise InputError(f"model family {self.name!r} is pretrained and not trainable by pcbm train; "
                             f"trainable families: {', '.join(list_families(trainable=True))}")


class FamilyModel(nn.Module):
    """Base of every family's model: its config, its input side, its :class:`ModelFamily`, and how
    images become its input (:meth:`prepare`).

    Subclasses set ``FAMILY`` (the registered name) and implement the forward contract above; a
    family whose input is not pcbm's square letterbox overrides :meth:`prepare`, and a pretrained
    (``trainable=False``) family overrides :meth:`load_pretrained`.
    """

    FAMILY: ClassVar[str] = ""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.family != self.FAMILY:
            raise InputError(f"config {cfg.name!r} is of model family {cfg.family!r}, not {self.FAMILY!r}; "
                             "build it with build_model()")
        self.config = cfg

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def family(self) -> ModelFamily:
        return get_family(self.FAMILY)

    @property
    def head_refiner(self) -> nn.Module | None:
        """The head-biometry refiner attached to this model (:mod:`pcbm.models.head_refiner`), or None."""
        return self.__dict__.get("_head_refiner")

    def attach_head_refiner(self, refiner: nn.Module | None) -> None:
        """Use ``refiner`` for HC, BPD and OFD (None detaches it). It is kept outside this model's
        submodules, so the model's state dict and ``save_model`` stay the plane model's alone."""
        self.__dict__["_head_refiner"] = refiner

    @property
    def info(self) -> dict[str, Any]:
        """What :func:`~pcbm.models.load_model` read beside the weights (run folder, config, metrics,
        head refiner, reliability); empty for a model built in memory."""
        return dict(self.__dict__.get("_info") or {})

    @property
    def identity(self) -> dict[str, Any]:
        """Name, pcbm version and the sha256 of the weights file it was loaded from (None when built in
        memory): what each prediction record names."""
        from pcbm import __version__

        known = self.__dict__.get("_identity") or {}
        return {"name": self.config.name, "version": __version__, "sha256": known.get("sha256"),
                "source": known.get("source")}

    @property
    def reliability(self) -> Reliability | None:
        """The temperature and out-of-distribution score attached to this model
        (:class:`pcbm.reliability.Reliability`), or None (raw softmax, nothing flagged)."""
        return self.__dict__.get("_reliability")

    def attach_reliability(self, reliability: Reliability | None) -> None:
        """Use ``reliability`` (None detaches it); like the head refiner it stays outside the state dict."""
        self.__dict__["_reliability"] = reliability

    @property
    def temperature(self) -> float:
        """The plane logits' divisor: the attached reliability's temperature, else 1."""
        rel = self.reliability
        return 1.0 if rel is None else float(rel.temperature)

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """uint8 (H, W) images of any sizes -> this model's (B, 1, ·, ·) input and each image's geometry.

        The default is pcbm's letterbox into ``input_size`` squares
        (:func:`pcbm.models.inference.to_input`); :func:`~pcbm.models.inference.run_model` calls this.
        """
        from pcbm.models.inference import to_input

        return to_input(images, self.input_size)

    def load_pretrained(self) -> Path:
        """Load this family's published weights (``load_model(<config name>)`` calls it); returns the file read.

        Raises:
            InputError: the family has none (the default), or they cannot be found or read.
        """
        raise InputError(f"model family {self.FAMILY!r} has no pretrained weights; load a run directory "
                         "written by pcbm train instead")


_REGISTRY: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to the registry (again with the same declaration is a no-op).

    Raises:
        ValueError: another family is registered under the same name.
    """
    old = _REGISTRY.get(family.name)
    if old is not None and old != family:
        raise ValueError(f"model family {family.name!r} is registered already")
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    """The registered family ``name``.

    Raises:
        UnknownNameError: (an InputError and a KeyError) unknown name, with the closest one and the list.
    """
    return look_up(name, _REGISTRY, "model family")


def list_families(*, has_concepts: bool | None = None, trainable: bool | None = None) -> list[str]:
    """Registered family names in registration order, optionally only those with the given capabilities."""
    return [n for n, f in _REGISTRY.items()
            if (has_concepts is None or f.has_concepts == has_concepts)
            and (trainable is None or f.trainable == trainable)]
