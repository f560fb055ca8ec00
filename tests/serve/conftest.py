"""A tiny model package for the service tests (built once per session: ~10 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TOKEN = "t" * 40


@pytest.fixture(scope="session")
def package(make_tiny_package) -> Path:
    return make_tiny_package(8)


@pytest.fixture(scope="session")
def engine(package):
    from pcbm.runtime import Engine

    return Engine(package, threads=1)


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def phantom_png() -> bytes:
    from pcbm.data import open_dataset

    return png_bytes(open_dataset("phantom:n=1,seed=3,size=128")[0].image)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_client(engine, **settings):
    """A TestClient of a new app (entered: lifespan run, warmed up)."""
    import time

    from fastapi.testclient import TestClient

    from pcbm.serve.app import create_app
    from pcbm.serve.service import ServeSettings

    settings.setdefault("tokens", (TOKEN,))
    client = TestClient(create_app(engine, ServeSettings(**settings)))
    client.__enter__()
    for _ in range(300):
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.02)
    return client


@pytest.fixture(scope="module")
def client(engine):
    c = make_client(engine, window_size=200)
    yield c
    c.__exit__(None, None, None)


def upload(data: bytes, ctype: str = "image/png", name: str = "scan.png") -> dict:
    return {"image": (name, data, ctype)}
