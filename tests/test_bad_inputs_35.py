"""Issue 35's part of the bad-input corpus (tests/bad_input_corpus_35.py): packages, service uploads,
pixel spacings at every entry point, DICOM headers, the newer commands — each a real check."""

from __future__ import annotations

import pytest
from bad_input_corpus_35 import Bench, probes

PROBES = probes()


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_package):
    b = Bench(tmp_path_factory.mktemp("corpus35"), tiny_package)
    yield b
    b.close()


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_bad_input_35(probe, bench) -> None:
    probe.check(bench)


def test_corpus_35_size() -> None:
    assert len(PROBES) >= 200
    assert {p.category for p in PROBES} >= {"package", "serve upload", "spacing", "dicom header", "newer command"}
