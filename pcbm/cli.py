"""The typer app: ``pcbm ...``. Commands parse arguments, load, and call the library.

Each area registers its commands from ``pcbm/_commands/<area>.py`` (a ``register(app)``
function), so the library stays importable without typer and commands stay small.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer  # noqa: E402

from pcbm import __version__  # noqa: E402
from pcbm.errors import InputError  # noqa: E402

app = typer.Typer(
    name="pcbm",
    help="Explainable fetal ultrasound standard-plane detection with progressive concept bottleneck models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_AREAS = ("concepts", "data", "training", "model", "explain")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pcbm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """pcbm command line."""


for _area in _AREAS:
    try:
        _mod = importlib.import_module(f"pcbm._commands.{_area}")
    except ModuleNotFoundError as _e:  # an area not written yet must not break the others
        if _e.name != f"pcbm._commands.{_area}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2, not a traceback."""
    try:
        rc = app(standalone_mode=False)  # a command's `raise typer.Exit(n)` comes back as n here
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            sys.exit(rc)
    except (InputError, KeyError, ValueError, FileNotFoundError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
