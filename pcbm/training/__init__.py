"""Training: the Lightning module (losses, metrics, optimiser), data mixing, evaluation, train().

Imports Lightning; the models never do.
"""

from pcbm.training.config import TrainConfig
from pcbm.training.evaluate import evaluate
from pcbm.training.train import resume, train

__all__ = ["TrainConfig", "evaluate", "resume", "train"]
