"""Head-biometry refinement: the head cropped from the original image and segmented again, finer.

The plane model sees a whole frame letterboxed to 256 px, so one of its pixels covers about three
of an HC18 image's. For HC, BPD and OFD the head is cropped from the *original* image around the
plane model's head mask (a square of :data:`MARGIN` times the mask's extent), resized to the
refiner's input (224 px: about twice as fine) and segmented again by a small U-Net trained on heads
alone (``pcbm train-head``). The refined mask, mapped back onto the original image, is what the
ellipse is fitted to. The refiner never decides the plane; it only redraws the outline.

Example:
    >>> import numpy as np
    >>> m = np.zeros((100, 160), bool); m[20:80, 40:120] = True
    >>> box = head_box(m, margin=1.25)
    >>> (round(box.cx), round(box.cy), round(box.side))
    (80, 50, 100)
    >>> crop(np.full((100, 160), 255, np.uint8), box, 32).shape
    (32, 32)
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pcbm.errors import InputError

#: the crop is this many times the head mask's larger extent (room for a mask that was too small)
MARGIN = 1.3
FILE = "head_refiner.pt"  # beside model.pt in a run directory: load_model attaches it


@dataclass(frozen=True)
class CropBox:
    """A square of ``side`` original pixels centred on (cx, cy), turned by ``angle_deg`` (training only)."""

    cx: float
    cy: float
    side: float
    angle_deg: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        """The 2×3 affine map from original pixels to the (size × size) crop."""
        m = cv2.getRotationMatrix2D((self.cx, self.cy), self.angle_deg, size / self.side)
        m[:, 2] += (size / 2 - self.cx, size / 2 - self.cy)
        return m


def head_box(mask: np.ndarray, margin: float = MARGIN) -> CropBox | None:
    """The crop around a head mask's largest component (None for an empty mask)."""
    m = np.asarray(mask) > 0.5 if np.asarray(mask).dtype != bool else np.asarray(mask)
    if not m.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[k, :4])
    return CropBox(x + w / 2 - 0.5, y + h / 2 - 0.5, max(w, h, 8) * margin)


def frame_box(shape: tuple[int, ...]) -> CropBox:
    """The square holding the whole (H, W) frame: where the refiner looks when no mask is given."""
    h, w = int(shape[0]), int(shape[1])
    return CropBox(w / 2 - 0.5, h / 2 - 0.5, float(max(h, w)))


def crop(image: np.ndarray, box: CropBox, size: int, nearest: bool = False) -> np.ndarray:
    """The (size, size) crop of a 2-D image or mask (outside the image: 0)."""
    a = np.asarray(image)
    src = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    flags = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if box.side > size else cv2.INTER_LINEAR)
    return cv2.warpAffine(src, box.matrix(size), (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def uncrop(prob: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """A (size, size) probability map back onto the original (H, W) image (outside the crop: 0)."""
    p = np.asarray(prob, np.float32)
    return cv2.warpAffine(p, box.matrix(p.shape[0]), (int(shape[1]), int(shape[0])),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


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
        """The refined head probability (H, W) of a uint8 image around the ``coarse`` head mask.

        Without ``coarse`` the refiner first finds the head itself on the whole frame (a pass at
        the frame's scale, which it is trained for). Each of ``passes`` crops (default 1 around a
        given mask, 2 from the frame) is taken around the previous outline, so a loose first crop
        is tightened. None when there is no head to crop around."""
        if coarse is None:
            coarse = self._prob(image, frame_box(image.shape)) > 0.5
            passes = 2 if passes is None else passes
        prob = None
        for _ in range(max(1, passes or 1)):
            box = head_box(coarse, self.config.margin)
            if box is None:
                return prob
            prob = self._prob(image, box)
            coarse = prob > 0.5
        return prob


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
