"""``pcbm concepts list``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    concepts_app = typer.Typer(help="The concept ontology: visual concepts, property concepts, planes.", no_args_is_help=True)
    app.add_typer(concepts_app, name="concepts")

    @concepts_app.command("list")
    def list_cmd(
        plane: str = typer.Option(None, "--plane", help="Only concepts of this plane or family (e.g. trans_thalamic, head)."),
        kind: str = typer.Option("all", "--kind", help="visual, property or all."),
    ) -> None:
        """Print the concepts as a table."""
        from rich.console import Console
        from rich.table import Table

        from pcbm.concepts import PLANES, PropertyConcept, list_concepts

        items = list_concepts(kind=kind, plane=plane)  # type: ignore[arg-type]
        table = Table(title="pcbm concepts" + (f" — {plane}" if plane else ""))
        for col in ("name", "type", "group", "unit", "derived from", "meaning (ISUOG)"):
            table.add_column(col)
        for c in items:
            if isinstance(c, PropertyConcept):
                table.add_row(c.name, f"property/{c.kind}", c.group, c.unit or "", ", ".join(c.derived_from), c.isuog)
            else:
                table.add_row(c.name, "visual", c.group, "", "", c.description)
        console = Console(width=160)
        console.print(table)
        planes = [p for p in PLANES if plane is None or plane in (p.name, p.group)]
        pt = Table(title="planes and their standard-plane criteria")
        pt.add_column("plane")
        pt.add_column("criteria (all must hold)")
        for p in planes:
            pt.add_row(p.name, " ∧ ".join(("" if c.expected else "¬") + c.property for c in p.criteria) or "— (never standard)")
        console.print(pt)
