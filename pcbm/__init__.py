"""pcbm: explainable fetal ultrasound standard-plane detection with progressive concept bottleneck models.

Importing pcbm is light: no torch, captum, fastapi or onnx until a part that needs them is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
