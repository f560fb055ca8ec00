"""Training entry point: a frozen :class:`TrainConfig` in, a run directory out.

The run directory holds ``model.pt`` (loadable without Lightning), ``config.json`` (the resolved
model + training config, data specs, versions, wall time, throughput), ``metrics.json`` (the
validation split evaluated at the original resolution) and ``logs/metrics.csv`` (CSVLogger).
It is built in ``OUT.partial/`` and renamed onto ``OUT`` only when complete; an interrupted run
stays there with its checkpoint and :func:`resume` continues it (see :mod:`pcbm.training.runs`).

Example:
    >>> cfg = TrainConfig(data=("phantom:n=16,size=64",), model="tiny", max_steps=2, out="runs/x")
    >>> run_dir = train(cfg)  # doctest: +SKIP
    >>> run_dir = resume("runs/x", max_steps=4)  # after a Ctrl-C  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

from pcbm.errors import InputError
from pcbm.training.config import DEFAULT_LR, FINETUNE_LR, TrainConfig

__all__ = ["DEFAULT_LR", "FINETUNE_LR", "TrainConfig", "build_from_config", "resolve_precision", "resume", "train"]


def build_from_config(cfg: TrainConfig, model_config: dict[str, Any] | None = None) -> Any:
    """The model to train: from ``cfg.init``'s weights, or new from the named config (or from
    ``model_config``, a saved ModelConfig dict: a resumed run's weights come from its checkpoint)."""
    from pcbm.models import ModelConfig, build_model, get_model_config

    if model_config is not None:
        return build_model(ModelConfig.from_dict(model_config))
    overrides = dict(cfg.model_overrides)
    if cfg.size is not None:
        overrides["input_size"] = cfg.size
    if cfg.init:
        from pcbm.models import load_model

        model, _ = load_model(cfg.init)
        clash = {k: v for k, v in overrides.items() if getattr(model.config, k, v) != v}
        if clash:
            raise InputError(f"--init {cfg.init}: its model config fixes {', '.join(sorted(clash))}; "
                             f"drop the override (it has {', '.join(f'{k}={getattr(model.config, k)}' for k in sorted(clash))})")
        return model.train()
    return build_model(get_model_config(cfg.model, **overrides))


def _cpu_has_bf16() -> bool:
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes (private, hence getattr)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning precision for ``precision`` on ``accelerator``: ``auto`` becomes ``bf16-mixed`` on a
    CUDA GPU with bf16 or a CPU with AVX512-BF16 / AMX (on such a 2-core CPU it made the ``small`` model's
    training 1.7 times as fast, bench/RESULTS.md), else ``32-true``. Anything else is passed through.

    Example:
        >>> resolve_precision("32-true")
        '32-true'
    """
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if _cpu_has_bf16() else "32-true"


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning(verbose: bool) -> None:
    """Lightning's own chatter: its LitLogger advert never; its INFO lines (GPU available, AMP, …)
    only when progress is shown; torch's LeafSpec deprecation warning from inside Lightning never."""
    log = logging.getLogger("lightning.pytorch")
    if not any(isinstance(f, _DropAdverts) for f in log.filters):
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).addFilter(_DropAdverts())
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # a resumed run: its earlier metrics.csv rows are set aside and merged back (not deleted, as this says),
    # and its remaining draws are reseeded (_draw_seed), not the interrupted epoch's order
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*")


def train(cfg: TrainConfig, overwrite: bool = False) -> Path:
    """Train a model as configured and write the run directory ``cfg.out``. Returns its path.

    ``cfg.out`` is checked first (a file, a non-empty folder without ``overwrite``, an unwritable
    parent, an interrupted run already there: :class:`InputError`, before any work). The run is built
    in ``cfg.out + ".partial"`` and renamed onto ``cfg.out`` when complete; an old ``cfg.out`` is
    replaced (``overwrite``) only then.

    Raises:
        InputError: bad output folder, data or init run.
        TrainingInterrupted: Ctrl-C; the staging folder keeps what :func:`resume` needs.
    """
    from pcbm.training.runs import prepare_out

    stage = prepare_out(Path(cfg.out), overwrite)
    return _run(cfg, stage, overwrite, saved=None)


def resume(run: str | Path, overwrite: bool = False, **overrides: Any) -> Path:
    """Continue the interrupted run ``run`` (``OUT`` or ``OUT.partial``) from its last checkpoint,
    with its saved config; ``overrides`` may change only :data:`pcbm.training.runs.RESUME_OPTIONS`
    (how long and where the rest runs). An existing ``OUT`` is replaced at the end if the run was
    started with ``overwrite`` or ``overwrite`` is given now. Returns the finished run directory."""
    from pcbm.training.runs import check_resume_overrides, read_partial, run_of

    check_resume_overrides(run, overrides)
    stage, saved = read_partial(run)
    d = {**saved["train"], **{k: v for k, v in overrides.items() if v is not None}, "out": str(run_of(run))}
    try:
        cfg = TrainConfig.from_dict(d)
    except (InputError, TypeError) as e:
        raise InputError(f"--resume {run_of(run)}: saved config {stage / 'config.json'}: {e}") from None
    return _run(cfg, stage, overwrite or bool(saved.get("overwrite", False)), saved=saved)


