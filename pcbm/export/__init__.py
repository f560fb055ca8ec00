"""pcbm.export."""
