"""``pcbm data check`` and ``pcbm data summary``; ``data synth`` and ``data etl`` register from their modules."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from pcbm.data.check import CheckReport

MAX_PROBLEMS_SHOWN = 20


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Datasets: validate, summarise, generate.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("check")
    def check_cmd(
        spec: str = typer.Argument(..., help="Data spec: hc18:PATH, folder:PATH, fetal_planes_db:PATH, phantom:n=…"),
        json_out: Path = typer.Option(None, "--json", help="Write the full report (every problem) as JSON here."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    ) -> None:
        """Validate every file of a dataset; report every problem at once (each CSV line, each file),
        counts, and mask/label agreement.

        Exits 0 when there are no errors (warnings allowed), 1 otherwise, 2 when the dataset cannot
        be opened at all (unknown kind, missing folder).
        """
        from rich.console import Console

        from pcbm._io import check_output_file, write_json
        from pcbm.data.check import check_dataset

        if json_out is not None:
            check_output_file(json_out, "--json", overwrite=overwrite)
        report = check_dataset(spec, progress=progress)
        _print_report(Console(width=140), report)
        if json_out is not None:
            write_json(json_out, report.to_dict())
            typer.echo(f"wrote {json_out}")
        if not report.ok:
            raise typer.Exit(1)

    @data_app.command("summary")
    def summary_cmd(
        specs: list[str] = typer.Argument(..., help="One or more data specs."),
        out: Path = typer.Option(None, "--out", help="Write a picture of samples with their masks here (PNG)."),
        per_dataset: int = typer.Option(4, "--per-dataset", min=1, max=12, help="Samples per dataset in the picture."),
        limit: int = typer.Option(200, "--limit", min=1, help="Count labels over at most this many samples each."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    ) -> None:
        """Summarise datasets as a table, and optionally draw a few samples of each with mask overlays."""
        from rich.console import Console

        from pcbm._io import check_output_file
        from pcbm.data.base import open_dataset
        from pcbm.data.summary import plot_samples, summarise, summary_table

        if out is not None:
            check_output_file(out, "--out", overwrite=overwrite)
        console = Console(width=160)
        datasets = {spec: open_dataset(spec) for spec in specs}
        summaries = [summarise(ds, spec=spec, limit=limit, progress=True) for spec, ds in datasets.items()]
        console.print(summary_table(summaries))
        if out is not None:
            plot_samples(datasets, out, per_dataset=per_dataset)
            console.print(f"wrote {out}")

    for name in ("pcbm._commands.data_synth", "pcbm._commands.data_dicom"):  # synth/contact-sheet, etl
        importlib.import_module(name).register(data_app)


def _print_report(c: Console, report: CheckReport) -> None:
    from rich.table import Table
    from rich.text import Text

    from pcbm.concepts import get_property_concept

    t = Table(title=f"data check — {report.spec}", show_header=False)
    t.add_column("item")
    t.add_column("value")
    t.add_row("samples", f"{report.n_samples} ({report.n_read} read), {report.subjects} subjects")
    t.add_row("planes", ", ".join(f"{k} {v}" for k, v in report.planes.most_common()) or "—")
    t.add_row("standard", ", ".join(f"{k} {v}" for k, v in report.standard.most_common()) or "—")
    t.add_row("masks labelled (present)",
              ", ".join(f"{k} {v} ({report.masks_present[k]})" for k, v in report.masks_labelled.items()) or "—")
    t.add_row("properties labelled", ", ".join(f"{k} {v}" for k, v in report.properties_labelled.items()) or "—")
    t.add_row("with pixel spacing", str(report.with_spacing))
    for name, a in report.agreement.items():
        if get_property_concept(name).binary:
            t.add_row(f"{name}: mask vs label", f"accuracy {a.mean:.3f} over {a.n}")
        else:
            t.add_row(f"{name}: mask vs label", f"MAE {a.mean:.3f} mm (max {a.max_abs:.2f}) over {a.n}")
    if report.hc_mae_mm is not None:
        t.add_row("hc_mae_mm", f"{report.hc_mae_mm:.3f}")
    t.add_row("errors / warnings", f"{len(report.errors)} / {len(report.warnings)}")
    t.add_row("time", f"{report.seconds:.1f} s")
    c.print(t)
    for p in report.problems[:MAX_PROBLEMS_SHOWN]:
        line = Text(p.level, style="red" if p.level == "error" else "yellow")
        line.append(f" {p.where}: {p.message}")
        c.print(line, highlight=False)
    if len(report.problems) > MAX_PROBLEMS_SHOWN:
        c.print(f"… and {len(report.problems) - MAX_PROBLEMS_SHOWN} more (see --json)")
    verdict = "[green]OK[/green]" if report.ok else f"[red]FAILED[/red] ({len(report.errors)} errors)"
    c.print(f"check {verdict}")