def _draw_seed(seed: int, step: int) -> int:
    """The seed of a session's draws: ``seed`` from the start, a derived one when resuming at ``step``
    (so a resumed run does not replay the first epoch's samples and augmentations)."""
    if step == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0] % 2**31)


def _run(cfg: TrainConfig, stage: Path, overwrite: bool, saved: dict[str, Any] | None) -> Path:
    """Train into the staging folder ``stage`` (new, or a partial run to resume), then publish it."""
    from pcbm.training.runs import CHECKPOINT, TrainingInterrupted, checkpoint_step

    out = Path(cfg.out)
    ckpt = stage / CHECKPOINT
    start = checkpoint_step(ckpt) if saved else 0
    try:
        trainer, module, dm, counter = _fit(cfg, stage, overwrite, saved, start)
        return _finish(cfg, stage, out, overwrite, trainer, module, dm, counter)
    except KeyboardInterrupt:
        if not ckpt.is_file():
            shutil.rmtree(stage, ignore_errors=True)
            raise TrainingInterrupted(stage, out, 0) from None
        raise TrainingInterrupted(stage, out, checkpoint_step(ckpt)) from None
    except TrainingInterrupted:
        raise
    except BaseException:
        if not ckpt.is_file():  # nothing trained yet: leave nothing behind (a checkpoint stays, to resume)
            shutil.rmtree(stage, ignore_errors=True)
        raise


def _fit(cfg: TrainConfig, stage: Path, overwrite: bool, saved: dict[str, Any] | None,
         start: int) -> tuple[Any, Any, Any, Any]:
    """Fit the configured model in ``stage`` (from its checkpoint when ``saved``); Ctrl-C leaves a
    resumable checkpoint and raises :class:`TrainingInterrupted`."""
    import lightning as L
    import torch

    from pcbm.training.runs import CHECKPOINT, TrainingInterrupted

    torch.set_num_threads(cfg.threads)
    quiet_lightning(cfg.progress)
    seed = _draw_seed(cfg.seed, start)
    L.seed_everything(seed, workers=True, verbose=False)
    module, dm = _setup(cfg, stage, overwrite, saved, seed)
    trainer, counter, checkpointer = _trainer(cfg, stage)
    old_log = _set_aside_log(stage) if saved else None
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(stage / CHECKPOINT) if saved else None,
                    weights_only=True)  # a resumed checkpoint is loaded safely, as model.pt is
    except SystemExit:  # Lightning turns Ctrl-C into sys.exit(1) after its on_exception hooks
        if not trainer.interrupted:
            raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C after the first
        if old_log is not None:
            _merge_log(old_log, stage / "logs" / "metrics.csv")
    if trainer.interrupted:
        step = checkpointer.saved_step if checkpointer.saved_step > 0 else start
        if step <= 0:
            shutil.rmtree(stage, ignore_errors=True)
        raise TrainingInterrupted(stage, Path(cfg.out), step)
    return trainer, module, dm, counter


def _setup(cfg: TrainConfig, stage: Path, overwrite: bool, saved: dict[str, Any] | None,
           seed: int) -> tuple[Any, Any]:
    """The training module and the data; the staging folder's config.json, which ``--resume`` reads."""
    from pcbm._io import write_json
    from pcbm.training.datamodule import MixedDataModule
    from pcbm.training.losses import LossWeights
    from pcbm.training.module import PCBMTrainingModule

    model = build_from_config(cfg, saved["model"] if saved else None)
    model.family.require_trainable()  # before any data is read
    # what --resume needs: the config (a resumed session's --max-steps etc. included) and the architecture
    # (the weights are in the checkpoint)
    write_json(stage / "config.json", {"status": "partial", "resume": f"pcbm train --resume {cfg.out}",
                                       "overwrite": overwrite, "model": model.config.to_dict(), "train": cfg.to_dict()})
    dm = MixedDataModule(cfg.data, model.config.input_size, cfg.batch_size, cfg.workers, cfg.val_fraction, seed,
                         cfg.augment, cfg.epoch_size, split_seed=cfg.split_seed)
    dm.setup()
    module = PCBMTrainingModule(model, cfg.mode, cfg.lr, cfg.weight_decay, LossWeights(**cfg.loss_weights),
                                freeze_encoder=cfg.freeze_encoder, freeze_batchnorm=bool(cfg.freeze_batchnorm))
    if cfg.freeze_encoder or cfg.freeze_batchnorm:  # the frozen layers' eval mode is meant
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    return module, dm


