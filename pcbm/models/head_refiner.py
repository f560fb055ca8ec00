"""Head-biometry refinement: the head cropped from the original image and segmented again, finer.

The plane model sees a whole frame letterboxed to 256 px, so one of its pixels covers about three
of an HC18 image's. For HC, BPD and OFD the head is cropped from the *original* image around the
plane model's head mask (a square of :data:`MARGIN` times the mask's extent), resized to the
refiner's input (224 px: about twice as fine) and segmented again by a small U-Net trained on heads
alone (``pcbm train-head``). The refined mask, mapped back onto the original image, is what the
ellipse is fitted to. The refiner never decides the plane; it only redraws the outline. The crop
geometry and the pass loop are :mod:`pcbm.data.crops` (torch-free, shared with the runtime).

Example:
    >>> import numpy as np
    >>> refiner = HeadRefiner(RefinerConfig(encoder="tu-resnet10t", size=64, decoder_channels=(16, 8, 8, 8, 8))).eval()
    >>> refiner.refine(np.zeros((60, 80), np.uint8), np.zeros((60, 80), bool)) is None  # no head to crop around
    True
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pcbm.data.crops import (
    MARGIN,  # noqa: E402  (the crop is this many times the head mask's extent)
    CropBox,
    crop,
    frame_box,
    head_box,
    refine_loop,
    uncrop,
)
from pcbm.errors import InputError

FILE = "head_refiner.pt"  # beside model.pt in a run directory: load_model attaches it


@dataclass(frozen=True)
class RefinerConfig:
    encoder: str = "resnet18"
    size: int = 224  # crop side in refiner pixels
    margin: float = MARGIN
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 8)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefinerConfig:
        d = dict(d)
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


class HeadRefiner(nn.Module):
    """A one-channel U-Net for the head in a crop: (B, 1, S, S) in [0, 1] -> (B, 1, S, S) logits."""

    def __init__(self, cfg: RefinerConfig | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        from pcbm.models.pcbm import attach_input_norm

        self.config = cfg or RefinerConfig()
        self.net = smp.Unet(self.config.encoder, encoder_weights=None, in_channels=1, classes=1,
                            decoder_channels=self.config.decoder_channels)
        attach_input_norm(self.net, "instance")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    #: test-time augmentation: also segment the left-right mirrored crop and average (set False for speed)
    flip_tta = True

    @torch.inference_mode()
    def _prob(self, image: np.ndarray, box: CropBox) -> np.ndarray:
        x = torch.from_numpy(crop(image, box, self.config.size))[None, None]
        dev = next(self.parameters()).device
        x = x.to(dev)
        if self.flip_tta:
            logits = self(torch.cat([x, x.flip(-1)]))
            prob = (torch.sigmoid(logits[0:1]) + torch.sigmoid(logits[1:2]).flip(-1)) / 2
        else:
            prob = torch.sigmoid(self(x))
        return uncrop(prob[0, 0].float().cpu().numpy(), box, image.shape[:2])

    @torch.inference_mode()
    def refine(self, image: np.ndarray, coarse: np.ndarray | None = None, passes: int | None = None) -> np.ndarray | None:
        """The refined head probability (H, W) of a uint8 image around the ``coarse`` head mask
        (:func:`pcbm.data.crops.refine_loop`: without ``coarse`` the refiner first finds the head on
        the whole frame; each pass crops around the previous outline). None with no head to crop around."""
        return refine_loop(image, lambda box: self._prob(image, box), coarse, passes, self.config.margin)


def save_refiner(model: HeadRefiner, run_dir: str | Path, meta: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write ``head_refiner.pt`` (config, weights, what it was trained on) into ``run_dir``;
    ``half`` stores the float weights as float16 (half the size; loaded back as float32)."""
    from pcbm._io import atomic_open

    path = Path(run_dir) / FILE
    cfg = asdict(model.config)
    cfg["decoder_channels"] = list(cfg["decoder_channels"])
    with atomic_open(path, "wb") as f:
        state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save({"config": cfg, "state_dict": state, "meta": meta or {}}, f)
    return path


def load_refiner(path: str | Path) -> tuple[HeadRefiner, dict[str, Any]]:
    """A refiner and its meta from ``head_refiner.pt`` (or a folder holding one)."""
    p = Path(path)
    p = p / FILE if p.is_dir() else p
    if not p.is_file():
        raise InputError(f"head refiner not found: {p}")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        model = HeadRefiner(RefinerConfig.from_dict(blob["config"]))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise InputError(f"{p} is not a pcbm head refiner ({type(e).__name__}: {str(e)[:200]})") from None
    return model.eval(), dict(blob.get("meta") or {})


def jitter_box(box: CropBox, rng: np.random.Generator, scale: tuple[float, float] = (0.85, 1.35),
               shift: float = 0.12, angle: float = 20.0) -> CropBox:
    """A training crop: the box rescaled, shifted by up to ``shift`` of its side and turned."""
    side = box.side * float(rng.uniform(*scale))
    dx, dy = (float(v) * shift * box.side for v in rng.uniform(-1, 1, 2))
    return CropBox(box.cx + dx, box.cy + dy, side, float(rng.uniform(-angle, angle)))


__all__ = ["FILE", "MARGIN", "CropBox", "HeadRefiner", "RefinerConfig", "crop", "frame_box", "head_box",
           "jitter_box", "load_refiner", "save_refiner", "uncrop"]
