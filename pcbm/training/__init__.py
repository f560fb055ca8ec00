"""pcbm.training."""
