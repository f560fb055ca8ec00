"""``pcbm export RUN|default --out PKG``: a model package the torch-free runtime (:mod:`pcbm.runtime`) runs.

A package is a folder:

* ``segment.onnx`` — image (B, 1, S, S) in [0, 1] → mask logits (B, V, S, S) and the encoder's
  pooled features (B, C) (what the out-of-distribution score reads);
* ``properties.onnx`` — mask probabilities (B, V, S, S) and the image → property logits (B, P);
* ``decision.onnx`` — property values (B, P) → plane logits (B, K), before the temperature;
* ``head_refiner.onnx`` — when the model has a head refiner: a crop (B, 1, R, R) → head logits;
* ``metadata.json`` — pcbm and ontology versions, concept and plane names in order, input size and
  normalisation, thresholds, the temperature, training data, metrics, and the sha256 of every file;
* ``MODEL_CARD.md``, ``reliability.json`` (when the run has them) and ``reference.json`` — the
  concepts' statistics on reference data, for drift monitoring.

The stages are separate graphs so the runtime can intervene between them (set property concepts,
edit or erase visual concepts) exactly as the torch model does. Graphs come from the dynamo
exporter (``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``); TorchScript is
deprecated in current torch. The package is built in ``PKG.partial/`` and renamed onto ``PKG`` when
whole; an existing ``PKG`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pcbm._io import sha256_file
from pcbm.errors import InputError
from pcbm.layout import DECISION, HEAD_REFINER, METADATA, PROPERTIES, REFERENCE, SEGMENT

FORMAT = 1
OPSET = 18
DEFAULT_REFERENCE = ("phantom:n=200,seed=7,style=mix",)


class _Segment(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.segment(image)


class _Properties(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, masks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model.property_logits(masks, image)


class _Decision(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.model.decide(values)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], names: Sequence[str], outputs: Sequence[str],
            path: Path) -> None:
    """One graph with a dynamic batch dimension, checked by onnx."""
    from pcbm.errors import optional_import

    onnx = optional_import("onnx", "export", "pcbm export")
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = tuple({0: batch} for _ in names)  # by position: the arg names need not match the inputs
    try:
        prog = torch.onnx.export(module, args, dynamo=True, input_names=list(names), output_names=list(outputs),
                                 dynamic_shapes=shapes, opset_version=OPSET, verbose=False)
    except ImportError as e:
        raise InputError(f"pcbm export needs the export extra (pip install 'pcbm[export]'): {e}") from None
    prog.save(str(path))
    onnx.checker.check_model(str(path))


def _reference_statistics(model: nn.Module, specs: Sequence[str], limit: int) -> dict[str, Any]:
    """Per property concept (binary: probability; continuous: normalised length where applicable)
    and for the plane mix: what drift monitoring compares a live window against."""
    from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPT_NAMES
    from pcbm.data import open_dataset
    from pcbm.models.inference import run_model

    values, planes, n_per = [], [], {}
    for spec in specs:
        ds = open_dataset(spec)
        n = min(limit, len(ds))
        n_per[spec] = n
        for start in range(0, n, 8):
            samples = [ds[i] for i in range(start, min(n, start + 8))]
            out, _ = run_model(model, [s.image for s in samples])
            x = out.concept_inputs.float().cpu().numpy().copy()
            x[~out.applicable.cpu().numpy()] = np.nan
            values.append(x)
            planes += [int(k) for k in out.plane_index.tolist()]
    v = np.concatenate(values)
    edges = np.linspace(0, 1, 11)
    concepts = {}
    for i, name in enumerate(PROPERTY_CONCEPT_NAMES):
        col = v[:, i][np.isfinite(v[:, i])]
        entry: dict[str, Any] = {"n": int(len(col)), "applicable_share": round(float(len(col) / len(v)), 4)}
        if len(col):
            qs = np.quantile(col, np.linspace(0, 1, 11))
            entry.update({"mean": float(col.mean()), "std": float(col.std()), "deciles": [float(q) for q in qs]})
            if float(col.min()) >= 0 and float(col.max()) <= 1:
                entry["histogram"] = {"edges": edges.tolist(), "counts": np.histogram(col, edges)[0].tolist()}
        concepts[name] = entry
    mix = np.bincount(np.asarray(planes), minlength=len(PLANE_NAMES)) / max(len(planes), 1)
    return {"data": n_per, "n": int(len(v)), "concepts": concepts,
            "plane_mix": {p: round(float(m), 4) for p, m in zip(PLANE_NAMES, mix, strict=True)},
            "values": "binary concepts: probability; lengths: fraction of the image's long side (as the decision reads them)"}


def export_package(ref: str, out: str | Path, overwrite: bool = False, reference: Sequence[str] = DEFAULT_REFERENCE,
                   reference_limit: int = 200, progress: Callable[[str], None] | None = None) -> Path:
    """Export the model ``ref`` (a run directory or ``default``) as a package in ``out`` (see the module docstring).

    Raises:
        InputError: a model family without concepts, an existing ``out`` without ``overwrite``, a
            missing export extra.
    """
    from pcbm.models import load_model

    say = progress or (lambda _msg: None)
    out = Path(out)
    occupied = any(out.iterdir()) if out.is_dir() else out.exists()  # an empty folder is free
    if occupied and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it (only once the new package is whole)")
    from pcbm.data import open_dataset

    for spec in reference:  # a bad --reference fails now, not after minutes of export
        open_dataset(spec)
    model, info = load_model(ref)
    if not model.family.has_concepts:
        raise InputError(f"pcbm export writes PCBM packages; model family {model.family.name!r} has no concepts")
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    out.parent.mkdir(parents=True, exist_ok=True)
    # built in a fresh hidden folder beside OUT and renamed onto it when whole: nothing that is there
    # already (OUT.partial, OUT.old, ...) is touched; a failed export leaves nothing behind
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the package the permissions mkdir would
    try:
        _write_package(model, info, ref, tmp, reference, reference_limit, say)
        if out.exists():  # --overwrite: the old package moves aside only once the new one is whole
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".replaced", dir=out.parent))
            os.replace(out, old / "pkg")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_package(model: Any, info: dict[str, Any], ref: str, tmp: Path, reference: Sequence[str],
                   reference_limit: int, say: Callable[[str], None]) -> None:
    """Every file of the package into ``tmp``: the graphs, reference statistics, metadata, manifest."""
    from pcbm import __version__
    from pcbm.concepts import PLANE_NAMES, PROPERTY_CONCEPTS, VISUAL_CONCEPT_NAMES, anchor_of
    from pcbm.concepts.ontology import CONTINUOUS_PROPERTIES
    from pcbm.reliability import FILE as RELIABILITY_FILE
    from pcbm.runtime.verify import write_manifest

    cfg = model.config
    s = cfg.input_size
    image = torch.rand(2, 1, s, s)
    with torch.no_grad():
        logits, _ = model.segment(image)
        masks = logits.sigmoid()
        values = model.property_values(model.property_logits(masks, image))
    say(f"exporting {SEGMENT}")
    _export(_Segment(model), (image,), ["image"], ["mask_logits", "pooled"], tmp / SEGMENT)
    say(f"exporting {PROPERTIES}")
    _export(_Properties(model), (masks, image), ["masks", "image"], ["property_logits"], tmp / PROPERTIES)
    say(f"exporting {DECISION}")
    _export(_Decision(model), (values,), ["values"], ["plane_logits"], tmp / DECISION)
    refiner = model.head_refiner
    refiner_meta = None
    if refiner is not None:
        say(f"exporting {HEAD_REFINER}")
        r = refiner.config
        _export(refiner.float().eval(), (torch.rand(2, 1, r.size, r.size),), ["crop"], ["logits"],
                tmp / HEAD_REFINER)
        refiner_meta = {"file": HEAD_REFINER, "size": r.size, "margin": r.margin, "flip_tta": bool(refiner.flip_tta),
                        "trained_on": (info.get("head_refiner") or {}).get("trained_on")}
    run_dir = Path(info["run_dir"]) if info.get("run_dir") else None
    for name in ("MODEL_CARD.md", RELIABILITY_FILE):
        if run_dir is not None and (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp / name)
    say("reference statistics")
    (tmp / REFERENCE).write_text(json.dumps(_reference_statistics(model, reference, reference_limit), indent=1) + "\n")
    conf = info.get("config") or {}
    train = conf.get("train") if isinstance(conf, dict) else None
    meta = {
        "format": FORMAT,
        "pcbm_version": __version__,
        "ontology": {
            "visual_concepts": list(VISUAL_CONCEPT_NAMES),
            "property_concepts": [{"name": c.name, "kind": "continuous" if c.name in CONTINUOUS_PROPERTIES else "binary",
                                   "anchor": anchor_of(c.name)} for c in PROPERTY_CONCEPTS],
            "planes": list(PLANE_NAMES),
        },
        "model": {"name": cfg.name, "config": cfg.to_dict(), "source": str(ref), "run_dir": str(run_dir) if run_dir else None,
                  "weights_sha256": model.identity.get("sha256")},
        "input": {"size": s, "letterbox": "long side scaled to size, centred, black padding", "scale": "uint8 / 255",
                  "normalisation": cfg.input_norm + " (inside segment.onnx)", "channels": 1},
        "thresholds": {"min_confidence": cfg.min_confidence, "binary": 0.5, "applicable_anchor": 0.5},
        "graphs": {"segment": SEGMENT, "properties": PROPERTIES, "decision": DECISION},
        "head_refiner": refiner_meta,
        "reliability": RELIABILITY_FILE if (tmp / RELIABILITY_FILE).exists() else None,
        "training_data": train.get("data") if isinstance(train, dict) else None,
        "metrics": info.get("metrics"),
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "opset": OPSET,
    }
    meta["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    (tmp / METADATA).write_text(json.dumps(meta, indent=1, default=str) + "\n")
    write_manifest(tmp)  # every file, metadata.json included (signed when $PCBM_PACKAGE_KEY is set)
