"""Saving and loading models: a run directory (``model.pt`` + ``config.json``), the shipped default, or a
pretrained reference classifier by its config name (``load_model("sononet16")``).

A run directory is all the other commands need:

    RUN_DIR/model.pt      {"format": 1, "config": ModelConfig dict, "state_dict": …} (no Lightning)
    RUN_DIR/config.json   the resolved model + training configuration
    RUN_DIR/metrics.json  validation metrics at the end of training (when trained)

Example:
    >>> from pcbm.models import load_model
    >>> model, info = load_model("default")  # doctest: +SKIP
    >>> info["config"]["model"]["name"]  # doctest: +SKIP
    'small'
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcbm._io import atomic_path, write_json
from pcbm.errors import InputError
from pcbm.models.config import ModelConfig

DEFAULT_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILE = "model.pt"
PARTIAL = ".partial"  # pcbm train builds RUN in RUN.partial/ (pcbm.training.runs)
FORMAT = 1


def _interrupted(path: Path) -> Path | None:
    """The run an interrupted ``pcbm train`` left at ``path`` (``r.partial``, or ``r`` beside one), else None."""
    stage = path if path.name.endswith(PARTIAL) else path.with_name(path.name + PARTIAL)
    if stage.is_dir() and (stage / "config.json").is_file() and not (path / MODEL_FILE).is_file():
        return stage.with_name(stage.name[: -len(PARTIAL)])
    return None


def resolve_run(ref: str | Path) -> Path:
    """``"default"`` -> the shipped weights folder; anything else -> that run directory (checked).

    Raises:
        InputError: one line naming the folder and what is wrong: missing, a plain file, no
            ``model.pt``, or an interrupted run (resume it with ``pcbm train --resume``).
    """
    path = DEFAULT_DIR if str(ref) == "default" else Path(ref)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if (path / MODEL_FILE).is_file():
        return path
    if str(ref) == "default":
        raise InputError(f"the default model is missing: {path / MODEL_FILE} (reinstall pcbm or train one)")
    run = _interrupted(path)
    if run is not None:
        raise InputError(f"{path}: interrupted run, not finished (no {MODEL_FILE}); "
                         f"resume with pcbm train --resume {run}")
    if path.is_file():
        raise InputError(f"{path} is a file, not a run directory (a folder written by `pcbm train`)")
    if not path.exists():
        raise InputError(f"no model in {path}: the folder does not exist")
    raise InputError(f"no model in {path}: expected {MODEL_FILE} (a run directory written by `pcbm train`)")


def save_model(model: nn.Module, run_dir: str | Path, half: bool = False) -> Path:
    """Write ``model.pt`` (config + weights) atomically. ``half`` stores float tensors as float16."""
    run_dir = Path(run_dir)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": model.config.to_dict(), "state_dict": state}
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        torch.save(payload, tmp)
    return run_dir / MODEL_FILE


def load_model(ref: str | Path = "default", device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model for inference.

    Args:
        ref: "default" (the shipped model), the config name of a pretrained reference family
            (``"sononet16"``: built, with its published weights; like "default", the name wins over
            a folder of that name, which ``./sononet16`` reaches), or a run directory written by
            ``pcbm train``.
        device: where to put it.

    Returns:
        (model in eval mode, info) where info holds ``run_dir``, ``config`` (config.json, if any)
        and ``metrics`` (metrics.json, if any), and ``head_refiner`` (its file and training data)
        when the run directory holds a ``head_refiner.pt`` (attached to the model: HC, BPD and OFD
        are then measured on its outline); for a pretrained reference, ``run_dir`` None,
        ``config`` {"model": its config} and ``weights`` (the file read).

    Raises:
        InputError: no model there, or an unreadable one.
    """
    from pcbm.models.head_refiner import FILE as REFINER_FILE
    from pcbm.models.head_refiner import load_refiner
    from pcbm.models.pcbm import build_model
    from pcbm.reliability import FILE as RELIABILITY_FILE
    from pcbm.reliability import load_reliability

    pretrained = _pretrained_config(ref)
    if pretrained is not None:
        model = build_model(pretrained)
        weights = model.load_pretrained()
        model.__dict__["_identity"] = {"sha256": hashlib.sha256(Path(weights).read_bytes()).hexdigest(), "source": str(ref)}
        info = {"run_dir": None, "config": {"model": pretrained.to_dict()}, "metrics": None, "weights": str(weights)}
        model.__dict__["_info"] = info
        return model.eval().to(device), info
    run_dir = resolve_run(ref)
    file = run_dir / MODEL_FILE
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
        cfg = ModelConfig.from_dict(payload["config"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    except (InputError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, EOFError, OSError,
            pickle.UnpicklingError) as e:
        why = "truncated or not a pcbm model file" if isinstance(e, RuntimeError | EOFError | pickle.UnpicklingError) \
            else "not a pcbm model file"
        raise InputError(f"cannot read model {file}: {why} ({_first_line(e)})") from None
    model = build_model(cfg, encoder_weights_path=None)  # the state dict carries them: the file may be elsewhere
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"cannot read model {file}: its weights do not fit its config ({_first_line(e)})") from None
    model.eval().to(device)
    model.__dict__["_identity"] = {"sha256": hashlib.sha256(file.read_bytes()).hexdigest(), "source": str(ref)}
    info: dict[str, Any] = {"run_dir": str(run_dir)}
    if (run_dir / REFINER_FILE).is_file():  # a head refiner beside the model: used for HC, BPD, OFD
        refiner, meta = load_refiner(run_dir / REFINER_FILE)
        model.attach_head_refiner(refiner.to(device))
        info["head_refiner"] = {"file": str(run_dir / REFINER_FILE), "steps": meta.get("steps"),
                                "trained_on": (meta.get("train") or {}).get("data"), "split": meta.get("split")}
    if (run_dir / RELIABILITY_FILE).is_file():  # temperature + out-of-distribution score beside the model
        rel = load_reliability(run_dir / RELIABILITY_FILE)
        model.attach_reliability(rel)
        info["reliability"] = {"file": str(run_dir / RELIABILITY_FILE), "temperature": rel.temperature,
                               "threshold": rel.threshold, "fitted_on": rel.fitted.get("data")}
    for key in ("config", "metrics"):
        p = run_dir / f"{key}.json"
        try:
            info[key] = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {p}: {_first_line(e)} (the run folder {run_dir} is damaged)") from None
    model.__dict__["_info"] = info
    return model, info


def _pretrained_config(ref: str | Path) -> ModelConfig | None:
    """The registered config ``ref`` names when its family is a pretrained reference (not trainable)."""
    from pcbm.models.config import get_model_config, list_model_configs
    from pcbm.models.families import get_family

    if not isinstance(ref, str) or ref not in list_model_configs():
        return None
    cfg = get_model_config(ref)
    return None if get_family(cfg.family).trainable else cfg


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def write_run_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    write_json(Path(run_dir) / "config.json", config)
