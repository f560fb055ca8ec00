"""CLI command groups, one module per area, each with ``register(app)``."""
