"""The bad-input corpus (tests/bad_input_corpus.py): no traceback, a message that names the problem,
a non-zero exit, nothing a user made lost or half-written — for every case."""

from __future__ import annotations

import pytest
from bad_input_corpus import build_workspace, cases, mounted, run_case

CASES = cases()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("corpus"))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, workspace) -> None:
    if case.needs:
        options = {"ro": "ro,size=1m", "full": "size=8k"}[case.needs]
        with mounted(workspace, case.needs, options) as where:
            if where is None:
                pytest.skip("this machine does not allow mounting a tmpfs (read-only / full disk cases)")
            outcome = run_case(case, workspace)
    else:
        outcome = run_case(case, workspace)
    assert outcome.ok, outcome.describe()


def test_corpus_covers_the_issue_categories() -> None:
    cats = {c.category for c in CASES}
    assert cats >= {"usage", "bad number", "image", "csv", "spec", "dicom", "run folder", "output"}
    assert all(0 not in c.exit for c in CASES)  # a bad input never exits 0
    assert len({c.name for c in CASES}) == len(CASES)
