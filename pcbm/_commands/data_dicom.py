"""``pcbm data etl``: ultrasound DICOM → de-identified, harmonised folder dataset with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

MAX_FAILURES_SHOWN = 30


def register(data_app: typer.Typer) -> None:
    @data_app.command("etl")
    def etl_cmd(
        src: Path = typer.Argument(..., help="Folder searched recursively for DICOM files (DICM marker or .dcm)."),
        out: Path = typer.Option(..., "--out", help="Folder dataset to write (images/, masks/_fov/, labels.csv, "
                                                    "manifest.csv)."),
        size: int = typer.Option(None, "--size", min=8, help="Resize so the long side is PX pixels (after cropping)."),
        frames: str = typer.Option("all", "--frames", help="Frames of a cine to convert: all or first."),
        salt: str = typer.Option("", "--salt", envvar="PCBM_DEID_SALT",
                                 help="Secret for patient pseudonyms and UIDs (env PCBM_DEID_SALT)."),
        date_shift_days: int = typer.Option(None, "--date-shift-days",
                                            help="Shift header dates by N days instead of removing them."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        opaque_ids: bool = typer.Option(False, "--opaque-ids", help="Name images by a salted hash of the source "
                                        "path and keep no source path or name anywhere in the output (paths can "
                                        "carry names); failures are then listed by that hash."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out (only once the new "
                                       "dataset is complete)."),
        insecure_no_salt: bool = typer.Option(False, "--insecure-no-salt", help="Run without a salt (pseudonyms "
                                              "of short patient IDs can then be reversed)."),
    ) -> None:
        """De-identify (PS3.15 basic profile), mask burned-in text, crop to the sector and write the
        folder format with manifest.csv (source and PNG SHA-256 per image).

        Needs a secret --salt (or PCBM_DEID_SALT). The dataset is built beside --out and moved into
        place when complete. Files that fail are listed and the others go on; exits 1 if any failed.
        """
        from rich.console import Console

        from pcbm.data.etl import MANIFEST, run_etl
        from pcbm.errors import InputError

        if frames not in ("all", "first"):
            raise InputError(f"--frames must be 'all' or 'first', got {frames!r}")
        console = Console(width=140)
        result = run_etl(src, out, size=size, frames=frames, salt=salt, date_shift_days=date_shift_days,
                         progress=progress, opaque_ids=opaque_ids, overwrite=overwrite,
                         insecure_no_salt=insecure_no_salt)
        spaced = sum(1 for r in result.rows if r["pixel_spacing_mm"])
        if result.rows:
            console.print(f"wrote {result.n_images} images from {result.n_files - len(result.failures)} of "
                          f"{result.n_files} DICOM files to {out} ({spaced} with pixel spacing; "
                          f"{out / MANIFEST})", highlight=False)
        if result.failures:
            console.print(failure_table(result.failures))
            if opaque_ids:
                console.print("(--opaque-ids: files are shown by their opaque id; to see their paths, rerun "
                              "without --opaque-ids into a scratch folder)", highlight=False)
        if not result.rows:
            console.print(f"[red]no image converted[/red]; nothing written to {out}", highlight=False)
        if not result.ok:
            raise typer.Exit(1)


def failure_table(failures: list[tuple[str, str]]):
    """A rich table of (source file, reason) for the files that could not be converted."""
    from rich.table import Table

    t = Table(title=f"{len(failures)} file(s) not converted", title_style="red")
    t.add_column("file", overflow="fold")
    t.add_column("reason", overflow="fold")
    for rel, message in failures[:MAX_FAILURES_SHOWN]:
        t.add_row(rel, message)
    if len(failures) > MAX_FAILURES_SHOWN:
        t.add_row("…", f"and {len(failures) - MAX_FAILURES_SHOWN} more")
    return t
