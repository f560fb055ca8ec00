"""``pcbm serve``: the REST service on the torch-free runtime (FastAPI app factory, bearer auth,
upload limits, Prometheus metrics, concept drift, energy per inference).

``from pcbm.serve.app import create_app`` imports FastAPI; importing ``pcbm.serve`` alone does not.
With a model package nothing here imports torch (a test checks it in a fresh interpreter).
"""
