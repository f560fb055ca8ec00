"""``pcbm live``: the scanner's video (or the phantom sweep) on a web page, latest frame first."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer

from pcbm.errors import InputError

MODEL_LOAD_WAIT_S = 600.0  # the longest wait for the engine's model before the page is served anyway


def register(app: typer.Typer) -> None:
    @app.command("live")
    def live_cmd(
        source: str = typer.Option("phantom-sweep", "--source", help="camera:N, a video file, rtsp://… / http://…, or "
                                   "phantom-sweep[:fps=30,frames=240,seed=0,style=default,hold=0,loop=1]."),
        model: str = typer.Option("default", "--model", help="A model package (pcbm export; fast, torch-free), a run "
                                  "folder or 'default' (eager torch)."),
        record: Path = typer.Option(None, "--record", help="Record every frame into a new session folder under DIR."),
        record_format: str = typer.Option("mp4", "--record-format", help="mp4, or lossless (FFV1 .mkv)."),
        record_raw: bool = typer.Option(False, "--record-raw", help="Keep burned-in text (default: masked outside "
                                        "the scan sector)."),
        session: Path = typer.Option(Path("pcbm-live"), "--session", help="Where session folders (gallery, reports, "
                                     "summary) go when not recording."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to serve the page on (0.0.0.0 for the room's "
                                 "tablets; the page URL printed at start carries its token)."),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
        token_file: Path = typer.Option(None, "--token-file", help="The page's token(s), one per line (default: a new "
                                        "random token each session, printed in the page URL)."),
        allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated", help="Serve the page without a "
                                                   "token (loopback hosts only)."),
        threads: int = typer.Option(None, "--threads", min=1, help="Engine threads (default: the CPUs this process "
                                    "may use)."),
        freeze_only: bool = typer.Option(False, "--freeze-only", help="Predict only frozen screens (slow models)."),
        no_reports: bool = typer.Option(False, "--no-reports", help="Do not build the full report of frozen screens."),
        pixel_spacing: float = typer.Option(None, "--pixel-spacing", help="mm per pixel of the video (else px)."),
        duration: float = typer.Option(None, "--duration", min=0.1, help="Stop after this many seconds."),
        hang: float = typer.Option(10.0, "--hang-timeout", min=0.5, help="Restart an engine silent this long (s)."),
        navigate_to: str = typer.Option(None, "--navigate-to", help="Steer the probe-move hints toward this plane "
                                        "(e.g. femur; default: the nearest, the most probable one)."),
    ) -> None:
        """Run a model on live video: a page at http://HOST:PORT/?token=TOKEN with the plane, the status, what
        is missing and the outlines; /healthz for a liveness probe. Ctrl-C ends the session and writes its summary."""
        import uvicorn

        from pcbm._io import check_output_dir, check_port_free
        from pcbm.live.app import create_app
        from pcbm.live.lock import page_tokens, page_url
        from pcbm.live.session import LiveSession
        from pcbm.live.sources import check_source, parse_source

        tokens, warning = page_tokens(host, token_file, allow_unauthenticated)
        if warning:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
        if pixel_spacing is not None:
            from pcbm.validate import pixel_spacing as valid_spacing

            pixel_spacing = valid_spacing(pixel_spacing, "--pixel-spacing")
        if record_format not in ("mp4", "lossless"):
            raise InputError(f"--record-format must be mp4 or lossless, got {record_format!r}")
        if model not in ("default",) and not Path(model).exists():
            raise InputError(f"no model at {model}: give a package from pcbm export, a run folder or 'default'")
        root = record if record is not None else session
        # a file where the folder of session folders goes, an unwritable place, a port in use, a source that
        # gives no frame: one line each, before any process starts (session folders are new: nothing replaced)
        check_output_dir(root, "--record" if record is not None else "--session", allow_existing=True)
        check_port_free(host, port)
        check_source(parse_source(source))
        folder = Path(root) / time.strftime("session-%Y%m%d-%H%M%S")
        k = 1
        while folder.exists():
            folder = Path(root) / (time.strftime("session-%Y%m%d-%H%M%S") + f"-{k}")
            k += 1
        live = LiveSession(source, model, folder, record=record is not None, record_format=record_format,
                           record_raw=record_raw, threads=threads, freeze_only=freeze_only, reports=not no_reports,
                           hang_s=hang, pixel_spacing_mm=pixel_spacing, navigate_to=navigate_to)
        typer.echo(f"[live] loading the model {model}…", err=True)
        live.start(wait_engine=MODEL_LOAD_WAIT_S)  # a model that cannot be loaded: one line, exit 2
        server = uvicorn.Server(uvicorn.Config(create_app(live, tokens=tokens), host=host, port=port,
                                               log_level="warning"))
        if duration:
            threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
        url = page_url(host, port, None if token_file or not tokens else tokens[0])  # never echo a user's token
        if token_file:
            url += f"?token=<the token in {token_file}>"
        if host in ("0.0.0.0", "::"):
            url += f" (on the tablets: this machine's address in place of {host})"
        typer.echo(f"[live] {live.spec.describe()} → {url}  (session folder {folder}); Ctrl-C ends", err=True)
        try:
            server.run()
        finally:
            typer.echo("[live] stopping: closing the recording, writing the summary", err=True)
            summary = live.stop()
            st = live.hub.stats.summary()
            stopped = live.slot_stats.get("recording_stopped")
            if stopped:
                typer.secho(f"[live] {stopped}; the frames before it are kept", fg=typer.colors.YELLOW, err=True)
            if live.hub.write_error:
                typer.secho(f"[live] not saved: {live.hub.write_error}", fg=typer.colors.YELLOW, err=True)
            typer.echo(f"[live] {st['frames_processed']} frames processed, engine restarts {st['engine_restarts']}; "
                       f"summary {summary or 'not written'}", err=True)
        if live.slot_stats.get("frames_captured", 0) == 0 and live.spec.kind == "file":
            raise InputError(f"the video file {live.spec.target} gave no frame")
