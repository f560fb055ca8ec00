"""pcbm.explain."""
