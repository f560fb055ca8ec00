"""Refit sweep, step 1: a model's predicted concepts (collect_concepts) on the real-scans stage's sources and
on the evaluation sets, saved once.

    .venv/bin/python bench/refit_sweep_collect.py RUN OUT.npz      # ~5 min on 2 cores
"""
import sys

import numpy as np
import torch

from pcbm.data import open_dataset
from pcbm.models import load_model
from pcbm.training.refit import collect_concepts

torch.set_num_threads(2)
model, _ = load_model(sys.argv[1])
model.eval()
S = "../shared/data"
specs = {
 "ph_mix": ("phantom:n=40000,seed=21,style=mix?split=train", 500),
 "ph_rand": ("phantom:n=20000,seed=22,style=random?split=train", 300),
 "hc18": (f"hc18:{S}/hc18?split=train", 300),
 "alz": (f"alzubaidi:{S}/alzubaidi_brain?split=train&val_fraction=0.3", 100),
 "fpdb": (f"fetal_planes_db:{S}/fpdb_subset?split=train&val_fraction=0.3", 200),
 "afr": (f"african:{S}/african?split=train&val_fraction=0.3", 300),
 "E_ph": ("phantom:n=400,seed=123,style=mix", 400),
 "E_held": ("phantom:n=400,seed=123,style=heldout", 400),
 "E_fpdb": (f"fetal_planes_db:{S}/fpdb_subset?split=val&val_fraction=0.3", 100),
 "E_afr": (f"african:{S}/african?split=val&val_fraction=0.3", 200),
}
out = {}
for k, (spec, n) in specs.items():
    ds = open_dataset(spec.replace("style=mix?split=train", "style=mix,split=train").replace("style=random?split=train", "style=random,split=train"))
    x, y = collect_concepts(model, ds, n)
    out[k + "_x"], out[k + "_y"] = x.numpy(), y.numpy()
    print(k, x.shape, flush=True)
np.savez(sys.argv[2], **out)
