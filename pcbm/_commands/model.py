"""``pcbm eval`` and ``pcbm predict``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from pcbm._io import jsonable


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        run: str = typer.Argument(..., help="Run directory, or 'default' for the shipped model."),
        data: str = typer.Option(..., "--data", help="Data spec, e.g. hc18:PATH?split=val or phantom:n=200,seed=7."),
        json_out: Path = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
        limit: int = typer.Option(None, "--limit", help="Evaluate only the first N samples."),
        batch_size: int = typer.Option(8, "--batch-size"),
        threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    ) -> None:
        """Evaluate a model: plane macro-F1 / balanced accuracy, standardness, properties, Dice, HC MAE (mm)."""
        import torch

        from pcbm._io import write_json
        from pcbm.data import open_dataset
        from pcbm.models import load_model
        from pcbm.training import evaluate

        torch.set_num_threads(threads)
        model, _ = load_model(run)
        ds = open_dataset(data)
        metrics = jsonable({"model": run, "data": data, **evaluate(model, ds, batch_size=batch_size, limit=limit)})
        if json_out is not None:
            write_json(json_out, metrics)
        short = {k: v for k, v in metrics.items() if k not in ("plane_confusion", "properties")}  # type: ignore[union-attr]
        typer.echo(json.dumps(short, indent=2))

    @app.command("predict")
    def predict_cmd(
        run: str = typer.Argument(..., help="Run directory, or 'default' for the shipped model."),
        images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, BMP, TIFF)."),
        pixel_spacing: float = typer.Option(None, "--pixel-spacing", help="mm per pixel (measurements in mm; px without)."),
        threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    ) -> None:
        """Print one JSON object per image: plane, status, properties, measurements, missing criteria."""
        import torch

        from pcbm.data.io import read_image
        from pcbm.errors import InputError
        from pcbm.models import load_model, predict_images

        if pixel_spacing is not None and not pixel_spacing > 0:
            raise InputError(f"--pixel-spacing must be a positive number of mm per pixel, got {pixel_spacing}")
        torch.set_num_threads(threads)
        model, _ = load_model(run)
        failed = 0
        for path in images:
            try:
                img, _notes = read_image(path)
                [res] = predict_images(model, [img], pixel_spacing, names=[str(path)])
            except (InputError, ValueError) as e:
                failed += 1
                typer.secho(f"error: {path}: {e}", fg=typer.colors.RED, err=True)
                continue
            typer.echo(json.dumps(jsonable(res)))
            sys.stdout.flush()
        if failed:
            typer.secho(f"{failed} of {len(images)} images failed", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
