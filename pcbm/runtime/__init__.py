"""The torch-free runtime: a model package (``pcbm export``) run with numpy, onnxruntime and OpenCV only.

    >>> from pcbm.runtime import Engine                     # doctest: +SKIP
    >>> engine = Engine("pkg/")                             # doctest: +SKIP
    >>> engine.predict(image, pixel_spacing_mm=0.15).to_dict()  # doctest: +SKIP

Importing it never imports torch (a test checks this in a fresh interpreter), so a scanner-side box
needs only ``numpy``, ``opencv-python-headless`` and ``onnxruntime``.
"""

from pcbm.pipeline import Intervention, Pipeline
from pcbm.runtime.engine import Engine, OnnxStages, RuntimeIntervention, usable_cpus

__all__ = ["Engine", "Intervention", "OnnxStages", "Pipeline", "RuntimeIntervention", "usable_cpus"]
