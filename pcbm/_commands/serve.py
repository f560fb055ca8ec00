"""``pcbm serve`` (the REST service on a model package), ``pcbm monitor`` (a drift report) and
``pcbm models`` (the optional MLflow model registry)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model: str = typer.Option("default", "--model", metavar="PKG|RUN|default|models:/NAME@ALIAS",
                                  help="A model package (pcbm export), a run folder / 'default' (exported once into "
                                       "the package cache: about a minute for default, seconds after), or a registered "
                                       "version (MLflow, pip install 'pcbm\\[mlflow]')."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for the network: tokens needed)."),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
        workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes (metrics merged across them)."),
        threads: int = typer.Option(None, "--threads", min=1, help="Engine threads per worker (default: usable CPUs / workers)."),
        token_file: Path = typer.Option(None, "--token-file", help="Bearer tokens, one per line (also PCBM_API_TOKENS, "
                                        "comma-separated)."),
        allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated",
                                                   help="Serve without tokens (loopback hosts only)."),
        max_upload_mb: float = typer.Option(32.0, "--max-upload-mb", min=0.001, help="Larger request bodies: 413."),
        max_in_flight: int = typer.Option(4, "--max-in-flight", min=1, help="Model requests running or queued per "
                                          "worker; one more gets 503 with Retry-After."),
        body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.001, help="Seconds a request body may take "
                                           "to arrive (read before a model slot is taken); a slower one gets 408."),
        queue_timeout: float = typer.Option(60.0, "--queue-timeout", min=0.001, help="Seconds a request may wait for "
                                            "its turn at the model; a longer wait gets 503 with Retry-After."),
        window: int = typer.Option(1000, "--window", min=1, help="Predictions in the drift window (all workers)."),
        window_out: Path = typer.Option(None, "--window-out", help="Save the drift window here (JSON, for pcbm "
                                        "monitor) periodically and at exit."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --window-out file "
                                       "(refused otherwise, before the model loads)."),
        dump_every: float = typer.Option(300.0, "--dump-every", min=1.0, help="Seconds between window saves."),
        watts_per_core: float = typer.Option(10.0, "--watts-per-core", min=0.1, help="Power per busy core of the "
                                             "energy estimate where RAPL cannot be read."),
        refine_head: str = typer.Option("always", "--refine-head", metavar="always|standard|never",
                                        help="Redraw the head with the package's head refiner before measuring: "
                                        "always (as pcbm predict), only on standard frames (as pcbm live; fewer "
                                        "CPU-seconds per head frame, unrefined HC elsewhere) or never."),
        access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log each request line (never a "
                                        "body, a header or a token)."),
    ) -> None:
        """Serve a model over HTTP: POST /v1/predict, /v1/report, /v1/intervene; GET /v1/model, /v1/drift,
        /metrics, /healthz, /readyz; OpenAPI docs at /docs. Ctrl-C stops."""
        from pcbm.serve.server import ServerOptions, serve

        opts = ServerOptions(host=host, port=port, workers=workers, threads=threads,
                             token_file=str(token_file) if token_file else None,
                             allow_unauthenticated=allow_unauthenticated,
                             window_out=str(window_out) if window_out else None, overwrite=overwrite, dump_every_s=dump_every,
                             access_log=access_log,
                             settings={"max_upload_bytes": int(max_upload_mb * (1 << 20)), "max_in_flight": max_in_flight,
                                       "body_timeout_s": body_timeout, "queue_timeout_s": queue_timeout,
                                       "window_size": window, "watts_per_core": watts_per_core,
                                       "refine_head": refine_head})
        serve(model, opts, say=lambda m: typer.echo(f"[serve] {m}", err=True))

    @app.command("monitor")
    def monitor_cmd(
        window: Path = typer.Argument(..., help="A saved window (GET /v1/monitor/window, or pcbm serve --window-out)."),
        out: Path = typer.Option(..., "--out", help="Folder for drift.html, drift.md, drift.json and the plots."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    ) -> None:
        """A drift report (PSI, KS, plane mix; plots, HTML and Markdown) from a saved serving window."""
        from pcbm._io import check_output_dir
        from pcbm.serve.monitor import load_window, render_monitor_report

        check_output_dir(out, "--out", overwrite)
        doc = load_window(window)
        folder = render_monitor_report(doc, out, overwrite=overwrite)
        typer.echo(str(folder / "drift.html"))

    models = typer.Typer(help="The model registry (MLflow; optional: pip install 'pcbm\\[mlflow]'). Tracking server: "
                              "MLFLOW_TRACKING_URI, else SQLite in ~/.cache/pcbm/mlflow.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("register")
    def register_cmd(
        model: str = typer.Argument(..., metavar="PKG|RUN|default", help="A package, or a run / 'default' (exported first)."),
        name: str = typer.Option("pcbm", "--name", help="Registered model name."),
        alias: str = typer.Option(None, "--alias", help="Point this alias (e.g. staging) at the new version."),
    ) -> None:
        """Log the package as an MLflow run (config, metrics, files) and register it as a new version."""
        import shutil

        from pcbm.predictor import package_for
        from pcbm.registry import register

        if model.startswith("models:/"):
            from pcbm.errors import InputError

            raise InputError("give a package, a run folder or 'default' to register")
        package, tmp = package_for(model, lambda m: typer.echo(f"[models] {m}", err=True))
        try:
            out = register(package, name, alias)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        typer.echo(f"registered {out['name']} version {out['version']}" + (f" as @{alias}" if alias else "") +
                   f" (run {out['run_id']}, {out['tracking_uri']})")

    @models.command("list")
    def list_cmd(name: str = typer.Option(None, "--name", help="Only this registered model.")) -> None:
        """Registered versions, newest first, with their aliases and sha256."""
        from pcbm.registry import versions

        for v in versions(name):
            aliases = " ".join(f"@{a}" for a in v["aliases"])
            typer.echo(f"{v['name']}\t{v['version']}\t{aliases or '-'}\tsha256 {str(v['sha256'])[:12]}\t"
                       f"pcbm {v['pcbm_version']}\trun {v['run_id']}")

    @models.command("promote")
    def promote_cmd(
        name: str = typer.Argument(..., help="Registered model name."),
        version: int = typer.Argument(..., min=1, help="The version to point the alias at."),
        alias: str = typer.Option("production", "--alias", help="The alias to move."),
    ) -> None:
        """Point an alias (default: production) at a version; serve it with --model models:/NAME@ALIAS."""
        from pcbm.registry import promote

        promote(name, version, alias)
        typer.echo(f"{name}@{alias} -> version {version}")
