"""SonoNet-16 (Baumgartner et al., IEEE TMI 2017): a pretrained real-data reference classifier, the
model family ``sononet16``.

Thirteen 3×3 conv blocks (conv without bias -> batch norm -> ReLU, 2×2 max-pools after blocks 2, 4,
7 and 10), then an adaptation layer of two 1×1 conv blocks to 64 and 14 channels (no ReLU after the
last); global average pooling of the 14 class maps gives the logits. Its 14 classes are mapped
onto our planes through the family's ``plane_map``: a plane's probability is the sum of its
classes' softmax probabilities. It has no concepts and no standardness head.

The weights are the authors' (``SonoNet16.npz``, Apache-2.0; cite the paper). ``build_model``
gives a randomly initialised network; ``load_model("sononet16")`` loads the weights from
``$PCBM_SONONET16_WEIGHTS`` or ``../shared/weights/sononet16/SonoNet16.npz``.

Example:
    >>> import numpy as np
    >>> from pcbm.models import build_model
    >>> model = build_model("sononet16").eval()  # random weights; load_model("sononet16") has the real ones
    >>> x, boxes = model.prepare([np.zeros((480, 640), np.uint8)])
    >>> tuple(x.shape), boxes[0].long_side
    ((1, 1, 224, 288), 640)
    >>> out = model(x)
    >>> tuple(out.class_probs.shape), out.planes[0] in model.family.plane_map.values()
    ((1, 14), True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from pcbm.concepts import PLANE_NAMES
from pcbm.data.preprocess import Letterbox, make_letterbox
from pcbm.data.sononet_frames import SONONET_PLANES
from pcbm.errors import InputError
from pcbm.models.config import ModelConfig
from pcbm.models.families import FamilyModel, ModelFamily, register_family
from pcbm.models.output import Intervention, PCBMOutput

# SonoNet's classes in its output order -> our planes (it has no trans-thalamic and no cervix class)
CLASS_TO_PLANE = SONONET_PLANES
CLASS_NAMES = tuple(CLASS_TO_PLANE)
INPUT_SHAPE = (224, 288)  # rows × columns
WIDTHS = (16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128)  # the 3×3 blocks
POOL_AFTER = (2, 4, 7, 10)  # 1-based blocks followed by a 2×2 max-pool
ADAPTATION = (64, len(CLASS_NAMES))  # the 1×1 blocks
BN_EPS = 1e-4  # Lasagne's: inv_std = 1 / sqrt(var + 1e-4)
WEIGHTS_ENV = "PCBM_SONONET16_WEIGHTS"
WEIGHTS_RELPATH = Path("..", "shared", "weights", "sononet16", "SonoNet16.npz")  # from the repo root or cwd
LOG_ZERO = -1e4  # the plane logit of a plane no SonoNet class maps onto (finite, so sums and losses stay finite)
_REPO = Path(__file__).resolve().parents[2]


def _block(c_in: int, c_out: int, k: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class SonoNet16(FamilyModel):
    """SonoNet-16 under pcbm's forward contract (see the module docstring).

    Submodules: ``features`` (the 13 conv blocks and pools: (B, 1, H, W) -> (B, 128, H/16, W/16)) and
    ``adaptation`` (-> (B, 14, H/16, W/16) class maps, which localise the class).
    """

    FAMILY = "sononet16"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        layers: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(WIDTHS, start=1):
            layers.append(_block(c_in, c_out, 3))
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.adaptation = nn.Sequential(_block(c_in, ADAPTATION[0], 1), _block(*ADAPTATION, 1, relu=False))
        groups = [[i for i, c in enumerate(CLASS_NAMES) if CLASS_TO_PLANE[c] == p] for p in PLANE_NAMES]
        onehot = torch.tensor([[float(i in g) for g in groups] for i in range(len(CLASS_NAMES))])
        self.register_buffer("_to_planes", onehot, persistent=False)  # (14, K): class -> plane sums

    # ---- input ---------------------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """SonoNet's input: a bilinear resize to 224 × 288 (not a letterbox), standardised per image, ×255.

        The boxes record each original shape (their ``long_side`` is what the forward contract
        receives); SonoNet has no masks to map back through them.

        Raises:
            InputError: an image that is not a non-empty 2-D uint8 array.
        """
        arrays, boxes = [], []
        for i, im in enumerate(images):
            a = np.asarray(im)
            if a.ndim != 2 or a.dtype != np.uint8 or a.size == 0:
                raise InputError(f"image {i} must be a non-empty 2-D uint8 array, got shape {a.shape} dtype {a.dtype}")
            x = cv2.resize(a.astype(np.float32), INPUT_SHAPE[::-1], interpolation=cv2.INTER_LINEAR)
            arrays.append((x - x.mean()) / max(float(x.std()), 1e-6) * 255.0)
            boxes.append(make_letterbox(a.shape, self.input_size))
        x = torch.from_numpy(np.stack(arrays)[:, None])  # (B, 1, 224, 288)
        return x.contiguous(memory_format=torch.channels_last), boxes

    # ---- forward -------------------------------------------------------------------------------
    def class_maps(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 14, H/16, W/16) class maps of a prepared (B, 1, H, W) input (H, W multiples of 16)."""
        return self.adaptation(self.features(image))

    def forward(
        self,
        image: torch.Tensor,
        intervention: Intervention | None = None,
        pixel_spacing_mm: float | torch.Tensor | None = None,
        long_side: float | torch.Tensor | None = None,
    ) -> PCBMOutput:
        """Our planes from SonoNet's classes (spacing and long side unused).

        Args:
            image: (B, 1, H, W) from :meth:`prepare` (224 × 288; any H, W divisible by 16 runs).

        Returns:
            plane_probs: sums of the classes' softmax probabilities per plane (0 for a plane with no
            class; its logit is -1e4); class_probs: the (B, 14) probabilities in ``CLASS_NAMES`` order;
            status "not_a_known_plane" for "other" or below ``min_confidence``, else
            "close_to_standard"; ``standard`` is always False: SonoNet checks no ISUOG criterion.
        """
        if intervention:
            self.family.require_concepts("an intervention")
        logits = self.class_maps(image).mean((2, 3))  # (B, 14)
        class_probs = logits.softmax(1)
        probs = class_probs @ self._to_planes  # (B, K)
        return PCBMOutput.without_concepts(probs.log().clamp_min(LOG_ZERO), probs, self.config.min_confidence,
                                           class_probs=class_probs)

    # ---- weights -------------------------------------------------------------------------------
    def load_pretrained(self) -> Path:
        """Load the authors' weights from :func:`find_weights`; returns the file read."""
        path = find_weights()
        load_npz(self, path)
        return path


