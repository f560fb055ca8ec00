"""The typer app: ``pcbm ...``. Commands parse arguments, load, and call the library.

Each area registers its commands from ``pcbm/_commands/<area>.py`` (a ``register(app)``
function), so the library stays importable without typer and commands stay small.
"""

from __future__ import annotations

import errno
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

_AREAS = ("concepts", "data", "training", "model", "explain", "live", "serve", "bench", "navigation")


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
    importlib.import_module(f"pcbm._commands.{_area}").register(app)

#: OS errors that are the machine's state, not a bug: one line, exit 1
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EMFILE}


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    Exit codes: 0 success; 1 a command that finished with failures (some files failed), the machine
    refused (disk full, permission denied), or a bug in pcbm (its traceback is shown); 2 bad input
    or usage (one line naming the problem); 130 interrupted (Ctrl-C).
    """
    from typer._click import exceptions as click_errors  # typer 0.29 vendors click

    try:
        rc = app(args=argv, standalone_mode=False)  # a command's `raise typer.Exit(n)` comes back as n here
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            sys.exit(rc)
    except InputError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as e:
        e.show()
        sys.exit(2)
    except click_errors.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "pcbm"
        typer.secho(f"error: {e.format_message()} (see '{cmd} --help')", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except click_errors.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" {e.filename}" if e.filename else ""
        typer.secho(f"error: cannot write or read{where}: {e.strerror or e}; nothing half-written was kept",
                    fg=typer.colors.RED, err=True)
        sys.exit(1)
