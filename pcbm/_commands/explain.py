"""``pcbm report`` and ``pcbm intervene``."""

from __future__ import annotations

from pathlib import Path

import typer


def _spacing(value: float | None) -> tuple[float | None, str | None]:
    from pcbm.validate import pixel_spacing

    if value is None:
        return None, None
    return pixel_spacing(value, "--pixel-spacing"), "--pixel-spacing flag"


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        model_ref: str = typer.Argument(..., metavar="RUN|default", help="A run directory, or 'default' for the shipped model."),
        images: list[str] = typer.Argument(..., metavar="IMAGE...",
                                           help="Image files (PNG, JPEG, BMP, TIFF), ultrasound DICOM files, folders, "
                                                "or data specs (hc18:PATH?split=val): each image gets its dataset's "
                                                "pixel spacing and recorded HC."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for the reports and index.html (earlier reports "
                                                          "there are kept and listed)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace reports of the same name in --out."),
        pixel_spacing: float = typer.Option(None, "--pixel-spacing", help="mm per pixel for all images (else from the dataset when known, else px)."),
        heatmap: str = typer.Option("gradcam", "--heatmap", help="gradcam, integrated_gradients, saliency or none."),
        formats: str = typer.Option("html,json", "--formats", help="Comma-separated: html, json, md, png."),
    ) -> None:
        """Write one concept report per image (HTML + JSON by default) and an index.html."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from pcbm.errors import InputError
        from pcbm.explain.build import write_reports
        from pcbm.explain.report import ConceptReport
        from pcbm.models import load_model

        fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
        bad = [f for f in fmts if f not in ("html", "json", "md", "png")]
        if bad or not fmts:
            raise InputError(f"unknown report format(s) {bad or formats!r}; choose from html, json, md, png")
        methods = ("gradcam", "integrated_gradients", "saliency", "none")
        if heatmap not in methods:
            raise InputError(f"unknown --heatmap {heatmap!r}; choose {', '.join(methods)}")
        from pcbm.data.io import expand_inputs

        spacing, source = _spacing(pixel_spacing)
        inputs = expand_inputs(images)  # a bad spec or an empty folder fails here, before the model loads
        model, info = load_model(model_ref)
        model.family.require_concepts("a concept report")  # once, not once per image
        columns = (TextColumn("[bold]report"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.description}"))
        with Progress(*columns) as progress:
            task = progress.add_task("", total=len(inputs))

            def done(i: int, stem: str, r: ConceptReport | None) -> None:
                progress.update(task, advance=1, description=stem)

            run = write_reports(model, inputs, out, info, spacing, source, fmts,
                                heatmap=None if heatmap == "none" else heatmap, on_done=done, overwrite=overwrite)
        for stem, r in run.written:
            typer.echo(f"{stem}: {r.plane} — {r.status_label} ({r.confidence:.0%})"
                       + (f"; missing: {', '.join(r.missing)}" if r.missing and r.status != 'not_a_known_plane' else ""))
        for stem, message in run.failures:
            typer.secho(f"error: {stem}: {message}", fg=typer.colors.RED, err=True)
        typer.echo(f"wrote {len(run.written)} report(s) and {run.index}")
        if run.failures:
            typer.secho(f"{len(run.failures)} of {len(inputs)} images failed", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)

    @app.command("intervene")
    def intervene_cmd(
        model_ref: str = typer.Argument(..., metavar="RUN|PKG|default",
                                        help="A run directory, a model package (pcbm export: no torch) or 'default'."),
        image: Path = typer.Argument(..., help="The image file."),
        set_: list[str] = typer.Option([], "--set", help="NAME=VALUE: a property (csp_visible=1, cerebellum_visible=no, hc_mm=170) or a visual concept's whole mask (kidney=0); NAME@x0,y0,x1,y1=1 paints a box."),
        erase: list[str] = typer.Option([], "--erase", help="A visual concept to erase (kidney), or a box of it (head@x0,y0,x1,y1, image pixels)."),
        pixel_spacing: float = typer.Option(None, "--pixel-spacing", help="mm per pixel (needed to set a measurement)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Correct concepts of one image and print the decision before and after."""
        import json

        from pcbm.errors import InputError
        from pcbm.explain.interventions import intervene, parse_intervention
        from pcbm.predictor import open_predictor

        if not set_ and not erase:
            raise InputError("nothing to change: give at least one --set NAME=VALUE or --erase NAME")
        kwargs = parse_intervention(set_, erase)  # unknown names fail here, before loading the model
        spacing, _ = _spacing(pixel_spacing)
        model = open_predictor(model_ref)  # the runtime counts the usable CPUs
        result = intervene(model, image, pixel_spacing_mm=spacing, **kwargs)
        if json_out:
            typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))  # to_dict: NaN is null
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"intervention on {image.name}", show_lines=False)
        for col in ("", "plane", "status", "confidence", "missing criteria"):
            t.add_column(col)
        for label, d in (("before", result.before), ("after", result.after)):
            missing = ", ".join(d.missing_text()) if d.status != "not_a_known_plane" else "—"
            t.add_row(label, d.plane, d.status.replace("_", " "), f"{d.confidence:.0%}", missing or "none")
        console = Console(width=140)
        console.print("corrections: " + "; ".join(result.corrections))
        console.print(t)
        changes = result.property_changes()
        if changes:
            console.print("properties that changed: " + ", ".join(f"{k} {b:.2f}→{a:.2f}" for k, (b, a) in changes.items()))
        console.print("decision changed" if result.changed else "decision unchanged")
