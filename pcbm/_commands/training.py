"""``pcbm train`` and ``pcbm refit``: parse the options and call pcbm.training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

INTERRUPTED = 130  # exit code after Ctrl-C, as a shell's
DEFAULT_LR, FINETUNE_LR = 2e-3, 2e-4  # for the help only (pcbm.training.config's, which imports torch)


def _floats(text: str, option: str) -> tuple[float, ...]:
    from pcbm.errors import InputError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{option} expects comma-separated numbers, got {text!r}") from None


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: list[str] = typer.Option(None, "--data", help="Data spec, repeatable; SPEC@WEIGHT sets its share (e.g. hc18:PATH@2)."),
        out: Path = typer.Option(None, "--out", help="Run directory to write (model.pt, config.json, metrics.json, logs/); built in OUT.partial/ and renamed onto OUT when complete. A non-empty OUT is refused unless --overwrite."),
        resume: Path = typer.Option(None, "--resume", help="Continue the interrupted run RUN (in RUN.partial/) from its last checkpoint with its saved config; only --max-steps, --max-time-min, --epochs, --workers, --accelerator, --quiet may be given."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out (only once the new run is complete), or discard an interrupted one in OUT.partial/."),
        config: Path = typer.Option(None, "--config", help="JSON or TOML file of training settings, or a run's config.json (CLI options win)."),
        model: str = typer.Option(None, "--model", help="Registered model config: tiny, small, small_mlp, baseline, …"),
        init: str = typer.Option(None, "--init", help=f"Start from this run's weights (RUN_DIR or default) to fine-tune; its model config is kept; without --lr, the fine-tuning preset: --lr {FINETUNE_LR:g} and --freeze-batchnorm."),
        freeze_encoder: bool = typer.Option(False, "--freeze-encoder", help="Keep the encoder fixed (no gradient, BatchNorm statistics kept): fine-tune only the decoder and heads."),
        freeze_batchnorm: bool = typer.Option(None, "--freeze-batchnorm/--no-freeze-batchnorm", help="Keep every BatchNorm layer's running statistics (its weights still learn); default on with --init and no --lr (the fine-tuning preset), else off."),
        mode: str = typer.Option(None, "--mode", help="independent, sequential or joint."),
        epochs: int = typer.Option(None, "--epochs", help="Maximum epochs."),
        max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
        epoch_size: int = typer.Option(None, "--epoch-size", help="Training draws per epoch (default: all training samples)."),
        size: int = typer.Option(None, "--size", help="Input size S (square, letterboxed)."),
        batch_size: int = typer.Option(None, "--batch-size"),
        lr: float = typer.Option(None, "--lr", help=f"Peak learning rate (AdamW, one-cycle); default {DEFAULT_LR:g}, or {FINETUNE_LR:g} (1/10) with --init."),
        seed: int = typer.Option(None, "--seed", help="Seed for weights, sampling and augmentation: a run with the same seed and settings repeats."),
        split_seed: int = typer.Option(None, "--split-seed", help="Seed of the subject-level train/val split (default 0, the split `SPEC?split=val` evaluates); keep it fixed across --init stages."),
        workers: int = typer.Option(None, "--workers", help="DataLoader workers (default: CPU count - 1, at most 8)."),
        accelerator: str = typer.Option(None, "--accelerator", help="auto, cpu or gpu."),
        precision: str = typer.Option(None, "--precision", help="Lightning precision: auto (default: bf16-mixed where the GPU or CPU computes bf16 natively, else 32-true), 32-true, bf16-mixed, …"),
        max_time_min: float = typer.Option(None, "--max-time-min", help="Stop after this many minutes of training (safety net; resumed sessions count together)."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Optimiser steps between checkpoints in OUT.partial/checkpoints/ (default 200; also at each epoch end and on Ctrl-C)."),
        refit_decision: int = typer.Option(None, "--refit-decision", help="After training, refit the decision on predicted concepts of N samples per source."),
        refit_weights: str = typer.Option(None, "--refit-weights", help="Comma-separated per-source sample weights for the refit, e.g. 1,0.1."),
        no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentations."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Train a PCBM (or the concept-free baseline) and write a run directory."""
        from pcbm.errors import InputError
        from pcbm.training import TrainConfig, train
        from pcbm.training import resume as resume_run
        from pcbm.training.runs import TrainingInterrupted, run_of

        opts = {"data": tuple(data) if data else None, "model": model, "init": init, "mode": mode, "epochs": epochs,
                "max_steps": max_steps, "epoch_size": epoch_size, "size": size, "batch_size": batch_size, "lr": lr,
                "seed": seed, "split_seed": split_seed, "workers": workers, "accelerator": accelerator, "precision": precision,
                "max_time_min": max_time_min, "checkpoint_every": checkpoint_every, "refit_decision": refit_decision,
                "refit_weights": _floats(refit_weights, "--refit-weights") if refit_weights else None,
                "augment": False if no_augment else None, "freeze_encoder": True if freeze_encoder else None,
                "freeze_batchnorm": freeze_batchnorm,
                "progress": False if quiet else None}
        try:
            if resume is not None:
                if out is not None and run_of(out).resolve() != run_of(resume).resolve():
                    raise InputError(f"--resume {resume} finishes into {run_of(resume)}; drop --out {out}")
                run_dir = resume_run(resume, overwrite=overwrite, config=config, **opts)
            else:
                if out is None:
                    raise typer.BadParameter("give --out RUN_DIR (or --resume RUN_DIR)", param_hint="--out")
                opts["out"] = str(out)
                if config is not None:
                    cfg = TrainConfig.from_file(config, **opts)
                else:
                    if not data:
                        raise typer.BadParameter("give at least one --data SPEC (e.g. --data phantom)", param_hint="--data")
                    cfg = TrainConfig(**{k: v for k, v in opts.items() if v is not None})
                run_dir = train(cfg, overwrite=overwrite)
        except TrainingInterrupted as e:
            typer.secho(str(e), fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(INTERRUPTED) from None
        typer.echo(f"wrote {run_dir}")
        metrics = run_dir / "metrics.json"
        if metrics.is_file():
            for spec, m in json.loads(metrics.read_text()).items():
                short = {k: v for k, v in m.items() if k not in ("plane_confusion", "properties", "failed")}
                typer.echo(f"{spec}: {json.dumps(short)}")

    @app.command("refit")
    def refit_cmd(
        run: str = typer.Argument(..., help="Run directory, or 'default'."),
        data: list[str] = typer.Option(..., "--data", help="Data spec, repeatable (plane-labelled samples are used)."),
        out: Path = typer.Option(..., "--out", help="Run directory to write the refitted model to (new or empty; built aside and renamed into place)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out (once the refit is complete)."),
        per_source: int = typer.Option(2000, "--per-source", help="Samples drawn from each data source."),
        weights: str = typer.Option(None, "--weights", help="Per-source sample weights, one per --data, e.g. 1,0.1 (default 1 each)."),
        steps: int = typer.Option(500, "--steps", help="Full-batch optimisation steps."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Refit the decision layer on the model's predicted concepts (segmenter and property head frozen)."""
        from pcbm.training.refit import refit_run

        sw = _floats(weights, "--weights") if weights else None
        result = refit_run(run, data, out, per_source=per_source, steps=steps, seed=seed, weights=sw,
                           overwrite=overwrite)
        typer.echo(json.dumps(result))
