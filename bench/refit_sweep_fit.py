"""Refit sweep, step 2: decisions fitted full-batch on saved concepts under source weightings (linear and
MLP), scored on phantom (plane macro-F1) and held-out real sets (group macro-F1, top group).

    .venv/bin/python bench/refit_sweep_fit.py OUT.npz
"""
import sys

import numpy as np
import torch
from sklearn.metrics import f1_score

from pcbm.concepts import PLANES
from pcbm.training.refit import fit_decision

d = np.load(sys.argv[1])
GROUPS = ["head","abdomen","femur","thorax","cervix","other"]
g_of = np.array([GROUPS.index(p.group) for p in PLANES])
def groups_of_allowed(a):  # allowed (N,K) -> group index
    return np.array([g_of[np.flatnonzero(r)[0]] for r in a])
def fit(srcs, ws, hidden=0, steps=500, seed=0):
    torch.manual_seed(seed)
    x = torch.tensor(np.concatenate([d[s+"_x"] for s in srcs]), dtype=torch.float32)
    y = torch.tensor(np.concatenate([d[s+"_y"] for s in srcs]))
    w = torch.cat([torch.full((len(d[s+"_y"]),), float(wt)) for s, wt in zip(srcs, ws, strict=True)])
    m = torch.nn.Linear(29, 8) if not hidden else torch.nn.Sequential(torch.nn.Linear(29, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 8))
    fit_decision(m, x, y, w, steps, lr=0.05 if not hidden else 0.01)
    return m
def ev(m):
    r = {}
    with torch.no_grad():
        for k in ("E_ph", "E_held"):
            p = m(torch.tensor(d[k+"_x"])).argmax(1).numpy()
            t = d[k+"_y"].argmax(1)
            r[k] = f1_score(t, p, average="macro")
        allp, allt = [], []
        for k in ("E_fpdb", "E_afr"):
            p = g_of[m(torch.tensor(d[k+"_x"])).argmax(1).numpy()]
            t = groups_of_allowed(d[k+"_y"])
            r[k] = f1_score(t, p, average="macro", labels=sorted(set(t)))
            allp += list(p)
            allt += list(t)
        r["E_real"] = f1_score(allt, allp, average="macro", labels=sorted(set(allt)))
    return " ".join(f"{k[2:]} {v:.3f}" for k, v in r.items())
srcs = ["ph_mix","ph_rand","hc18","alz","fpdb","afr"]
for ws in [(1,1,0.1,0.3,3,3),(1,1,0.1,0.3,1,1),(2,1,0.1,0.3,1,1),(1,1,0.1,0.3,6,6),(1,1,0.02,0.1,3,3),(1,1,0,0,3,3)]:
    print("lin", ws, ev(fit(srcs, ws)), flush=True)
for h in (32, 64):
    for ws in [(1,1,0.1,0.3,3,3),(1,1,0.1,0.3,1,1)]:
        print("mlp", h, ws, ev(fit(srcs, ws, hidden=h, steps=800)), flush=True)
print("lin phantom-only", ev(fit(srcs, (1,1,0,0,0,0))))
