"""Run folders that appear whole or not at all, checkpoints, and resuming an interrupted run.

``train(cfg)`` builds ``OUT`` in the visible sibling ``OUT.partial/`` and renames it onto ``OUT`` only
when it is complete (model.pt, config.json, metrics.json, logs/). Meanwhile ``OUT.partial/`` holds

    config.json              the resolved config, with ``"status": "partial"``
    checkpoints/last.ckpt    a Lightning checkpoint: every ``checkpoint_every`` steps, each epoch end, on Ctrl-C
    logs/metrics.csv         the metrics so far

and ``pcbm train --resume OUT`` continues it from the checkpoint with the saved config.

Example:
    >>> staging_path("runs/a")
    PosixPath('runs/a.partial')
    >>> run_of("runs/a.partial")
    PosixPath('runs/a')
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pcbm._io import atomic_path, check_output_dir
from pcbm.errors import InputError

PARTIAL = ".partial"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
# what `--resume` may change: how long and where the rest runs, not what is trained
RESUME_OPTIONS = ("max_steps", "max_time_min", "epochs", "workers", "accelerator", "progress")


class TrainingInterrupted(RuntimeError):
    """Training stopped by Ctrl-C; the staging folder keeps the checkpoint, config and metrics.

    Attributes:
        staging: the ``OUT.partial`` folder; run: ``OUT``; step: the optimiser step checkpointed.
    """

    def __init__(self, staging: Path, run: Path, step: int):
        self.staging, self.run, self.step = staging, run, step
        if step > 0:
            msg = (f"interrupted at step {step}; checkpoint, config and metrics so far are in {staging}; "
                   f"resume with: pcbm train --resume {run}")
        else:
            msg = f"interrupted before the first optimiser step; nothing was kept ({run} is as it was)"
        super().__init__(msg)


def staging_path(out: str | Path) -> Path:
    """Where ``train`` builds the run ``out``: the sibling ``out.partial``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL)


def run_of(path: str | Path) -> Path:
    """The run a path names: ``r.partial`` -> ``r``; ``r`` -> ``r``."""
    path = Path(path)
    return path.with_name(path.name[: -len(PARTIAL)]) if path.name.endswith(PARTIAL) else path


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Check ``out`` before any work and return its (new, empty) staging folder.

    Refuses a file, a non-empty folder (unless ``overwrite``), an unwritable parent, and an
    interrupted run already staged there (resume it, or ``overwrite`` discards it).
    """
    import shutil

    check_output_dir(out, "--out", overwrite=overwrite)
    stage = staging_path(out)
    if stage.exists():
        if not overwrite:
            raise InputError(f"--out {out}: an interrupted run of it is in {stage}; resume it with "
                             f"`pcbm train --resume {out}`, or pass --overwrite to discard it and start over")
        if stage.is_dir():
            shutil.rmtree(stage)
        else:
            stage.unlink()
    stage.mkdir(parents=True)
    return stage


def read_partial(run: str | Path) -> tuple[Path, dict[str, Any]]:
    """(staging folder, its config.json) of the interrupted run ``run`` (``r`` or ``r.partial``)."""
    out = run_of(run)
    stage = staging_path(out)
    if not stage.is_dir():
        if (out / "model.pt").is_file():
            raise InputError(f"--resume {out}: the run is complete (nothing to resume); fine-tune it with --init {out}")
        raise InputError(f"--resume {out}: no interrupted run there (expected the folder {stage})")
    conf = stage / "config.json"
    try:
        d = json.loads(conf.read_text(encoding="utf-8"))
        if not isinstance(d.get("train"), dict) or not isinstance(d.get("model"), dict):
            raise ValueError("no train or model table")
    except (OSError, ValueError, AttributeError) as e:
        raise InputError(f"--resume {out}: cannot read {conf}: {e}") from None
    if not (stage / CHECKPOINT).is_file():
        raise InputError(f"--resume {out}: {stage} holds no checkpoint ({CHECKPOINT}); it stopped before its "
                         f"first checkpoint: start over with --overwrite")
    return stage, d


def check_resume_overrides(run: str | Path, given: dict[str, Any]) -> None:
    """Refuse options that would change what an interrupted run trains (one line naming them)."""
    bad = sorted(k for k, v in given.items() if v is not None and k not in RESUME_OPTIONS)
    if bad:
        from pcbm.training.config import option_flag

        flags = ", ".join(option_flag(k, given[k]) for k in bad)
        allowed = ", ".join(option_flag(k) for k in RESUME_OPTIONS)
        raise InputError(f"--resume {run} continues the run with its saved config; {flags} cannot be changed "
                         f"(allowed: {allowed})")


def checkpoint_step(path: Path) -> int:
    """The optimiser step a Lightning checkpoint was saved at."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ck["global_step"])
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the same user-facing problem
        raise InputError(f"cannot read checkpoint {path}: {e}; start over with --overwrite") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but a checkpoint is renamed into place only when fully written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class Checkpointer(Callback):
    """Save ``last.ckpt`` every ``every`` optimiser steps, at each epoch end, at the end, and on an
    exception (Ctrl-C) unless it struck inside an optimiser step (then the previous one stays)."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every
        self._consistent, self.saved_step = True, -1

    def save(self, trainer: Any) -> None:
        if trainer.global_step > 0 and trainer.global_step != self.saved_step and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)  # full state (optimiser, loops) for --resume
            self.saved_step = trainer.global_step

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self._consistent = False

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._consistent = True
        if trainer.global_step % self.every == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.save(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._consistent:
            self.save(trainer)


class Throughput(Callback):
    """Images seen and training seconds, summed over resumed sessions (kept in the checkpoint)."""

    def __init__(self) -> None:
        self.images, self.prior_s, self._t0 = 0, 0.0, time.perf_counter()
        self.resumed_at: list[int] = []

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._t0 = time.perf_counter()
        if trainer.global_step > 0:
            self.resumed_at.append(int(trainer.global_step))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.images += int(batch["image"].shape[0])

    @property
    def seconds(self) -> float:
        return self.prior_s + time.perf_counter() - self._t0

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": self.seconds, "resumed_at": list(self.resumed_at)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.prior_s = int(state["images"]), float(state["seconds"])
        self.resumed_at = list(state.get("resumed_at", []))