def find_weights() -> Path:
    """``$PCBM_SONONET16_WEIGHTS`` if set, else ``../shared/weights/sononet16/SonoNet16.npz`` from the
    repository root, else from the working directory.

    Raises:
        InputError: no file there (the message names where it looked and the variable).
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        if not Path(env).is_file():
            raise InputError(f"SonoNet-16 weights not found: ${WEIGHTS_ENV}={env} is not a file")
        return Path(env)
    tried = list(dict.fromkeys((root / WEIGHTS_RELPATH).resolve() for root in (_REPO, Path.cwd())))
    for p in tried:
        if p.is_file():
            return p
    raise InputError(f"SonoNet-16 weights not found; looked for {' and '.join(str(p) for p in tried)}; "
                     f"set ${WEIGHTS_ENV} to SonoNet16.npz (from baumgach/SonoNet-weights)")


def load_npz(model: nn.Module, path: str | Path) -> None:
    """Copy the 75 arrays of ``path`` (W, beta, gamma, mean, inv_std per block) into ``model``: the
    whole SonoNet-16, or the 13 conv blocks of a :class:`SonoNetEncoder` (the first 65 arrays).

    Raises:
        InputError: the file is unreadable, or its arrays are not SonoNet-16's (count, names, shapes).
    """
    blocks = [m for m in model.modules() if isinstance(m, nn.Sequential) and len(m) and isinstance(m[0], nn.Conv2d)]
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read SonoNet-16 weights {path}: not an npz file ({e})") from None
    want = [f"arr_{i}" for i in range(5 * (len(WIDTHS) + len(ADAPTATION)))]
    if sorted(arrays) != sorted(want):
        raise InputError(f"{path} is not SonoNet-16's weights: {len(arrays)} arrays "
                         f"({', '.join(sorted(arrays)[:3])}{', …' if len(arrays) > 3 else ''}), "
                         f"expected {len(want)} named arr_0 … arr_{len(want) - 1}")
    checked = []
    for b, block in enumerate(blocks):
        conv, bn = block[0], block[1]
        arrs = [arrays[f"arr_{5 * b + j}"] for j in range(5)]  # W, beta, gamma, mean, inv_std
        for j, arr in enumerate(arrs):
            shape = tuple(conv.weight.shape if j == 0 else bn.weight.shape)
            if arr.shape != shape:
                raise InputError(f"{path} is not SonoNet-16's weights: arr_{5 * b + j} (block {b + 1}) has shape "
                                 f"{arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arrs[4])) or np.any(arrs[4] <= 0):
            raise InputError(f"{path} is not SonoNet-16's weights: block {b + 1} has a non-positive inv_std")
        checked.append((conv, bn, [torch.from_numpy(a.astype(np.float32)) for a in arrs]))
    with torch.no_grad():  # only once every array passed, so a bad file leaves the model as it was
        for conv, bn, (w, beta, gamma, mean, inv_std) in checked:
            conv.weight.copy_(w)
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(inv_std.double().pow(-2).sub(BN_EPS).float())  # Lasagne keeps 1/sqrt(var + eps)

register_family(ModelFamily(
    "sononet16", SonoNet16, has_concepts=False, trainable=False, encoder="features", plane_map=CLASS_TO_PLANE,
    description="SonoNet-16 (Baumgartner et al. 2017), pretrained on real scans: 14 classes -> our planes",
))


class SonoNetEncoder(nn.Module):
    """SonoNet-16's 13 conv blocks as a segmentation-models-pytorch encoder (``encoder="sononet16"``):
    features that have seen real ultrasound, for the segmenter and the concept-free baseline.

    Stages at strides 2, 4, 8 and 16 end after blocks 4, 7, 10 and 13 (32, 64, 128, 128 channels);
    blocks 1–2 (stride 1) are the stem. SonoNet pools only four times, so ``depth`` is at most 4.
    The input is standardised per image and scaled by 255 inside, as SonoNet was trained, whatever
    the model's ``input_norm``. Weights: ``encoder_weights_path="sononet16"`` loads the authors'
    (:func:`find_weights`); a ``.npz`` path loads that file; anything else is a torch state dict.

    Example:
        >>> import torch
        >>> enc = SonoNetEncoder(depth=4)
        >>> [tuple(f.shape[1:]) for f in enc(torch.rand(1, 1, 64, 64))]
        [(1, 64, 64), (32, 32, 32), (64, 16, 16), (128, 8, 8), (128, 4, 4)]
    """

    STAGE_ENDS = (2, 4, 7, 10, 13)  # 1-based last block of the stem and of each stage

    def __init__(self, depth: int = 4, output_stride: int = 32, **_: object) -> None:
        super().__init__()
        if not 1 <= depth <= 4:
            raise InputError(f"the sononet16 encoder has at most 4 stages (SonoNet pools four times); got depth {depth}")
        if output_stride != 32:
            raise InputError("the sononet16 encoder does not support dilation (output_stride must be 32)")
        self._depth, self._in_channels, self._output_stride = depth, 1, 32
        stages, c_in, start = [], 1, 0
        for k, end in enumerate(self.STAGE_ENDS):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if k else []
            for c_out in WIDTHS[start:end]:
                layers.append(_block(c_in, c_out, 3))
                c_in = c_out
            stages.append(nn.Sequential(*layers))
            start = end
        self.stages = nn.ModuleList(stages[: depth + 1])
        self._out_channels = [1] + [WIDTHS[e - 1] for e in self.STAGE_ENDS[1:]]

    @property
    def out_channels(self) -> list[int]:
        return self._out_channels[: self._depth + 1]

    @property
    def output_stride(self) -> int:
        return 2 ** self._depth

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        if in_channels != 1:
            raise InputError(f"the sononet16 encoder reads grey images (1 channel), not {in_channels}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        mean = x.mean((1, 2, 3), keepdim=True)
        std = x.std((1, 2, 3), keepdim=True).clamp_min(1e-6)
        h = (x - mean) / std * 255.0
        feats = [x]
        for k, stage in enumerate(self.stages):
            h = stage(h)
            if k:
                feats.append(h)
        return feats

    def load_weights(self, path: str | Path) -> Path:
        """Load ``"sononet16"`` (the authors' file, :func:`find_weights`) or a ``.npz`` of SonoNet-16's layout."""
        p = find_weights() if str(path) == "sononet16" else Path(path)
        load_npz(self, p)
        return p


def _register_smp_encoder() -> None:
    import segmentation_models_pytorch as smp

    smp.encoders.encoders.setdefault("sononet16", {"encoder": SonoNetEncoder, "pretrained_settings": {}, "params": {}})


_register_smp_encoder()
