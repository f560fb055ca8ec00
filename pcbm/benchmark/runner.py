"""Runs the study fold by fold; each fold's predictions are one JSON file written atomically, so a
rerun (after Ctrl-C, a crash or with more backbones) does only what is missing.

Layout of ``OUT``: ``config.json``, ``splits.json`` (each fold's test indices), ``folds/<backbone>/<method>/
fold<k>.json``, ``costs/<backbone>.json``, ``cache/features/<backbone>-<key>.npz`` (the linear probe's
frozen features: the encoder is frozen, so one extraction serves every fold), then ``results.csv``,
``results.md``, ``results.json`` and the plots (:mod:`pcbm.benchmark.report`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import atomic_open, check_output_dir, jsonable
from pcbm.benchmark.config import BenchConfig
from pcbm.benchmark.data import LabelledSet, class_mapping, describe_mapping, open_labelled
from pcbm.benchmark.splits import grouped_folds
from pcbm.errors import InputError

Say = Callable[[str], None]


def fold_path(out: Path, backbone: str, method: str, k: int) -> Path:
    return out / "folds" / backbone / method / f"fold{k}.json"


def _write_json(path: Path, obj: Any) -> None:
    from pcbm.benchmark.protocols.common import is_main_process

    if not is_main_process():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        json.dump(jsonable(obj), f, indent=1, allow_nan=False)  # NaN/inf: null


def finished(path: Path, key: str) -> bool:
    """Whether ``path`` holds a finished fold of this configuration.

    Raises:
        InputError: it holds a fold of another configuration (a new --out, or delete that folder).
    """
    if not path.is_file():
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # a torn file cannot exist (atomic writes); an unreadable one is redone
    if doc.get("key") != key:
        raise InputError(f"{path} holds a fold of other settings (key {doc.get('key')} != {key}); use a new --out "
                         f"or remove {path.parent}")
    return True


class Study:
    """The loaded data, folds and mappings of one run (see :func:`run`)."""

    def __init__(self, cfg: BenchConfig, say: Say) -> None:
        from pcbm.benchmark.protocols.common import ImageStore

        self.cfg, self.say, self.out = cfg, say, Path(cfg.out)
        self.id = open_labelled(cfg.data)
        self.oods: list[LabelledSet] = [open_labelled(s) for s in cfg.ood]
        names = [o.name for o in self.oods]
        if len(set(names)) != len(names):
            raise InputError(f"two --ood sets share the name {names}; give distinct specs")
        self.classes = sorted(set(self.id.labels), key=self.id.labels.index)
        self.folds = grouped_folds(self.id.ids, self.id.labels, self.id.subjects, cfg.folds, cfg.seed)
        self.mappings = {o.name: class_mapping(self.classes, o.labels) for o in self.oods}
        say(f"in-domain: {cfg.data}: {len(self.id)} images, {len(set(self.id.subjects))} subjects, "
            f"{len(self.classes)} classes; {cfg.folds} grouped stratified folds")
        for note in self.id.notes:
            say(f"  {note}")
        for o in self.oods:
            say("out-of-domain " + describe_mapping(o.name, *self.mappings[o.name]) + f" ({len(o)} images)")
            for note in o.notes:
                say(f"  {note}")
        self.store = ImageStore(self.id.images())
        self.ood_stores = [ImageStore(o.images()) for o in self.oods]


def run(cfg: BenchConfig, say: Say = print) -> Path:
    """Run (or resume) the study and write the report; returns the output folder."""
    import torch

    from pcbm.benchmark.report import write_report

    out = check_output_dir(cfg.out, "--out", allow_existing=True)
    study = Study(cfg, say)
    _write_json(out / "config.json", cfg.to_dict())
    _write_json(out / "splits.json", {"classes": study.classes, "ids": study.id.ids, "subjects": study.id.subjects,
                                      "labels": study.id.labels,
                                      "folds": [te.tolist() for _, te in study.folds],
                                      "ood": {o.name: {"spec": o.spec, "labels": o.labels, "subjects": o.subjects,
                                                       "level": study.mappings[o.name][0],
                                                       "mapping": study.mappings[o.name][1],
                                                       "classes": study.mappings[o.name][2]} for o in study.oods}})
    for backbone in cfg.backbones:
        _cost(study, backbone)
        for method in cfg.methods:
            key = cfg.fold_key(backbone, method)
            todo = [k for k in range(cfg.folds) if not finished(fold_path(out, backbone, method, k), key)]
            if len(todo) < cfg.folds:
                say(f"{backbone}/{method}: {cfg.folds - len(todo)} finished fold(s) kept")
            for k in todo:
                t0 = time.perf_counter()
                torch.manual_seed(cfg.seed + k)
                doc = _run_fold(study, backbone, method, k)
                doc.update(key=key, backbone=backbone, method=method, fold=k, seconds=time.perf_counter() - t0)
                _write_json(fold_path(out, backbone, method, k), doc)
                say(f"{backbone}/{method} fold {k}: " + (doc.get("unsupported") or
                    f"accuracy {np.mean(np.array(doc['pred'], dtype=object) == np.array(study.id.labels, dtype=object)[doc['test_idx']]):.3f} "
                    f"({doc['seconds']:.0f} s)"))
    write_report(out, say)
    return out


def _cost(study: Study, backbone: str) -> None:
    from pcbm.benchmark.cost import measure

    path = study.out / "costs" / f"{backbone}.json"
    if path.is_file():
        return
    enc = _encoder(study, backbone)
    c = measure(enc, batch=min(16, study.cfg.batch_size), watts_per_core=study.cfg.watts_per_core)
    _write_json(path, {**c.to_dict(), "weights": getattr(enc.net, "weights", None) or study.cfg.checkpoint(backbone)})


def _encoder(study: Study, backbone: str):  # noqa: ANN202
    from pcbm.benchmark.zoo import build_backbone

    cfg = study.cfg
    return build_backbone(backbone, checkpoint=cfg.checkpoint(backbone), pooling=cfg.pooling,
                          image_size=cfg.image_size, config=cfg.model_config(backbone))


def _run_fold(study: Study, backbone: str, method: str, k: int) -> dict[str, Any]:
    train, test = study.folds[k]
    runner = {"linear": _linear, "finetune": _finetune, "pcbm": _pcbm, "pcbm_free": _pcbm}[method]
    return runner(study, backbone, method, train, test)


def _features(study: Study, backbone: str) -> tuple[np.ndarray, list[np.ndarray]]:
    from pcbm.benchmark.protocols.common import features

    cfg = study.cfg
    path = study.out / "cache" / "features" / f"{backbone}-{cfg.fold_key(backbone, 'linear')}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["id"], [z[f"ood{i}"] for i in range(len(study.oods))]
    enc = _encoder(study, backbone)
    size, mode = enc.input_size, enc.spec.resize
    x = features(enc, study.store.at(size, mode))
    xo = [features(enc, s.at(size, mode)) for s in study.ood_stores]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(f, id=x, **{f"ood{i}": v for i, v in enumerate(xo)})
    return x, xo


def _linear(study: Study, backbone: str, method: str, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    from pcbm.benchmark.protocols.linear import fit_probe

    x, xo = _features(study, backbone)
    y, subj = np.asarray(study.id.labels, dtype=object), np.asarray(study.id.subjects, dtype=object)
    probe = fit_probe(x[train], y[train], subj[train], seed=study.cfg.seed)
    return {"test_idx": test.tolist(), "pred": probe.predict(x[test]).tolist(),
            "ood": {o.name: probe.predict(f).tolist() for o, f in zip(study.oods, xo, strict=True)},
            "info": {"C": probe.chosen_c, "features": int(x.shape[1])}}


def _finetune(study: Study, backbone: str, method: str, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    from pcbm.benchmark.protocols.finetune import fine_tune, predict

    cfg = study.cfg
    enc = _encoder(study, backbone)
    size, mode = enc.input_size, enc.spec.resize
    u8 = study.store.at(size, mode)
    y = np.array([study.classes.index(c) for c in study.id.labels])
    model = fine_tune(enc, u8[train], y[train], len(study.classes), cfg.max_steps, cfg.scale, cfg.batch_size,
                      cfg.lr, cfg.seed)
    names = np.asarray(study.classes, dtype=object)
    return {"test_idx": test.tolist(), "pred": names[predict(model, u8[test]).argmax(1)].tolist(),
            "ood": {o.name: names[predict(model, s.at(size, mode)).argmax(1)].tolist()
                    for o, s in zip(study.oods, study.ood_stores, strict=True)},
            "info": {"steps": cfg.max_steps, "input_size": list(size)}}


def _pcbm(study: Study, backbone: str, method: str, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    from pcbm.benchmark.protocols.pcbm_protocol import plane_probs, train_pcbm, unsupported_reason
    from pcbm.benchmark.zoo import get_backbone
    from pcbm.concepts import PLANE_NAMES

    cfg, spec = study.cfg, get_backbone(backbone)
    reason = unsupported_reason(spec)
    if reason is None and not set(study.classes) <= set(PLANE_NAMES):
        reason = "the in-domain labels include plane groups (e.g. brain without a sub-plane): a PCBM decides planes"
    if reason:
        return {"unsupported": reason}
    size = cfg.image_size or 128
    ids = np.asarray(study.id.indices)
    family = "pcbm" if method == "pcbm" else "concept_free"
    model = train_pcbm(spec, family, study.id.dataset, ids[train].tolist(), size, cfg.max_steps, cfg.scale,
                       cfg.batch_size, cfg.seed, cfg.checkpoint(backbone))
    cols = [PLANE_NAMES.index(c) for c in study.classes]  # the decision restricted to the study's classes
    names = np.asarray(study.classes, dtype=object)

    def call(ds: Any, idx: list[int]) -> list[str]:
        return names[plane_probs(model, ds, idx, size)[:, cols].argmax(1)].tolist()

    return {"test_idx": test.tolist(), "pred": call(study.id.dataset, ids[test].tolist()),
            "ood": {o.name: call(o.dataset, o.indices) for o in study.oods},
            "info": {"family": family, "steps": cfg.max_steps, "input_size": [size, size]}}
