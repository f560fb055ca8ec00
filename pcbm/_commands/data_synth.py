"""``pcbm data synth`` (write a phantom set in the folder format) and ``pcbm data contact-sheet``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer


def register(data_app: typer.Typer) -> None:
    @data_app.command("synth")
    def synth_cmd(
        out: Path = typer.Option(..., "--out", help="Folder to write (images/, masks/<concept>/, labels.csv)."),
        n: int = typer.Option(..., "--n", min=1, help="Number of samples."),
        seed: int = typer.Option(0, "--seed", help="Phantom seed; (seed, index, style, size) fixes a sample."),
        size: int = typer.Option(256, "--size", min=32, help="Image side in pixels."),
        style: str = typer.Option("default", "--style",
                                  help="Scanner style (default, clinic, portable, highres, heldout), mix, or random "
                                       "(a new scanner per scene)."),
        planes: str = typer.Option(None, "--planes", help="Only these planes, '+'-separated, or 'head' (default all)."),
        standard_fraction: float = typer.Option(0.5, "--standard-fraction", min=0.0, max=1.0,
                                                help="Fraction of standard scenes among the known planes."),
        contact_sheet: Path = typer.Option(None, "--contact-sheet", help="Also write a contact sheet PNG here."),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="Replace an existing --out folder dataset (whole, once the new one is "
                                            "complete) and an existing --contact-sheet file."),
    ) -> None:
        """Render a phantom set and write it in the folder format, with a table of what was generated.

        A non-empty --out is refused unless --overwrite (and a folder that is not a dataset always is);
        the set is built beside it and renamed into place, so an interrupted run leaves nothing.
        """
        from rich.console import Console

        from pcbm._io import check_output_dir, check_output_file
        from pcbm.data.folder import write_folder
        from pcbm.data.phantom import PhantomDataset

        check_output_dir(out, "--out", overwrite=overwrite)  # before anything is rendered
        if contact_sheet is not None:
            check_output_file(contact_sheet, "--contact-sheet", overwrite=overwrite)
        console = Console(width=140)
        ds = PhantomDataset(n=n, seed=seed, style=style, size=size, standard_fraction=standard_fraction, planes=planes)
        seen: list[tuple[str, bool, str | None]] = []

        def samples():
            for s in ds:
                seen.append((s.plane, bool(s.standard), s.meta.get("broken")))
                yield s

        class _Sized:  # a generator with a length, so the progress bar shows a total
            def __len__(self) -> int:
                return len(ds)

            def __iter__(self):
                return samples()

        write_folder(_Sized(), out, progress=True, overwrite=overwrite)
        console.print(generated_table(seen, f"phantom → {out}"))
        console.print(f"wrote {len(seen)} samples to {out}")
        if contact_sheet is not None:
            from pcbm.data.phantom.contact_sheet import contact_sheet as sheet

            sheet(contact_sheet, style="default" if style == "mix" else style, seed=seed)
            console.print(f"wrote {contact_sheet}")

    @data_app.command("contact-sheet")
    def contact_sheet_cmd(
        out: Path = typer.Option(..., "--out", help="PNG to write."),
        style: str = typer.Option("default", "--style", help="Scanner style."),
        seed: int = typer.Option(0, "--seed", help="Phantom seed."),
        size: int = typer.Option(192, "--size", min=32, help="Tile size in pixels."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    ) -> None:
        """Draw each plane, standard and breaking each criterion in turn, with mask overlays."""
        from pcbm._io import check_output_file
        from pcbm.data.phantom.contact_sheet import contact_sheet as sheet
        from pcbm.data.phantom.styles import get_style

        get_style(style)
        check_output_file(out, "--out", overwrite=overwrite)
        sheet(out, style=style, seed=seed, size=size)
        typer.echo(f"wrote {out}")


def generated_table(rows: list[tuple[str, bool, str | None]], title: str):
    """A rich table: per plane, standard / non-standard counts and the broken criteria."""
    from rich.table import Table

    from pcbm.concepts import PLANE_NAMES

    t = Table(title=title)
    for col in ("plane", "standard", "non-standard", "broken criteria"):
        t.add_column(col, justify="left" if col in ("plane", "broken criteria") else "right")
    for plane in PLANE_NAMES:
        mine = [r for r in rows if r[0] == plane]
        if not mine:
            continue
        broken = Counter(r[2] or "—" for r in mine if not r[1])
        t.add_row(plane, str(sum(r[1] for r in mine)), str(sum(not r[1] for r in mine)),
                  ", ".join(f"{k} {v}" for k, v in sorted(broken.items())))
    t.add_row("all", str(sum(r[1] for r in rows)), str(sum(not r[1] for r in rows)), "", style="bold")
    return t
