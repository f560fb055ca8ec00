"""pcbm.live."""
