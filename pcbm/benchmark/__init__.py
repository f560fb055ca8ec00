"""The backbone study: which encoder, frozen or fine-tuned, in domain and out of it (``pcbm bench backbones``).

Parts, each a small module:

* :mod:`pcbm.benchmark.zoo` — the backbone registry (timm CNNs and ViTs, DINOv3, USFM, FetalCLIP,
  UltraSAM, SonoNet-16, MOFO through a user-installed plug-in), each with its authors' input size and
  normalisation, loadable from local checkpoint files only;
* :mod:`pcbm.benchmark.splits` — patient-level stratified k-fold;
* :mod:`pcbm.benchmark.stats` — metrics, patient-level bootstrap, exact McNemar, Friedman + Nemenyi;
* :mod:`pcbm.benchmark.protocols` — linear probe, fine-tune (Lightning), PCBM with the same encoder;
* :mod:`pcbm.benchmark.cost` — parameters, GFLOPs, images/s, an energy estimate;
* :mod:`pcbm.benchmark.runner` — folds, resumable per fold; :mod:`pcbm.benchmark.report` — table and plots.

Importing ``pcbm.benchmark`` imports no torch; the parts that need it import it themselves.
"""
