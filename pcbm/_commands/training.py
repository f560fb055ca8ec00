"""``pcbm train`` and ``pcbm refit``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


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
        out: Path = typer.Option(..., "--out", help="Run directory to write (model.pt, config.json, metrics.json, logs/)."),
        config: Path = typer.Option(None, "--config", help="JSON or TOML file of training settings (CLI options win)."),
        model: str = typer.Option(None, "--model", help="Registered model config: tiny, small, small_mlp, baseline, …"),
        init: str = typer.Option(None, "--init", help="Start from this run's weights (RUN_DIR or default) to fine-tune; its model config is kept."),
        mode: str = typer.Option(None, "--mode", help="independent, sequential or joint."),
        epochs: int = typer.Option(None, "--epochs", help="Maximum epochs."),
        max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
        epoch_size: int = typer.Option(None, "--epoch-size", help="Training draws per epoch (default: all training samples)."),
        size: int = typer.Option(None, "--size", help="Input size S (square, letterboxed)."),
        batch_size: int = typer.Option(None, "--batch-size"),
        lr: float = typer.Option(None, "--lr", help="Peak learning rate (AdamW, one-cycle)."),
        seed: int = typer.Option(None, "--seed", help="Seed for weights, sampling and augmentation."),
        split_seed: int = typer.Option(None, "--split-seed", help="Seed of the subject-level train/val split (default 0, the split `SPEC?split=val` evaluates); keep it fixed across --init stages."),
        workers: int = typer.Option(None, "--workers", help="DataLoader workers (default: CPU count - 1, at most 8)."),
        accelerator: str = typer.Option(None, "--accelerator", help="auto, cpu or gpu."),
        precision: str = typer.Option(None, "--precision", help="Lightning precision: auto (default: bf16-mixed where the GPU or CPU computes bf16 natively, else 32-true), 32-true, bf16-mixed, …"),
        max_time_min: float = typer.Option(None, "--max-time-min", help="Stop after this many minutes (safety net)."),
        refit_decision: int = typer.Option(None, "--refit-decision", help="After training, refit the decision on predicted concepts of N samples per source."),
        refit_weights: str = typer.Option(None, "--refit-weights", help="Comma-separated per-source sample weights for the refit, e.g. 1,0.1."),
        no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentations."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Train a PCBM (or the concept-free baseline) and write a run directory."""
        from pcbm.training import TrainConfig, train

        opts = {"data": tuple(data) if data else None, "out": str(out), "model": model, "init": init, "mode": mode, "epochs": epochs,
                "max_steps": max_steps, "epoch_size": epoch_size, "size": size, "batch_size": batch_size, "lr": lr,
                "seed": seed, "split_seed": split_seed, "workers": workers, "accelerator": accelerator, "precision": precision,
                "max_time_min": max_time_min, "refit_decision": refit_decision,
                "refit_weights": _floats(refit_weights, "--refit-weights") if refit_weights else None}
        if no_augment:
            opts["augment"] = False
        if quiet:
            opts["progress"] = False
        if config is not None:
            cfg = TrainConfig.from_file(config, **opts)
        else:
            if not data:
                raise typer.BadParameter("give at least one --data SPEC (e.g. --data phantom)", param_hint="--data")
            cfg = TrainConfig(**{k: v for k, v in opts.items() if v is not None})
        run_dir = train(cfg)
        typer.echo(f"wrote {run_dir}")
        metrics = run_dir / "metrics.json"
        if metrics.is_file():
            for spec, m in json.loads(metrics.read_text()).items():
                short = {k: v for k, v in m.items() if k not in ("plane_confusion", "properties")}
                typer.echo(f"{spec}: {json.dumps(short)}")

    @app.command("refit")
    def refit_cmd(
        run: str = typer.Argument(..., help="Run directory, or 'default'."),
        data: list[str] = typer.Option(..., "--data", help="Data spec, repeatable (plane-labelled samples are used)."),
        out: Path = typer.Option(..., "--out", help="Run directory to write the refitted model to."),
        per_source: int = typer.Option(2000, "--per-source", help="Samples drawn from each data source."),
        weights: str = typer.Option(None, "--weights", help="Per-source sample weights, e.g. 1,0.1 (default 1 each)."),
        steps: int = typer.Option(500, "--steps", help="Full-batch optimisation steps."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Refit the decision layer on the model's predicted concepts (segmenter and property head frozen)."""
        import json
        import shutil
        import time

        from pcbm._io import write_json
        from pcbm.data import open_dataset
        from pcbm.models import load_model, save_model
        from pcbm.training.refit import refit_decision

        model, info = load_model(run)
        sw = [float(w) for w in weights.split(",")] if weights else None
        datasets = [open_dataset(spec, split="train") for spec in data]
        t0 = time.perf_counter()
        result = refit_decision(model, datasets, per_source, steps=steps, seed=seed, source_weights=sw)
        result.update(seconds=round(time.perf_counter() - t0, 1), data=list(data), weights=sw, per_source=per_source,
                      refitted_from=str(info.get("run_dir", run)))
        out.mkdir(parents=True, exist_ok=True)
        src = Path(info["run_dir"])
        for name in ("config.json", "MODEL_CARD.md", "training_log.csv"):
            if (src / name).exists() and src.resolve() != out.resolve():
                shutil.copy2(src / name, out / name)
        save_model(model, out)
        write_json(out / "decision_refit.json", result)
        typer.echo(json.dumps(result))
