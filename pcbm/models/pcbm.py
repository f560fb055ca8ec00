"""The PCBM composite (segmenter -> property head -> decision) and the concept-free baseline:
the model families ``pcbm`` and ``concept_free`` (:mod:`pcbm.models.families`).

Example:
    >>> import torch
    >>> from pcbm.models import Intervention, build_model
    >>> model = build_model("tiny").eval()
    >>> out = model(torch.rand(1, 1, 64, 64), Intervention(properties={"cerebellum_visible": 1.0}))
    >>> out.masks.shape, out.plane_probs.shape, float(out.properties[0, 6])
    (torch.Size([1, 15, 64, 64]), torch.Size([1, 8]), 1.0)
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, PROPERTY_CONCEPTS, VISUAL_CONCEPT_NAMES, anchor_of
from pcbm.errors import InputError
from pcbm.models.config import ModelConfig, get_model_config
from pcbm.models.decision import LinearDecision, MLPDecision, assess
from pcbm.models.families import FamilyModel, ModelFamily, get_family, register_family
from pcbm.models.output import Intervention, PCBMOutput
from pcbm.models.property_head import BINARY_INDEX, CONTINUOUS_INDEX, PropertyHead

N_VISUAL, N_PROPS, N_PLANES = len(VISUAL_CONCEPT_NAMES), len(PROPERTY_CONCEPT_NAMES), len(PLANE_NAMES)
# index of the property whose presence makes each property applicable (its plane family's anchor)
_ANCHOR_OF = [None if (a := anchor_of(c.name)) is None else PROPERTY_CONCEPT_NAMES.index(a) for c in PROPERTY_CONCEPTS]
_CONT = torch.tensor(CONTINUOUS_INDEX)
_BIN = torch.tensor(BINARY_INDEX)


def build_segmenter(cfg: ModelConfig) -> nn.Module:
    """A segmentation_models_pytorch model: 1 input channel, one output channel per visual concept."""
    import segmentation_models_pytorch as smp

    kwargs = {"encoder_name": cfg.encoder, "encoder_weights": None, "in_channels": 1, "classes": N_VISUAL,
              "encoder_depth": cfg.encoder_depth}
    if cfg.arch in ("Unet", "UnetPlusPlus", "MAnet"):
        kwargs["decoder_channels"] = cfg.decoder_channels
    try:
        model = smp.create_model(cfg.arch, **kwargs)
    except (KeyError, ValueError, RuntimeError) as e:
        raise InputError(f"cannot build {cfg.arch} with encoder {cfg.encoder!r}: {e}") from None
    if cfg.encoder_weights_path:
        _load_encoder_weights(model.encoder, cfg.encoder_weights_path)
    return model


def normalise_input(image: torch.Tensor, mode: str) -> torch.Tensor:
    """The segmenter's / encoder's view of a (B, 1, S, S) image: as is, or per-image standardised."""
    if mode == "none":
        return image
    mean = image.mean((1, 2, 3), keepdim=True)
    std = image.std((1, 2, 3), keepdim=True).clamp_min(0.01)
    return (image - mean) / std


def _normalise_hook(mode: str, _module: nn.Module, args: tuple) -> tuple:
    return (normalise_input(args[0], mode), *args[1:])


def attach_input_norm(module: nn.Module, mode: str) -> None:
    """Normalise ``module``'s first input (a forward pre-hook: the state dict is unchanged)."""
    if mode != "none":
        module.register_forward_pre_hook(partial(_normalise_hook, mode))


