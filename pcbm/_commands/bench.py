"""``pcbm bench backbones``: the backbone study (linear probe, fine-tune, PCBM; k-fold; in and out of domain)."""

from __future__ import annotations

import typer

from pcbm.errors import InputError

bench_app = typer.Typer(help="Benchmarks: the backbone study.", no_args_is_help=True)


def _pairs(values: list[str], option: str) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise InputError(f"{option} {v!r}: expected BACKBONE=PATH, e.g. usfm=USFM_latest.pth")
        out.append((name.strip(), path.strip()))
    return tuple(out)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@bench_app.command("backbones")
def backbones_cmd(
    data: str = typer.Option(None, "--data", help="In-domain data spec; patient-level stratified k-fold inside it."),
    ood: list[str] = typer.Option([], "--ood", help="External data spec, repeatable (each scored on its own classes)."),
    backbones: str = typer.Option("resnet18", "--backbones", help="Comma-separated registered backbones (--list)."),
    protocol: str = typer.Option("linear,finetune", "--protocol", help="Comma-separated: linear, finetune, pcbm."),
    folds: int = typer.Option(5, "--folds", help="Folds (grouped by subject, stratified by class)."),
    out: str = typer.Option(None, "--out", help="Results folder; a rerun resumes it (finished folds are kept)."),
    max_steps: int = typer.Option(50, "--max-steps", help="Optimiser steps per fold (finetune, pcbm)."),
    image_size: int = typer.Option(None, "--image-size", help="Square input side for every backbone (default: "
                                   "each its authors' size; PCBM: 128)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr", help="Fine-tuning learning rate (AdamW, cosine)."),
    pooling: str = typer.Option(None, "--pooling", help="avg or token (CLS) for every ViT (default: each its own)."),
    weights: list[str] = typer.Option([], "--weights", help="BACKBONE=PATH: a local checkpoint (repeatable)."),
    model_config: list[str] = typer.Option([], "--model-config", help="BACKBONE=PATH: a model config file "
                                           "(FetalCLIP's JSON)."),
    seed: int = typer.Option(0, "--seed"),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples of subjects."),
    watts_per_core: float = typer.Option(10.0, "--watts-per-core", help="Power per busy core of the energy estimate."),
    accelerator: str = typer.Option("auto", "--accelerator", help="Lightning accelerator: auto, cpu, gpu."),
    devices: str = typer.Option("auto", "--devices", help="Lightning devices: auto, a count or a list."),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, …"),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Machines (launch on each as Lightning documents)."),
    precision: str = typer.Option("32-true", "--precision", help="Lightning precision, e.g. bf16-mixed."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
    list_: bool = typer.Option(False, "--list", help="List the registered backbones and exit."),
) -> None:
    """Compare backbones: frozen linear probe, full fine-tune and PCBM on the same encoder, patient-level
    k-fold with bootstrap CIs and paired tests, out-of-domain sets, cost per backbone; results.md/.csv + plots."""
    from pcbm.benchmark.zoo import get_backbone, list_backbones

    if list_:
        for name in list_backbones():
            s = get_backbone(name)
            typer.echo(f"{name:18s} {s.family:10s} {s.arch:28s} {s.input_size[0]}x{s.input_size[1]}  {s.note}")
        return
    if not data or not out:
        raise InputError("pcbm bench backbones needs --data SPEC and --out DIR (see --help)")
    from pcbm.training.config import check_accelerator

    check_accelerator(accelerator, devices)  # gpu without one, --devices abc: one line, before the data loads
    import warnings

    import torch

    from pcbm.benchmark.config import BenchConfig
    from pcbm.benchmark.protocols.common import Scale
    from pcbm.benchmark.runner import run
    from pcbm.training.trainer import quiet_lightning

    quiet_lightning(False)
    import logging

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)  # "GPU available: …" per fold
    warnings.filterwarnings("ignore", message=r".*defined a `validation_step` but have no `val_dataloader`.*")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    cfg = BenchConfig(data=data, out=out, ood=tuple(ood), backbones=_csv(backbones), protocols=_csv(protocol),
                      folds=folds, max_steps=max_steps, image_size=image_size, batch_size=batch_size, lr=lr,
                      seed=seed, pooling=pooling, weights=_pairs(weights, "--weights"),
                      model_configs=_pairs(model_config, "--model-config"), n_boot=n_boot,
                      watts_per_core=watts_per_core,
                      scale=Scale(accelerator, devices, strategy, num_nodes, precision))
    run(cfg, say=lambda m: typer.echo(f"[bench] {m}", err=True))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
