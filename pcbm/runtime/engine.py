"""The runtime's engine: a model package's stage graphs in onnxruntime, the rest in numpy.

The path per frame mirrors the torch model's ``forward`` step for step: letterbox → ``segment.onnx``
→ (visual intervention) → ``properties.onnx`` → property values (sigmoid of the binary logits) →
(property intervention) → applicability (a property counts only when its family's anchor, e.g.
``head_visible``, is ≥ 0.5) → ``decision.onnx`` → softmax(logits / temperature) → the ontology
check (:func:`pcbm.concepts.assess.assess`, the function the torch model calls) → "unlike the
training data" (:mod:`pcbm.reliability`) → masks back at the original size, the head redrawn by
``head_refiner.onnx`` (:func:`pcbm.data.crops.refine_loop`) → measurements → a
:class:`~pcbm.prediction.Prediction`.

Thread counts are set explicitly from the CPUs this process may use (its affinity mask and any
cgroup CPU quota), never from the host's count, which onnxruntime would otherwise take.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES, VISUAL_CONCEPT_NAMES, get_property_concept
from pcbm.concepts.assess import assess
from pcbm.concepts.measure import biometry_structures
from pcbm.data.crops import crop, refine_loop, uncrop
from pcbm.data.preprocess import Letterbox, letterbox, unletterbox
from pcbm.errors import InputError
from pcbm.prediction import Prediction, make_prediction
from pcbm.reliability import REASON, Reliability, features_of, load_reliability, softmax

METADATA = "metadata.json"


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2/v1 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2: "max 100000" or "200000 100000"
        q, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if q != "max":
            quota = float(q) / float(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = float(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            period = float(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0:
                quota = q / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


@dataclass
class RuntimeIntervention:
    """Corrections before the later stages, as :class:`pcbm.models.Intervention` (numpy arrays).

    Attributes:
        visual: visual concept -> a float (the whole channel's probability; 0 erases it) or an (H, W)
            probability map at the model's input size (S, S).
        properties: property concept -> value (probability; mm for lengths, which needs a pixel spacing).
    """

    visual: dict[str, float | np.ndarray] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any) -> RuntimeIntervention | None:
        """None, a RuntimeIntervention, a torch-side Intervention-like object or a {"visual", "properties"} dict."""
        if value is None or isinstance(value, RuntimeIntervention):
            return value
        if isinstance(value, Mapping):
            return cls(dict(value.get("visual") or {}), dict(value.get("properties") or {}))
        return cls(dict(getattr(value, "visual", {}) or {}), dict(getattr(value, "properties", {}) or {}))


def _frame(image: Any, name: str) -> np.ndarray:
    """``image`` as an array, checked to be what the graphs take: a non-empty 2-D uint8 frame."""
    a = np.asarray(image)
    if a.ndim != 2 or a.dtype != np.uint8 or a.size == 0:
        raise InputError(f"image {name!r} must be a non-empty 2-D uint8 array, got shape {a.shape} dtype {a.dtype}")
    return a


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function as torch computes it, without exp overflow for large negative logits."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x << 0 gives exactly 0, as it should
        return 1.0 / (1.0 + np.exp(-x))



BACKENDS = ("onnxruntime", "openvino", "openvino-bf16")
BACKEND_ENV = "PCBM_RUNTIME_BACKEND"


class _OpenVINOGraph:
    """One graph compiled by OpenVINO for the CPU, run as an onnxruntime session is (``run(None, feeds)``)."""

    def __init__(self, path: Path, threads: int, bf16: bool):
        try:
            import openvino as ov
        except ImportError:
            raise InputError("backend 'openvino' needs OpenVINO (pip install openvino)") from None
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self._request = self._compiled.create_infer_request()

    def run(self, _names: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        res = self._request.infer(dict(feeds))
        return [np.array(res[o]) for o in self._compiled.outputs]


class Engine:
    """A model package, ready to predict (see the module docstring).

    Args:
        package: the folder ``pcbm export`` wrote.
        threads: intra-op threads (default: :func:`usable_cpus`).
        verify: check every file's sha256 against ``metadata.json`` first.
        spin: let onnxruntime's idle threads spin between runs. Off by default: on a 2-core box the
            numpy work between the stage graphs then runs on a free core (full path 96 ms instead
            of 124 ms on the default model, bench/bench_runtime.py).
        backend: ``onnxruntime`` (the default), ``openvino`` (the segmenter and the head refiner
            compiled by OpenVINO, float32) or ``openvino-bf16`` (those two in bfloat16 where the CPU
            computes it natively: about twice as fast on AVX512-BF16 CPUs, outside the export's parity
            tolerance — bench/RESULTS.md, "Export and runtime"). The property and decision graphs
            always run in onnxruntime. Default: ``$PCBM_RUNTIME_BACKEND``, else onnxruntime.

    Raises:
        InputError: not a package, a file missing or altered, an unknown backend, or a graph the
            backend cannot load.
    """

    def __init__(self, package: str | os.PathLike[str], threads: int | None = None, verify: bool = True,
                 spin: bool = False, backend: str | None = None):
        import onnxruntime as ort

        from pcbm.errors import look_up

        self.backend = look_up(backend or os.environ.get(BACKEND_ENV) or "onnxruntime", BACKENDS, "runtime backend")
        self.package = Path(package)
        meta_path = self.package / METADATA
        if not meta_path.is_file():
            raise InputError(f"{self.package} is not a pcbm model package (no {METADATA}; make one with pcbm export)")
        try:
            self.metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {meta_path}: {e}") from None
        onto = self.metadata.get("ontology", {})
        if onto.get("planes") != list(PLANE_NAMES) or [c["name"] for c in onto.get("property_concepts", [])] != list(
                PROPERTY_CONCEPT_NAMES) or onto.get("visual_concepts") != list(VISUAL_CONCEPT_NAMES):
            raise InputError(f"{self.package} was exported with another ontology than this pcbm's "
                             "(concept or plane names differ): export it again with this version")
        if verify:
            self.verify()
        self.threads = int(threads) if threads else usable_cpus()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")

        def session(name: str, convolutional: bool = False) -> Any:
            try:
                if convolutional and self.backend != "onnxruntime":
                    return _OpenVINOGraph(self.package / name, self.threads, bf16=self.backend == "openvino-bf16")
                return ort.InferenceSession(str(self.package / name), opts, providers=["CPUExecutionProvider"])
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - onnxruntime and OpenVINO raise their own exception types
                raise InputError(f"cannot load {self.package / name}: {str(e).splitlines()[0][:200]}") from None

        graphs = self.metadata["graphs"]
        self._segment = session(graphs["segment"], convolutional=True)
        self._properties, self._decision = session(graphs["properties"]), session(graphs["decision"])
        ref = self.metadata.get("head_refiner")
        self._refiner = session(ref["file"], convolutional=True) if ref else None
        self.refiner_config = ref
        self.flip_tta = bool(ref and ref.get("flip_tta", True))
        rel = self.metadata.get("reliability")
        self.reliability: Reliability | None = load_reliability(self.package / rel) if rel else None
        self.size = int(self.metadata["input"]["size"])
        self.min_confidence = float(self.metadata["thresholds"]["min_confidence"])
        props = onto["property_concepts"]
        self._cont = np.array([i for i, c in enumerate(props) if c["kind"] == "continuous"])
        self._bin = np.array([i for i, c in enumerate(props) if c["kind"] != "continuous"])
        anchors = [c["anchor"] for c in props]
        self._anchor_mask = np.array([a is not None for a in anchors])
        self._anchor_idx = np.array([PROPERTY_CONCEPT_NAMES.index(a) if a is not None else 0 for a in anchors])

    # ---- identity -------------------------------------------------------------------------------
    def verify(self) -> None:
        """Every file listed in ``metadata.json`` is there with its sha256."""
        for name, want in (self.metadata.get("files") or {}).items():
            p = self.package / name
            if not p.is_file():
                raise InputError(f"model package {self.package}: {name} is missing")
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != want:
                raise InputError(f"model package {self.package}: {name} was altered (sha256 differs from metadata.json)")

    @property
    def identity(self) -> dict[str, Any]:
        """Name, pcbm version and a digest of the package's files (what a served record names)."""
        files = self.metadata.get("files") or {}
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        return {"name": self.metadata["model"]["name"], "version": self.metadata.get("pcbm_version"),
                "sha256": self.metadata.get("model", {}).get("weights_sha256") or digest, "source": str(self.package)}

    @property
    def temperature(self) -> float:
        return 1.0 if self.reliability is None else float(self.reliability.temperature)

    # ---- prediction -----------------------------------------------------------------------------
    def predict(self, image: np.ndarray, pixel_spacing_mm: float | None = None, intervention: Any = None,
                name: str = "image", keep_masks: bool = False, refine_head: bool | str = True) -> Prediction:
        """The :class:`~pcbm.prediction.Prediction` of one uint8 (H, W) frame (see :meth:`predict_batch`)."""
        return self.predict_batch([image], [pixel_spacing_mm], intervention, [name], keep_masks, refine_head)[0]

    def predict_batch(self, images: Sequence[np.ndarray], pixel_spacing_mm: Sequence[float | None] | None = None,
                      intervention: Any = None, names: Sequence[str] | None = None,
                      keep_masks: bool = False, refine_head: bool | str = True) -> list[Prediction]:
        """Predictions of several frames in one pass through each graph.

        ``refine_head``: redraw the head with the package's head refiner before measuring — always
        (True), never (False), or only on frames whose status is standard (``"standard"``: what
        ``pcbm live`` does, since a head measurement is shown only there; the refiner costs more
        than the rest of the path)."""
        if refine_head not in (True, False, "standard"):
            raise InputError(f"refine_head must be True, False or 'standard', not {refine_head!r}")
        if not images:
            return []
        spacing = list(pixel_spacing_mm) if pixel_spacing_mm is not None else [None] * len(images)
        if len(spacing) != len(images):
            raise InputError(f"{len(images)} images but {len(spacing)} pixel spacings")
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
        arrays, boxes = [], []
        for i, im in enumerate(images):
            x, box = letterbox(_frame(im, names[i]), self.size)
            arrays.append(x)
            boxes.append(box)
        x = np.stack(arrays)[:, None].astype(np.float32)  # (B, 1, S, S)
        mask_logits, pooled = self._segment.run(None, {"image": x})
        masks = _sigmoid(mask_logits.astype(np.float32))
        iv = RuntimeIntervention.coerce(intervention)
        if iv is not None and iv.visual:
            masks = self._apply_visual(masks, iv.visual)
        prop_logits = self._properties.run(None, {"masks": masks.astype(np.float32), "image": x})[0]
        values = prop_logits.astype(np.float64).copy()
        values[:, self._bin] = _sigmoid(values[:, self._bin])
        long_side = np.array([float(b.long_side) for b in boxes])
        sp = np.array([math.nan if s is None else float(s) for s in spacing])
        scale = sp * long_side  # mm per unit of normalised length
        if iv is not None and iv.properties:
            values = self._apply_properties(values, iv.properties, scale)
        applicable = (values[:, self._anchor_idx] >= 0.5) | ~self._anchor_mask
        concept_inputs = values.copy()
        cont = concept_inputs[:, self._cont]
        concept_inputs[:, self._cont] = np.where(applicable[:, self._cont], np.nan_to_num(cont), 0.0)
        plane_logits = self._decision.run(None, {"values": values.astype(np.float32)})[0].astype(np.float64)
        probs = softmax(plane_logits / self.temperature)
        standard, status, missing = assess(probs, values, self.min_confidence)
        props = values.copy()
        props[:, self._cont] = np.where(applicable[:, self._cont], values[:, self._cont] * scale[:, None], np.nan)
        reasons: list[str | None] = [None] * len(images)
        rel_fields: list[dict[str, Any] | None] = [None] * len(images)
        if self.reliability is not None and self.reliability.gaussian is not None:
            feats = features_of(concept_inputs, masks, probs, pooled, self.reliability.groups)
            scores = self.reliability.score_features(feats)
            for j, s in enumerate(scores.tolist()):
                flagged = s > self.reliability.threshold
                if flagged:
                    status[j], missing[j], reasons[j] = "not_a_known_plane", [], REASON
                    standard[j] = False
                rel_fields[j] = {"ood_score": round(s, 4), "threshold": round(self.reliability.threshold, 4),
                                 "unlike_training_data": bool(flagged), "temperature": round(self.temperature, 4)}
        out = []
        for j, (im, box) in enumerate(zip(images, boxes, strict=True)):
            refine = refine_head is True or (refine_head == "standard" and bool(standard[j]))
            if keep_masks:
                full: Any = unletterbox(masks[j], box)  # (V, H, W)
                if refine:
                    full = self._refine_head(np.asarray(im), full)
            else:  # only what the predicted plane's biometry reads goes back to the original size
                plane = PLANE_NAMES[int(probs[j].argmax())]
                need = [VISUAL_CONCEPT_NAMES.index(n) for n in biometry_structures(plane)]
                full = {VISUAL_CONCEPT_NAMES[c]: unletterbox(masks[j, c:c + 1], box)[0] for c in need}
                if "head" in full and refine:
                    full["head"] = self._refine_map(np.asarray(im), full["head"])
            out.append(make_prediction(names[j], probs[j], props[j], applicable[j], status[j], bool(standard[j]),
                                       missing[j], full, spacing[j], reasons[j], rel_fields[j], keep_masks,
                                       self.identity))
        return out

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The (V, S, S) mask probabilities of one uint8 (H, W) frame at the model's input size and its
        letterbox (what a box edit in image pixels is mapped through)."""
        x, box = letterbox(_frame(image, "image"), self.size)
        logits, _ = self._segment.run(None, {"image": x[None, None].astype(np.float32)})
        return _sigmoid(logits[0].astype(np.float32)), box

    # ---- pieces ---------------------------------------------------------------------------------
    def _apply_visual(self, masks: np.ndarray, visual: Mapping[str, Any]) -> np.ndarray:
        import cv2

        masks = masks.copy()
        for name, value in visual.items():
            if name not in VISUAL_CONCEPT_NAMES:
                from pcbm.concepts import get_visual_concept

                get_visual_concept(name)  # an unknown concept: the error names the closest ones
            c = VISUAL_CONCEPT_NAMES.index(name)
            if np.ndim(value) == 0:
                masks[:, c] = float(value)
            else:
                v = np.asarray(value, np.float32)
                if v.shape != masks.shape[-2:]:
                    v = cv2.resize(v, masks.shape[-2:][::-1], interpolation=cv2.INTER_LINEAR)
                masks[:, c] = v
        return masks

    @staticmethod
    def _apply_properties(values: np.ndarray, props: Mapping[str, float], scale: np.ndarray) -> np.ndarray:
        values = values.copy()
        for name, value in props.items():
            concept = get_property_concept(name)
            if concept.binary:
                values[:, concept.index] = float(value)
            else:
                if np.isnan(scale).any():
                    raise InputError(f"intervening on {name} (mm) needs pixel_spacing_mm")
                values[:, concept.index] = float(value) / scale
        return values

    def _refine_head(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The masks with the head redrawn by the package's head refiner (as the torch path's
        :func:`pcbm.models.inference.biometry_masks`); unchanged without a refiner or a head."""
        k = VISUAL_CONCEPT_NAMES.index("head")
        head = self._refine_map(image, masks[k])
        if head is masks[k]:
            return masks
        out = masks.copy()
        out[k] = head
        return out

    def _refine_map(self, image: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The head probability (H, W) redrawn by the refiner; ``head`` itself without one or a head."""
        if self._refiner is None or not (head > 0.5).any():
            return head
        size = int(self.refiner_config["size"])

        def prob_of(box: Any) -> np.ndarray:
            x = crop(image, box, size)[None, None].astype(np.float32)
            if self.flip_tta:
                logits = self._refiner.run(None, {"crop": np.concatenate([x, x[..., ::-1].copy()])})[0]
                p = (_sigmoid(logits[0, 0]) + _sigmoid(logits[1, 0])[:, ::-1]) / 2
            else:
                p = _sigmoid(self._refiner.run(None, {"crop": x})[0][0, 0])
            return uncrop(p.astype(np.float32), box, image.shape[:2])

        prob = refine_loop(image, prob_of, head > 0.5, None, float(self.refiner_config["margin"]))
        return head if prob is None else prob
