"""Training: the Lightning module (losses, metrics, optimiser), data mixing, evaluation, train().

Imports Lightning; the models never do.
"""

from pcbm.training.evaluate import evaluate
from pcbm.training.train import TrainConfig, train

__all__ = ["TrainConfig", "evaluate", "train"]
