"""The runtime's engine: a model package's stage graphs in onnxruntime (:class:`OnnxStages`) under the
one prediction pipeline (:class:`pcbm.pipeline.Pipeline`, numpy), which the torch path shares.

Thread counts are set explicitly from the CPUs this process may use (its affinity mask and any
cgroup CPU quota), never from the host's count, which onnxruntime would otherwise take.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pcbm.errors import InputError
from pcbm.pipeline import Intervention, Pipeline, RefinerSpec
from pcbm.reliability import Reliability, load_reliability
from pcbm.runtime.verify import open_verified, package_digest

#: the runtime's name for the one intervention type (:class:`pcbm.pipeline.Intervention`)
RuntimeIntervention = Intervention


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


BACKENDS = ("onnxruntime", "openvino", "openvino-bf16")
BACKEND_ENV = "PCBM_RUNTIME_BACKEND"


class _OpenVINOGraph:
    """One graph compiled by OpenVINO for the CPU, run as an onnxruntime session is (``run(None, feeds)``)."""

    def __init__(self, path: Path, threads: int, bf16: bool):
        from pcbm.errors import optional_import

        ov = optional_import("openvino", "openvino", "runtime backend 'openvino'")
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self._request = self._compiled.create_infer_request()

    def run(self, _names: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        res = self._request.infer(dict(feeds))
        return [np.array(res[o]) for o in self._compiled.outputs]


class OnnxStages:
    """The network steps of a model package (:class:`pcbm.pipeline.Stages`) in onnxruntime (the segmenter
    and the head refiner optionally in OpenVINO). See :class:`Engine` for the arguments."""

    def __init__(self, package: str | os.PathLike[str], threads: int | None = None, verify: bool = True,
                 spin: bool = False, backend: str | None = None):
        from pcbm.errors import look_up, optional_import

        ort = optional_import("onnxruntime", "export", "the runtime")

        self.backend = look_up(backend or os.environ.get(BACKEND_ENV) or "onnxruntime", BACKENDS, "runtime backend")
        self.package = Path(package)
        # every file against the manifest (sha256 unless verify=False), the signature when a key is set,
        # every metadata value checked: nothing is loaded from a package that fails
        self.metadata = open_verified(self.package, hashes=verify)
        self.digest = package_digest(self.package)
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
        rel = self.metadata.get("reliability")
        self.reliability: Reliability | None = load_reliability(self.package / rel) if rel else None
        self.size = int(self.metadata["input"]["size"])
        self.min_confidence = float(self.metadata["thresholds"]["min_confidence"])

    @property
    def refiner(self) -> RefinerSpec | None:
        ref = self.refiner_config
        if self._refiner is None or not ref:
            return None
        return RefinerSpec(int(ref["size"]), float(ref["margin"]), bool(ref.get("flip_tta", True)))

    def verify(self) -> None:
        """Every file against the package's manifest, the signature when a key is set, every metadata value
        (:func:`pcbm.runtime.verify.verify_package`); one InputError listing what is wrong."""
        open_verified(self.package)

    @property
    def identity(self) -> dict[str, Any]:
        """Name, pcbm version, the weights' sha256 (the run's ``model.pt``, as the torch path names it) and
        ``package_sha256``, the digest of the verified manifest (every byte the runtime loads)."""
        return {"name": self.metadata["model"]["name"], "version": self.metadata.get("pcbm_version"),
                "sha256": self.metadata["model"].get("weights_sha256") or self.digest,
                "package_sha256": self.digest, "source": str(self.package)}

    @property
    def temperature(self) -> float:
        return 1.0 if self.reliability is None else float(self.reliability.temperature)

    # ---- the stages -------------------------------------------------------------------------------
    def segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, pooled = self._segment.run(None, {"image": image})
        return logits, pooled

    def properties(self, masks: np.ndarray, image: np.ndarray) -> np.ndarray:
        return self._properties.run(None, {"masks": masks, "image": image})[0]

    def decide(self, values: np.ndarray) -> np.ndarray:
        return self._decision.run(None, {"values": values})[0]

    def refine(self, crops: np.ndarray) -> np.ndarray:
        return self._refiner.run(None, {"crop": crops})[0]


class Engine(Pipeline):
    """A model package, ready to predict: :class:`pcbm.pipeline.Pipeline` over :class:`OnnxStages`.

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
        super().__init__(OnnxStages(package, threads, verify, spin, backend))

    def __getattr__(self, name: str) -> Any:  # package, metadata, threads, backend, verify, ...: the stages'
        if name == "stages":
            raise AttributeError(name)
        return getattr(self.stages, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "stages" and "stages" in self.__dict__ and hasattr(self.stages, name):
            setattr(self.stages, name, value)  # e.g. a benchmark swapping a graph session
        else:
            super().__setattr__(name, value)
