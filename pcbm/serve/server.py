"""Running the service: the model resolved to a package, tokens and exposure checked, uvicorn with
one or several workers, Prometheus multiprocess mode for several, the window dumped periodically.

A run folder or ``default`` is exported once into the package cache (:func:`pcbm.predictor.package_for`:
about 2 minutes for the default model on 2 cores the first time, seconds after) and served from it,
so every worker runs the torch-free runtime.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pcbm.errors import InputError

CONFIG_ENV = "PCBM_SERVE_CONFIG"


@dataclass
class ServerOptions:
    """What ``pcbm serve`` was asked for (besides the model)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int | None = None  # engine threads per worker (default: usable CPUs / workers)
    token_file: str | None = None
    allow_unauthenticated: bool = False
    window_out: str | None = None  # dump the drift window here (JSON) periodically and at exit
    overwrite: bool = False  # replace an existing window_out file (refused otherwise, before the model loads)
    dump_every_s: float = 300.0
    access_log: bool = True
    log_level: str = "info"
    settings: dict[str, Any] = field(default_factory=dict)  # ServeSettings fields (not tokens, not state_dir)


def _settings(opts: ServerOptions, state_dir: str) -> Any:
    from pcbm.serve.auth import load_tokens
    from pcbm.serve.service import ServeSettings

    return ServeSettings(tokens=load_tokens(opts.token_file), state_dir=state_dir, **opts.settings)


def worker_app() -> Any:
    """The app of one uvicorn worker process (``factory=True``), configured by the parent through
    :data:`CONFIG_ENV` (paths and numbers only: the tokens are read again from the file / environment)."""
    from pcbm.runtime import Engine
    from pcbm.serve.app import create_app

    conf = json.loads(os.environ[CONFIG_ENV])
    opts = ServerOptions(**conf["options"])
    return create_app(Engine(conf["package"], threads=conf["threads"]), _settings(opts, conf["window_dir"]))


def _dumper(window_dir: str, size: int, package: Path, out: str, every: float,
            stop: threading.Event) -> threading.Thread:
    """A thread writing the merged window to ``out`` every ``every`` seconds and once more at stop."""
    from pcbm._io import atomic_open
    from pcbm.layout import METADATA, REFERENCE
    from pcbm.serve.window import WindowStore

    meta = json.loads((package / METADATA).read_text())
    ref_path = package / REFERENCE
    reference = json.loads(ref_path.read_text()) if ref_path.is_file() else None
    from pcbm.runtime.verify import package_digest

    model = {"name": meta["model"]["name"], "version": meta.get("pcbm_version"),
             "sha256": meta["model"].get("weights_sha256"), "package_sha256": package_digest(package)}

    def dump() -> None:
        doc = WindowStore(window_dir, size).to_json(reference, model)
        with atomic_open(out) as f:
            json.dump(doc, f)

    def loop() -> None:
        while not stop.wait(every):
            dump()
        dump()

    t = threading.Thread(target=loop, name="pcbm-serve-window-dump", daemon=True)
    t.start()
    return t


@contextlib.contextmanager
def _light_spawn_main() -> Iterator[None]:
    """Spawned workers import the parent's ``__main__`` first. Under the ``pcbm`` console script that
    is ``pcbm.cli``, which imports torch (through ``pcbm.training``) and takes seconds: longer than
    uvicorn's worker health check, and torch in a worker that never needs it. While the workers are
    supervised, ``__main__`` names this torch-free module instead; restored after."""
    main = sys.modules["__main__"]
    saved = main.__dict__.get("__spec__", None)
    main.__spec__ = importlib.util.find_spec(__name__)
    try:
        yield
    finally:
        main.__spec__ = saved


@contextlib.contextmanager
def _clean_exit_on_sigterm() -> Iterator[None]:
    """uvicorn shuts down on SIGTERM and then raises the signal again with the handler it found: the
    default one would kill the process before the ``finally`` that removes the temporary folders and
    saves the window. With this handler the re-raised SIGTERM ends ``serve`` as a normal exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(model: str, opts: ServerOptions, say: Callable[[str], None] = print) -> None:
    """Serve ``model`` until interrupted (see the module docstring).

    Raises:
        InputError: bad tokens, an unsafe exposure, an existing ``--window-out`` without ``--overwrite``,
            a port in use, a model that cannot be found or loaded (all before "serving" is printed).
    """

    from pcbm.serve.auth import check_exposure, load_tokens, token_file_warning

    if opts.workers < 1:
        raise InputError(f"--workers must be at least 1, got {opts.workers}")
    tokens = load_tokens(opts.token_file)
    check_exposure(opts.host, tokens, opts.allow_unauthenticated)
    warning = token_file_warning(opts.token_file)
    if warning:
        say(f"warning: {warning}")
    if opts.window_out:
        from pcbm._io import check_output_file

        check_output_file(opts.window_out, "--window-out", overwrite=opts.overwrite)
    _settings(opts, tempfile.gettempdir())  # every setting checked before the (slow) model
    from pcbm._io import check_port_free

    check_port_free(opts.host, opts.port)  # a port in use: one line now, not an abort after "serving"
    with _clean_exit_on_sigterm():
        _serve(model, opts, tokens, say)


def _serve(model: str, opts: ServerOptions, tokens: tuple[str, ...], say: Callable[[str], None]) -> None:
    import uvicorn

    from pcbm.predictor import package_for
    from pcbm.runtime import Engine, usable_cpus

    package, tmp_model = package_for(model, say)
    state = Path(tempfile.mkdtemp(prefix="pcbm-serve-"))
    stop = threading.Event()
    dumper = None
    try:
        window_dir = state / "window"
        window_dir.mkdir()
        threads = opts.threads or max(1, usable_cpus() // opts.workers)
        engine = Engine(package, threads=threads)  # fails here, once, with a clear error
        if opts.window_out:
            size = int(opts.settings.get("window_size", 1000))
            dumper = _dumper(str(window_dir), size, package, opts.window_out, opts.dump_every_s, stop)
        auth = f"{len(tokens)} bearer token(s)" if tokens else "NO authentication (loopback only)"
        say(f"serving {engine.identity['name']} ({package}) on http://{opts.host}:{opts.port} — {opts.workers} "
            f"worker(s) x {threads} thread(s), {auth}; docs at /docs")
        common = {"host": opts.host, "port": opts.port, "log_level": opts.log_level, "access_log": opts.access_log}
        if opts.workers == 1:
            from pcbm.serve.app import create_app

            app = create_app(engine, _settings(opts, str(window_dir)))
            uvicorn.Server(uvicorn.Config(app, **common)).run()
        else:
            del engine
            prom = state / "prometheus"
            prom.mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)  # before any worker imports prometheus_client
            os.environ[CONFIG_ENV] = json.dumps({"package": str(package), "threads": threads, "window_dir": str(window_dir),
                                                 "options": asdict(opts)})
            with _light_spawn_main():
                uvicorn.run("pcbm.serve.server:worker_app", factory=True, workers=opts.workers,
                            timeout_worker_healthcheck=60, **common)
    finally:
        stop.set()
        if dumper is not None:
            dumper.join(30)
        shutil.rmtree(state, ignore_errors=True)
        if tmp_model is not None:
            shutil.rmtree(tmp_model, ignore_errors=True)
        sys.stdout.flush()
