"""The :class:`Encoder` every backbone is built into: grey frames in, pooled features out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pcbm.benchmark.zoo import BackboneSpec
from pcbm.data.preprocess import letterbox
from pcbm.errors import InputError


class Encoder(nn.Module):
    """A backbone as a feature extractor: ``prepare`` frames, ``forward`` to ``(B, num_features)``.

    Example:
        >>> import numpy as np
        >>> from pcbm.benchmark.zoo import build_backbone
        >>> enc = build_backbone("resnet18", image_size=32).eval()
        >>> x = enc.prepare([np.zeros((40, 50), np.uint8)])
        >>> tuple(x.shape), tuple(enc(x).shape)
        ((1, 3, 32, 32), (1, 512))
    """

    def __init__(self, net: nn.Module, spec: BackboneSpec, input_size: tuple[int, int], pooling: str) -> None:
        super().__init__()
        self.net, self.spec, self.input_size, self.pooling = net, spec, tuple(input_size), pooling
        self.num_features = int(net.num_features)
        mean = spec.mean if spec.mean is not None else (0.0,) * spec.in_chans
        std = spec.std if spec.std is not None else (1.0,) * spec.in_chans
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, C, H, W) float input: resized as the spec says, [0, 1], channels repeated, normalised."""
        return self.normalise(torch.from_numpy(resize_batch(images, self.input_size, self.spec.resize)))

    def normalise(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> the network's input (channels repeated, the authors' mean / std)."""
        x = x01.expand(-1, self.spec.in_chans, -1, -1)
        return (x - self._mean) / self._std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, D)


def resize_batch(images: Sequence[np.ndarray], size: tuple[int, int], mode: str = "letterbox") -> np.ndarray:
    """Grey uint8 frames -> (B, 1, H, W) float32 in [0, 1] (letterboxed to a square, or stretched).

    Raises:
        InputError: an image that is not a 2-D uint8 array.
    """
    out = np.zeros((len(images), 1, *size), np.float32)
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim != 2 or a.dtype != np.uint8:
            raise InputError(f"image {i} must be a 2-D uint8 array, got shape {a.shape} dtype {a.dtype}")
        if mode == "letterbox" and size[0] == size[1]:
            out[i, 0] = letterbox(a, size[0])[0]
        else:
            out[i, 0] = cv2.resize(a.astype(np.float32) / 255.0, size[::-1], interpolation=cv2.INTER_AREA
                                   if a.shape[0] > size[0] else cv2.INTER_LINEAR)
    return out


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, unwrapped from ``state_dict`` / ``model`` / ``module`` containers.

    Raises:
        InputError: missing or unreadable file, or no tensors in it.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} checkpoint not found: {p}")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"cannot read {what} checkpoint {p}: {e}") from None
    for key in ("state_dict", "model", "module", "teacher"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not sd:
        raise InputError(f"{what} checkpoint {p} holds no tensors")
    return sd


def strip_prefixes(sd: dict[str, torch.Tensor], prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    """Keys without the first of ``prefixes`` each starts with (``module.``, ``backbone.``, …)."""
    out = {}
    for k, v in sd.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], what: str, path: str | Path,
              ignore: Sequence[str] = ("head.", "fc.", "classifier.")) -> None:
    """Load ``sd`` into ``model``: every model tensor must be found with its shape (a classifier head
    excepted), extra checkpoint tensors are ignored.

    Raises:
        InputError: a missing tensor or a shape mismatch, naming the first few.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.startswith(tuple(ignore))]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or wrong:
        parts = ([f"missing {len(missing)} tensor(s): {', '.join(missing[:4])}"] if missing else []) + \
                ([f"shape mismatch: {'; '.join(wrong[:3])}"] if wrong else [])
        raise InputError(f"{what} checkpoint {path} does not fit the architecture: {'; '.join(parts)}")
    model.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)
