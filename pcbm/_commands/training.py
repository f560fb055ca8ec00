"""``pcbm train`` and ``pcbm refit``: parse the options and call pcbm.training."""

from __future__ import annotations

import inspect
import json
import types
import typing
from pathlib import Path
from typing import Any

import typer

from pcbm._io import jsonable

INTERRUPTED = 130  # exit code after Ctrl-C, as a shell's


def _floats(text: str, option: str) -> tuple[float, ...]:
    from pcbm.errors import InputError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{option} expects comma-separated numbers, got {text!r}") from None


def _option_type(hint: Any) -> Any:
    """The click-facing type of a TrainConfig field: ``X | None`` -> X, ``tuple[str, ...]`` -> a
    repeatable option, ``tuple[float, ...]`` -> one comma-separated string."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return list[str] if typing.get_args(hint)[0] is str else str
    return hint


def _settings_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per option of the settings dataclass ``cls`` (its flags and help are the
    field's); None = not given."""
    from pcbm.training.config import cli_options, option_flag

    hints = typing.get_type_hints(cls)
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_option_type(hints[f.name]),
                              default=typer.Option(None, option_flag(f.name, cls=cls), help=f.metadata["help"]))
            for f in cli_options(cls)]


def _run_parameters() -> list[inspect.Parameter]:
    """The options about the run itself rather than its settings."""
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("resume", kw, annotation=Path, default=typer.Option(
            None, "--resume", help="Continue the interrupted run RUN (in RUN.partial/) from its last checkpoint with "
            "its saved config; only --max-steps, --max-time-min, --epochs, --workers, --accelerator, --quiet may be given.")),
        inspect.Parameter("overwrite", kw, annotation=bool, default=typer.Option(
            False, "--overwrite", help="Replace an existing --out (only once the new run is complete), or discard an "
            "interrupted one in OUT.partial/.")),
        inspect.Parameter("config", kw, annotation=Path, default=typer.Option(
            None, "--config", help="JSON or TOML file of training settings, or a run's config.json (CLI options win).")),
    ]


def settings_from_options(given: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig values from parsed options (those not given left out)."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name == "data":
            value = tuple(value)
        elif name == "refit_weights":
            value = _floats(value, "--refit-weights")
        elif name == "out":
            value = str(value)
        out[name] = value
    return out


def train(resume: Path | None, overwrite: bool, config: Path | None, given: dict[str, Any]) -> None:
    """Train a PCBM (or the concept-free baseline) and write a run directory."""
    from pcbm.errors import InputError
    from pcbm.training import TrainConfig
    from pcbm.training import resume as resume_run
    from pcbm.training import train as train_run
    from pcbm.training.runs import TrainingInterrupted, run_of

    opts = settings_from_options(given)
    out = opts.pop("out", None)
    try:
        if resume is not None:
            if out is not None and run_of(out).resolve() != run_of(resume).resolve():
                raise InputError(f"--resume {resume} finishes into {run_of(resume)}; drop --out {out}")
            if opts.get("accelerator"):
                from pcbm.training.config import check_accelerator

                check_accelerator(opts["accelerator"])
            run_dir = resume_run(resume, overwrite=overwrite, config=config, **opts)
        else:
            if out is None:
                raise typer.BadParameter("give --out RUN_DIR (or --resume RUN_DIR)", param_hint="--out")
            if config is not None:
                cfg = TrainConfig.from_file(config, out=out, **opts)
            else:
                if not opts.get("data"):
                    raise typer.BadParameter("give at least one --data SPEC (e.g. --data phantom)", param_hint="--data")
                cfg = TrainConfig(out=out, **opts)
            from pcbm.training.config import check_accelerator

            check_accelerator(cfg.accelerator)  # gpu on a machine without one: one line, before the data loads
            run_dir = train_run(cfg, overwrite=overwrite)
    except TrainingInterrupted as e:
        typer.secho(str(e), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(INTERRUPTED) from None
    typer.echo(f"wrote {run_dir}")
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        for spec, m in json.loads(metrics.read_text()).items():
            short = {k: v for k, v in m.items() if k not in ("plane_confusion", "properties", "failed")}
            typer.echo(f"{spec}: {json.dumps(jsonable(short), allow_nan=False)}")


def register(app: typer.Typer) -> None:
    def train_cmd(resume: Path | None = None, overwrite: bool = False, config: Path | None = None,
                  **settings: Any) -> None:
        """Train a PCBM (or the concept-free baseline) and write a run directory."""
        train(resume, overwrite, config, settings)

    from pcbm.training.config import TrainConfig

    params = _settings_parameters(TrainConfig)
    at = [p.name for p in params].index("out") + 1  # --data, --out, then the run options, then the settings
    train_cmd.__signature__ = inspect.Signature([*params[:at], *_run_parameters(), *params[at:]])  # type: ignore[attr-defined]
    app.command("train")(train_cmd)

    def train_head_cmd(overwrite: bool = False, **settings: Any) -> None:
        """Train the head refiner (HC, BPD, OFD from a finer second look at the head) and write its folder.

        --out is required (a full training takes about 40 minutes on 2 CPU cores: it never starts by accident)."""
        from pcbm.training.config import RefinerTrainConfig
        from pcbm.training.head_refiner import train_refiner

        if settings.get("out") is None:
            raise typer.BadParameter("give --out DIR, the folder to write (e.g. --out runs/head_refiner); a full "
                                     "training takes about 40 minutes", param_hint="--out")
        out = train_refiner(RefinerTrainConfig(**settings_from_options(settings)), overwrite=overwrite)
        typer.echo(f"wrote {out}")
        for spec, m in json.loads((out / "metrics.json").read_text()).items():
            typer.echo(f"{spec}: {json.dumps(jsonable(m), allow_nan=False)}")

    from pcbm.training.config import RefinerTrainConfig

    overwrite = inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
        False, "--overwrite", help="Replace an existing --out (once the new one is complete)."))
    train_head_cmd.__signature__ = inspect.Signature([*_settings_parameters(RefinerTrainConfig), overwrite])  # type: ignore[attr-defined]
    app.command("train-head")(train_head_cmd)

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
        typer.echo(json.dumps(jsonable(result), allow_nan=False))