def _trainer(cfg: TrainConfig, stage: Path) -> tuple[Any, Any, Any]:
    """The Lightning trainer with pcbm's callbacks: throughput counter, atomic checkpoints, progress."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from pcbm.training.runs import CHECKPOINT, AtomicCheckpointIO, Checkpointer, Throughput

    counter, checkpointer = Throughput(), Checkpointer(stage / CHECKPOINT, cfg.checkpoint_every)
    callbacks: list[Any] = [counter, checkpointer]
    if cfg.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    trainer = L.Trainer(
        max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=1,
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        logger=CSVLogger(stage, name="logs", version=""), callbacks=callbacks,
        enable_checkpointing=False, plugins=[AtomicCheckpointIO()], default_root_dir=stage,
        enable_progress_bar=cfg.progress, fast_dev_run=cfg.fast_dev_run,
        log_every_n_steps=10, num_sanity_val_steps=0, limit_val_batches=cfg.val_batches, enable_model_summary=False,
        deterministic="warn" if cfg.accelerator == "cpu" else False,
        max_time={"minutes": cfg.max_time_min} if cfg.max_time_min else None,
    )
    return trainer, counter, checkpointer


def _set_aside_log(stage: Path) -> Path | None:
    """Lightning's CSVLogger deletes an existing metrics.csv: keep the earlier sessions' rows aside."""
    log = stage / "logs" / "metrics.csv"
    if not log.is_file():
        return None
    old = log.with_name("metrics.before-resume.csv")
    if old.is_file():  # an earlier resume died before merging: keep both
        _merge_log(old, log)
    log.replace(old)
    return old


def _merge_log(old: Path, new: Path) -> None:
    """``new`` = the rows of ``old`` then those of ``new`` (union of columns); ``old`` removed."""
    import csv

    from pcbm._io import atomic_open

    rows: list[dict[str, str]] = []
    keys: list[str] = []
    for p in (old, new):
        if p.is_file():
            with open(p, newline="") as f:
                reader = csv.DictReader(f)
                keys += [k for k in reader.fieldnames or [] if k not in keys]
                rows += list(reader)
    with atomic_open(new, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted(keys))
        writer.writeheader()
        writer.writerows(rows)
    old.unlink()


def _finish(cfg: TrainConfig, stage: Path, out: Path, overwrite: bool, trainer: Any, module: Any, dm: Any,
            counter: Any) -> Path:
    """Refit, save, evaluate into the staging folder, then rename it onto ``out``."""
    from pcbm._io import jsonable, write_json
    from pcbm.models import save_model
    from pcbm.models.io import write_run_config

    wall = counter.seconds  # the fit's, before refit and evaluation
    model = module.model.eval()
    refit = _refit(cfg, model, dm)
    model = model.cpu()
    save_model(model, stage)
    if not cfg.fast_dev_run:
        write_json(stage / "metrics.json", jsonable(_validate(cfg, model, dm)))
    # last: a config.json without "status" marks the run complete
    write_run_config(stage, _record(cfg, model, dm, trainer, counter, wall, refit))
    return _publish(stage, out, overwrite)


def _refit(cfg: TrainConfig, model: Any, dm: Any) -> dict[str, Any] | None:
    """The decision refitted on ground-truth properties (``--refit-decision``), or None."""
    if cfg.refit_decision <= 0 or cfg.fast_dev_run or not model.family.has_concepts:
        return None
    from pcbm.training.refit import refit_decision

    return refit_decision(model, dm.train_sets, cfg.refit_decision, source_weights=cfg.refit_weights, seed=cfg.seed)


def _validate(cfg: TrainConfig, model: Any, dm: Any) -> dict[str, Any]:
    """Metrics per data source on its validation split (those that have one)."""
    from pcbm.training.evaluation import evaluate

    return {spec: evaluate(model, va, limit=cfg.eval_limit)
            for (spec, _), va in zip(dm.sources, dm.val_sets, strict=True) if va is not None and len(va)}


def _record(cfg: TrainConfig, model: Any, dm: Any, trainer: Any, counter: Any, wall: float,
            refit: dict[str, Any] | None) -> dict[str, Any]:
    """The run's config.json: what was trained, on what, how long, with which versions."""
    import torch

    from pcbm import __version__

    return {
        "model": model.config.to_dict(),
        "train": cfg.to_dict(),
        "data_sizes": {spec: {"train": len(tr), "val": len(va) if va is not None else 0}
                       for (spec, _), tr, va in zip(dm.sources, dm.train_sets, dm.val_sets, strict=True)},
        "pcbm_version": __version__, "torch_version": torch.__version__,
        "device": str(trainer.strategy.root_device), "precision": resolve_precision(cfg.precision, cfg.accelerator),
        "wall_time_s": round(wall, 1), "train_images": counter.images, "steps": int(trainer.global_step),
        "train_images_per_s": round(counter.images / wall, 2) if wall > 0 else None,
        "resumed_at_steps": counter.resumed_at,
        "decision_refit": refit,
    }


def _publish(stage: Path, out: Path, overwrite: bool) -> Path:
    """Rename the finished staging folder onto ``out`` (its checkpoint dropped)."""
    from pcbm._io import check_output_dir, replace_dir
    from pcbm.training.runs import CHECKPOINT

    shutil.rmtree(stage / CHECKPOINT.parent, ignore_errors=True)
    try:
        check_output_dir(out, "--out", overwrite=overwrite)
    except InputError as e:
        raise InputError(f"{e}; the finished run is in {stage} (it appeared while training)") from None
    replace_dir(stage, out)
    return out
