"""``pcbm eval``, ``pcbm predict`` and ``pcbm calibrate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from pcbm._io import jsonable


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        run: str = typer.Argument(..., help="Run directory, 'default' for the shipped model, or 'sononet16' "
                                            "(the pretrained SonoNet-16 reference classifier)."),
        data: str = typer.Option(..., "--data", help="Data spec, e.g. hc18:PATH?split=val or phantom:n=200,seed=7."),
        json_out: Path = typer.Option(None, "--json", help="Also write the metrics to this JSON file (a new file)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
        limit: int = typer.Option(None, "--limit", min=1, help="Evaluate only the first N samples."),
        batch_size: int = typer.Option(8, "--batch-size", min=1),
        threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
    ) -> None:
        """Evaluate a model: plane macro-F1 / balanced accuracy, standardness, properties, Dice, HC MAE (mm).

        A sample that cannot be read is listed and the rest is evaluated; the exit code is then 1.
        """
        import torch

        from pcbm._io import check_output_file, write_json
        from pcbm.data import open_dataset
        from pcbm.models import load_model
        from pcbm.training import evaluate

        if json_out is not None:
            check_output_file(json_out, "--json", overwrite)  # before the evaluation, not after it
        torch.set_num_threads(threads)
        ds = open_dataset(data)
        model, _ = load_model(run)
        metrics = jsonable({"model": run, "data": data, **evaluate(model, ds, batch_size=batch_size, limit=limit)})
        if json_out is not None:
            write_json(json_out, metrics)
        short = {k: v for k, v in metrics.items() if k not in ("plane_confusion", "properties", "failed")}  # type: ignore[union-attr]
        typer.echo(json.dumps(short, indent=2))
        failed = metrics["failed"]  # type: ignore[index]
        for f in failed[:20]:
            typer.secho(f"error: sample {f['index']}: {f['error']}", fg=typer.colors.RED, err=True)
        if failed:
            more = f" ({len(failed) - 20} more in --json)" if len(failed) > 20 else ""
            typer.secho(f"{len(failed)} of {len(failed) + metrics['n']} samples could not be read{more}",  # type: ignore[index]
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1)

    @app.command("predict")
    def predict_cmd(
        run: str = typer.Argument(..., help="Run directory, 'default' for the shipped model, 'sononet16' "
                                            "(the pretrained SonoNet-16 reference classifier), or a model package "
                                            "(pcbm export: run without torch)."),
        images: list[str] = typer.Argument(..., help="Image files (PNG, JPEG, BMP, TIFF), ultrasound DICOM files, "
                                                     "folders, or data specs (hc18:PATH?split=val): each image with "
                                                     "its dataset's pixel spacing and recorded values."),
        pixel_spacing: float = typer.Option(None, "--pixel-spacing",
                                            help="mm per pixel for every image (else from the DICOM header or the "
                                                 "image's dataset CSV when known; px without)."),
        threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
        navigate: bool = typer.Option(False, "--navigate", help="Add a 'navigation' field: the next probe move "
                                                                "toward a standard plane and why (pcbm.navigation)."),
        target: str = typer.Option(None, "--target", help="With --navigate: the plane to steer toward "
                                                           "(default: the nearest standard plane)."),
    ) -> None:
        """Print one JSON object per image: plane, status, properties, measurements, missing criteria.

        An image that cannot be read gets its own error line and the others go on; the exit code is then 1.
        """
        import torch

        from pcbm.data.base import DatasetItem
        from pcbm.data.io import expand_inputs
        from pcbm.errors import InputError
        from pcbm.validate import pixel_spacing as valid_spacing

        if pixel_spacing is not None:
            pixel_spacing = valid_spacing(pixel_spacing, "--pixel-spacing")
        if target is not None and not navigate:
            raise InputError("--target needs --navigate")
        if navigate and target is not None:
            from pcbm.navigation import known_target

            known_target(target, "--target plane")
        torch.set_num_threads(threads)
        inputs = expand_inputs(images)  # a bad spec or an empty folder fails here, before the model loads
        from pcbm.predictor import open_predictor

        model = open_predictor(run, threads=threads)
        failed = 0
        for item in inputs:
            name = item.name if isinstance(item, DatasetItem) else str(item)
            try:
                res = _predict_one(model, item, name, pixel_spacing, (target,) if navigate else None)
            except InputError as e:
                failed += 1
                typer.secho(f"error: {name}: {e}", fg=typer.colors.RED, err=True)
                continue
            typer.echo(json.dumps(jsonable(res), allow_nan=False))
            sys.stdout.flush()
        if failed:
            typer.secho(f"{failed} of {len(inputs)} images failed", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)


    @app.command("export")
    def export_cmd(
        run: str = typer.Argument(..., help="Run directory or 'default'."),
        out: Path = typer.Option(..., "--out", help="Package folder to write (built in OUT.partial, renamed when whole)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing package once the new one is whole."),
        reference: list[str] = typer.Option(None, "--reference", help="Data spec for the concepts' reference "
                                                                      "statistics (drift monitoring), repeatable; "
                                                                      "default phantom:n=200,seed=7,style=mix."),
        reference_limit: int = typer.Option(200, "--reference-limit", min=1, help="Images per reference spec."),
        threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
    ) -> None:
        """Write a model package: the stages as ONNX graphs, metadata.json, package.sha256 (every file's sha256,
        signed when $PCBM_PACKAGE_KEY is set), the model card, reliability and reference statistics.
        pcbm predict PKG … runs it without torch; pcbm verify PKG checks it."""
        import torch

        from pcbm.export.package import DEFAULT_REFERENCE, export_package

        torch.set_num_threads(threads)
        path = export_package(run, out, overwrite=overwrite, reference=reference or DEFAULT_REFERENCE,
                              reference_limit=reference_limit, progress=lambda m: typer.echo(f"[export] {m}", err=True))
        from pcbm.layout import METADATA

        meta = json.loads((path / METADATA).read_text())
        typer.echo(json.dumps({"package": str(path), "files": meta["files"]}, indent=2))

    @app.command("verify")
    def verify_cmd(
        package: Path = typer.Argument(..., help="A model package folder (pcbm export)."),
        key_file: Path = typer.Option(None, "--key-file", help="A file holding the site's signing key (else "
                                                               "$PCBM_PACKAGE_KEY): the signature must then match."),
    ) -> None:
        """Check a model package: every file against its manifest (sha256, metadata.json included), no file
        added, no link, every metadata value in range, the signature when a key is set. Prints the package's
        digest (what it serves as package_sha256); exit 1 and one line per problem when anything is wrong."""
        from pcbm.errors import InputError
        from pcbm.layout import SIGNATURE
        from pcbm.runtime.verify import package_digest, signing_key, verify_package

        key = None
        if key_file is not None:
            try:
                key = key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"cannot read --key-file {key_file}: {type(e).__name__}") from None
            if not key:
                raise InputError(f"--key-file {key_file} is empty")
        meta, problems = verify_package(package, key=key)
        if problems:
            for p in problems:
                typer.secho(f"problem: {p}", fg=typer.colors.RED, err=True)
            typer.secho(f"{package}: {len(problems)} problem(s); do not use this package", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps({"package": str(package), "ok": True, "package_sha256": package_digest(package),
                               "model": (meta.get("model") or {}).get("name"), "files": len(meta.get("files") or {}) + 1,
                               "signed": (package / SIGNATURE).is_file(),
                               "signature_checked": signing_key(key) is not None}, indent=2))

    @app.command("calibrate")
    def calibrate_cmd(
        run: str = typer.Argument(..., help="Run directory (or 'default') whose plane probabilities and "
                                            "'unlike the training data' check are fitted."),
        data: list[str] = typer.Option(..., "--data", help="Data spec of the model's training distribution, "
                                                           "repeatable (each split by subject: half fits, half holds out)."),
        out: Path = typer.Option(None, "--out", help="File to write (default: RUN/reliability.json, which "
                                                      "load_model then attaches)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
        per_source: int = typer.Option(400, "--per-source", min=2, help="At most this many images per half per spec."),
        quantile: float = typer.Option(0.99, "--quantile", help="Held-out in-distribution share the threshold "
                                                                "lets through (0.99: 1 % false alarms)."),
        threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
    ) -> None:
        """Fit a temperature (calibrated plane probabilities) and an out-of-distribution score; frames
        above its threshold get status not_a_known_plane with the reason "unlike the training data"."""
        import torch
        from rich.progress import Progress

        from pcbm._io import check_output_file
        from pcbm.errors import InputError
        from pcbm.models import load_model
        from pcbm.models.io import resolve_run
        from pcbm.reliability import FILE
        from pcbm.training.calibration import fit_reliability

        torch.set_num_threads(threads)
        if not 0.5 < quantile < 1:  # NaN fails this too
            raise InputError(f"--quantile must be in (0.5, 1), got {quantile!r}")
        target = Path(out) if out is not None else resolve_run(run) / FILE
        # a folder, an existing file without --overwrite, a missing or unwritable place: one line now, not
        # after minutes of calibration
        check_output_file(target, "--out" if out is not None else "the calibration file", overwrite)
        model, _ = load_model(run)
        with Progress(transient=True) as bar:
            task = bar.add_task("calibrating", total=None)
            rel = fit_reliability(model, data, per_source=per_source, quantile=quantile,
                                  progress=lambda n: bar.advance(task, n))
        rel.save(target, overwrite=overwrite)
        typer.echo(json.dumps({"file": str(target), "temperature": round(rel.temperature, 4),
                               "threshold": round(rel.threshold, 4), **rel.fitted}, indent=2))


def _predict_one(model: Any, item: Any, name: str, flag_spacing: float | None,
                 navigate: tuple[str | None] | None = None) -> dict[str, Any]:
    """``pcbm predict``'s record of one input (a file or a DatasetItem): spacing from the flag, else
    the DICOM header / dataset; the dataset's recorded measurements beside the measured ones.
    ``navigate``: (target plane or None,) adds the ``navigation`` hint (:func:`pcbm.navigation.hint`)."""
    from pcbm.data.base import DatasetItem
    from pcbm.data.io import find_recorded, read_input_image
    from pcbm.explain.build import recorded_values
    if isinstance(item, DatasetItem):
        s = item.load()
        image, found, found_source, notes = s.image, s.pixel_spacing_mm, f"dataset ({item.spec})", []
        recorded, recorded_source = recorded_values(s)
    else:
        loaded = read_input_image(item)
        image, found, found_source, notes = loaded.image, loaded.pixel_spacing_mm, loaded.spacing_source, loaded.notes
        recorded, recorded_source = ({}, None) if loaded.spacing_source == "DICOM header" else find_recorded(item)
    spacing = flag_spacing if flag_spacing is not None else found
    from pcbm.models import predict
    from pcbm.pipeline import Pipeline

    keep = navigate is not None  # the hint reads the masks too: keep them for it
    if isinstance(model, Pipeline) or model.family.has_concepts:  # the one pipeline (package or torch)
        from pcbm.predictor import as_pipeline

        pred = as_pipeline(model).predict(image, spacing, name=name, keep_masks=keep)
    else:  # a reference classifier without concepts (SonoNet-16)
        [pred] = predict(model, [image], spacing, names=[name], keep_masks=keep)
    if navigate is not None:
        from pcbm.navigation import hint

        pred.navigation = hint(pred, navigate[0]).to_dict()
    res = pred.to_dict()
    if spacing is not None:
        res["pixel_spacing_mm"] = spacing
        res["pixel_spacing_source"] = "--pixel-spacing" if flag_spacing is not None else found_source
        if recorded:
            res["recorded"], res["recorded_source"] = recorded, recorded_source
    if notes:
        res["notes"] = list(notes)
    return res
