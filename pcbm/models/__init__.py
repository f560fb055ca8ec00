"""PCBM models: segmenter, property head, decision layer, the composite, interventions.

Importing this package imports torch (``pcbm``, ``pcbm.concepts`` and ``pcbm.data`` do not).

Example:
    >>> from pcbm.models import list_model_configs
    >>> "small" in list_model_configs() and "baseline" in list_model_configs()
    True
    >>> from pcbm.models import build_model
    >>> build_model("tiny_baseline").family.has_concepts
    False
"""

from pcbm.models.config import ModelConfig, get_model_config, list_model_configs, register_model_config
from pcbm.models.decision import LinearDecision, MLPDecision, assess
from pcbm.models.families import FamilyModel, ModelFamily, get_family, list_families, register_family
from pcbm.models.inference import predict, predict_images, run_model, to_input
from pcbm.models.io import DEFAULT_DIR, load_model, save_model
from pcbm.models.output import Intervention, PCBMOutput
from pcbm.models.pcbm import PCBM, BaselineClassifier, build_model
from pcbm.models.property_head import PropertyHead
from pcbm.models.sononet import SonoNet16

__all__ = [
    "DEFAULT_DIR",
    "PCBM",
    "BaselineClassifier",
    "FamilyModel",
    "Intervention",
    "LinearDecision",
    "MLPDecision",
    "ModelConfig",
    "ModelFamily",
    "PCBMOutput",
    "PropertyHead",
    "SonoNet16",
    "assess",
    "build_model",
    "get_family",
    "get_model_config",
    "list_families",
    "list_model_configs",
    "load_model",
    "predict",
    "predict_images",
    "register_family",
    "register_model_config",
    "run_model",
    "save_model",
    "to_input",
]