def _load_encoder_weights(encoder: nn.Module, path: str) -> None:
    if hasattr(encoder, "load_weights") and (path == "sononet16" or path.endswith(".npz")):  # sononet16's own format
        encoder.load_weights(path)
        return
    p = Path(path)
    if not p.is_file():
        raise InputError(f"encoder weights not found: {p}")
    state = torch.load(p, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if len(missing) == len(list(encoder.state_dict())):
        raise InputError(f"encoder weights {p} match none of the encoder's parameters")


def _as_batch(value: float | torch.Tensor | None, b: int, ref: torch.Tensor) -> torch.Tensor:
    if value is None:
        return torch.full((b,), math.nan, device=ref.device, dtype=ref.dtype)
    t = torch.as_tensor(value, dtype=ref.dtype, device=ref.device).reshape(-1)
    return t.expand(b) if t.numel() == 1 else t


class PCBM(FamilyModel):
    """Progressive concept bottleneck model: image -> visual concepts -> property concepts -> plane.

    Submodules: ``segmenter`` (smp model, (B, 1, S, S) in [0, 1] -> (B, V, S, S) logits),
    ``property_head`` (masks (+ image) -> (B, P) property logits), ``decision`` ((B, P) -> (B, K);
    for the linear variant ``decision.linear`` is the ``nn.Linear(P, K)``).
    """

    FAMILY = "pcbm"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.segmenter = build_segmenter(cfg)
        attach_input_norm(self.segmenter, cfg.input_norm)
        self.property_head = PropertyHead(cfg.property_cnn_channels, cfg.property_cnn_input, cfg.property_hidden,
                                          cfg.property_uses_image)
        self.decision = LinearDecision() if cfg.decision == "linear" else MLPDecision(hidden=cfg.decision_hidden)
        self.register_buffer("_anchor_mask", torch.tensor([a is not None for a in _ANCHOR_OF]), persistent=False)
        self.register_buffer("_anchor_idx", torch.tensor([a if a is not None else 0 for a in _ANCHOR_OF]),
                             persistent=False)

    # ---- stages --------------------------------------------------------------------------------
    def forward(
        self,
        image: torch.Tensor,
        intervention: Intervention | None = None,
        pixel_spacing_mm: float | torch.Tensor | None = None,
        long_side: float | torch.Tensor | None = None,
    ) -> PCBMOutput:
        """Run all three stages.

        Args:
            image: (B, 1, S, S) in [0, 1] (see :func:`pcbm.data.preprocess.letterbox`).
            intervention: visual / property corrections; later stages are recomputed from them.
            pixel_spacing_mm: mm per *original* pixel (scalar or (B,)); continuous properties are NaN
                without it.
            long_side: long side of the original image in pixels (scalar or (B,)); defaults to S.
        """
        mask_logits, pooled = self.segment(image)  # (B, V, S, S), (B, C)
        out = self.from_masks(mask_logits.sigmoid(), image, intervention, pixel_spacing_mm, long_side, mask_logits)
        out.features = pooled
        rel = self.reliability
        if rel is not None and rel.gaussian is not None:
            self.flag_unfamiliar(out, rel)
        return out

    # ---- tensor-only stages (what the export writes as separate graphs) ---------------------------
    def segment(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: (B, 1, S, S) image in [0, 1] -> (mask logits (B, V, S, S), pooled encoder features
        (B, C)): the global means of the encoder's two deepest maps, which the out-of-distribution
        score reads. The same computation as ``self.segmenter(image)`` (input normalisation included)."""
        seg = self.segmenter
        feats = seg.encoder(normalise_input(image, self.config.input_norm))
        logits = seg.segmentation_head(seg.decoder(feats))
        pooled = torch.cat([feats[-1].float().mean((2, 3)), feats[-2].float().mean((2, 3))], 1)
        return logits, pooled

    def property_logits(self, masks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Stage 2: mask probabilities (B, V, S, S) and the image -> (B, P) property logits (binary)
        and normalised lengths (continuous)."""
        return self.property_head(masks, image)

    def decide(self, values: torch.Tensor) -> torch.Tensor:
        """Stage 3: property values (B, P) (binary probabilities, normalised lengths; NaN allowed) ->
        (B, K) plane logits, before the temperature."""
        return self.decision(self.decision_input(values)[0])

    @staticmethod
    def flag_unfamiliar(out: PCBMOutput, rel: object) -> None:
        """Score each frame against the training distribution (``rel``: a fitted
        :class:`~pcbm.reliability.Reliability`); a frame above its threshold becomes
        ``not_a_known_plane`` (not standard, no missing criteria) with the reason "unlike the training data"."""
        from pcbm.reliability import REASON

        score = rel.score(out)  # type: ignore[attr-defined]
        out.ood_score = torch.as_tensor(score, dtype=torch.float32)
        out.status_reason = [None] * len(score)
        standard = out.standard.clone()
        for j, s in enumerate(score.tolist()):
            if s > rel.threshold:  # type: ignore[attr-defined]
                out.status[j], out.missing[j], out.status_reason[j] = "not_a_known_plane", [], REASON
                standard[j] = False
        out.standard = standard

    def from_masks(
        self,
        masks: torch.Tensor,
        image: torch.Tensor,
        intervention: Intervention | None = None,
        pixel_spacing_mm: float | torch.Tensor | None = None,
        long_side: float | torch.Tensor | None = None,
        mask_logits: torch.Tensor | None = None,
    ) -> PCBMOutput:
        """Stages 2–3 from given mask probabilities (B, V, S, S) (e.g. ground truth, or edited)."""
        b = image.shape[0]
        if intervention is not None and intervention.visual:
            masks = self.apply_visual(masks, intervention.visual)
        property_logits = self.property_head(masks, image)  # (B, P)
        scale = _as_batch(pixel_spacing_mm, b, image) * _as_batch(
            long_side if long_side is not None else float(image.shape[-1]), b, image
        )  # mm per unit of normalised length
        values = self.property_values(property_logits)
        if intervention is not None and intervention.properties:
            values = self.apply_properties(values, intervention.properties, scale)
        out = self.from_values(values)
        props = values.clone()
        props[:, _CONT] = torch.where(
            out.applicable[:, _CONT], values[:, _CONT] * scale.unsqueeze(1), torch.full_like(values[:, _CONT], math.nan)
        )
        if mask_logits is None:
            mask_logits = torch.logit(masks.clamp(1e-6, 1 - 1e-6))
        out.mask_logits, out.masks, out.property_logits, out.properties = mask_logits, masks, property_logits, props
        return out

    def from_values(self, values: torch.Tensor) -> PCBMOutput:
        """Stage 3 from property values (B, P): binary probabilities, continuous normalised lengths.

        The returned output's mask/property fields are placeholders of the right batch size; the
        callers above fill them.
        """
        x, applicable = self.decision_input(values)
        plane_logits = self.decision(x)  # (B, K)
        plane_probs = (plane_logits / self.temperature).softmax(1)
        standard, status, missing = assess(plane_probs, values, self.config.min_confidence)
        empty = values.new_zeros(values.shape[0], N_VISUAL, 1, 1)
        return PCBMOutput(empty, empty, values, values, applicable, plane_logits, plane_probs, standard, status,
                          missing, concept_inputs=x)

    # ---- helpers -------------------------------------------------------------------------------
    def decision_input(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(decision input x, applicable): continuous values zeroed where not applicable (or NaN)."""
        applicable = self.applicability(values)
        cont = values[:, _CONT]
        x = values.clone()
        x[:, _CONT] = torch.where(applicable[:, _CONT], torch.nan_to_num(cont), torch.zeros_like(cont))
        return x, applicable

    @staticmethod
    def property_values(property_logits: torch.Tensor) -> torch.Tensor:
        """Binary logits -> probabilities; continuous (normalised lengths) unchanged."""
        v = property_logits.clone()
        v[:, _BIN] = property_logits[:, _BIN].sigmoid()
        return v

    def applicability(self, values: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: False where the property's family anchor (e.g. head_visible) is below 0.5."""
        anchor_on = values[:, self._anchor_idx] >= 0.5  # (B, P)
        return anchor_on | ~self._anchor_mask  # logical ops, not torch.where on bools (onnxruntime has no Where for bool)

    @staticmethod
    def apply_visual(masks: torch.Tensor, visual: dict[str, float | torch.Tensor]) -> torch.Tensor:
        masks = masks.clone()
        for name, value in visual.items():
            if name not in VISUAL_CONCEPT_NAMES:
                from pcbm.concepts import get_visual_concept

                get_visual_concept(name)  # raises KeyError with a suggestion
            c = VISUAL_CONCEPT_NAMES.index(name)
            if isinstance(value, torch.Tensor) or getattr(value, "ndim", 0):  # a map (a tensor or an array)
                v = torch.as_tensor(value).to(masks)
                if v.dim() == 2:
                    v = v.unsqueeze(0)
                if v.shape[-2:] != masks.shape[-2:]:
                    v = F.interpolate(v.unsqueeze(1), size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
                masks[:, c] = v.expand(masks.shape[0], -1, -1)
            else:
                masks[:, c] = float(value)
        return masks

    @staticmethod
    def apply_properties(values: torch.Tensor, props: dict[str, float], scale: torch.Tensor) -> torch.Tensor:
        from pcbm.concepts import get_property_concept

        values = values.clone()
        for name, value in props.items():
            concept = get_property_concept(name)  # KeyError with a suggestion for unknown names
            i = concept.index
            if concept.binary:
                values[:, i] = float(value)
            else:
                if bool(torch.isnan(scale).any()):
                    raise InputError(f"intervening on {name} (mm) needs pixel_spacing_mm")
                values[:, i] = float(value) / scale
        return values


class BaselineClassifier(FamilyModel):
    """Concept-free baseline: the same encoder, global pooling, a direct plane + standardness head.

    Returns a :class:`PCBMOutput` whose concept fields are NaN (masks (B, V, 1, 1)), applicable all
    False, and standardness from its own logit.
    """

    FAMILY = "concept_free"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        from segmentation_models_pytorch.encoders import get_encoder

        self.encoder = get_encoder(cfg.encoder, in_channels=1, depth=cfg.encoder_depth, weights=None)
        if cfg.encoder_weights_path:
            _load_encoder_weights(self.encoder, cfg.encoder_weights_path)
        attach_input_norm(self.encoder, cfg.input_norm)
        self.head = nn.Linear(self.encoder.out_channels[-1], N_PLANES + 1)

    def forward(
        self,
        image: torch.Tensor,
        intervention: Intervention | None = None,
        pixel_spacing_mm: float | torch.Tensor | None = None,
        long_side: float | torch.Tensor | None = None,
    ) -> PCBMOutput:
        """Plane and standardness from the pooled encoder features (spacing and long side unused)."""
        if intervention:
            self.family.require_concepts("an intervention")
        feats = self.encoder(image)[-1]  # (B, C, S/2^d, S/2^d)
        logits = self.head(feats.mean((2, 3)))  # (B, K + 1)
        plane_logits, std_logit = logits[:, :N_PLANES], logits[:, N_PLANES]
        return PCBMOutput.without_concepts(plane_logits, plane_logits.softmax(1), self.config.min_confidence,
                                           standard_logit=std_logit)


register_family(ModelFamily("pcbm", PCBM, has_concepts=True, encoder="segmenter.encoder",
                            description="segmenter -> property concepts -> plane decision"))
register_family(ModelFamily("concept_free", BaselineClassifier, has_concepts=False, encoder="encoder",
                            description="the same encoder, pooled -> plane + standardness head"))


def build_model(cfg: ModelConfig | str, **overrides: object) -> FamilyModel:
    """Build a model of ``cfg.family`` from a config or a registered config name (random init).

    Raises:
        UnknownNameError: an unknown config or family name (did-you-mean and the list).
    """
    if isinstance(cfg, str):
        cfg = get_model_config(cfg, **overrides)
    elif overrides:
        import dataclasses

        cfg = dataclasses.replace(cfg, **overrides)
    model = get_family(cfg.family).builder(cfg)
    return model.to(memory_format=torch.channels_last)
