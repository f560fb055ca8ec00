"""Bad inputs, interruptions and unwritable outputs: how many gave a traceback, an unclear message,
a wrong exit code, lost or half-written data, or leaked an identifier.

Runs the corpus of ``tests/bad_input_corpus.py`` through ``pcbm.cli.main`` (mounting a read-only
and a full tmpfs where the machine allows), plus a leak scan: ``pcbm data etl --opaque-ids`` and
``pcbm report`` on DICOM files full of identifiers (tags, private tags, sequences, burned-in text
in a top band, in the region's corners and in a region covering the whole frame), every output
file searched for every identifier (text, and the decoded pixels of the text areas).

    python bench/bench_bad_inputs.py [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bad_input_corpus import build_workspace, cases, mounted, run_case  # noqa: E402


def run_corpus(ws: Path) -> list:
    outcomes = []
    for case in cases():
        if case.needs:
            options = {"ro": "ro,size=1m", "full": "size=8k"}[case.needs]
            with mounted(ws, case.needs, options) as where:
                if where is None:
                    print(f"skipped (cannot mount): {case.name}")
                    continue
                outcomes.append(run_case(case, ws))
        else:
            outcomes.append(run_case(case, ws))
    return outcomes


def leak_scan(root: Path) -> dict:
    """Identifiers found in the outputs of etl --opaque-ids and report on PHI-laden DICOMs."""
    from dicom_leaks import scan_outputs, write_phi_dicoms

    from pcbm.cli import main

    src = write_phi_dicoms(root / "phi")
    etl_out, rep_out = root / "etl_out", root / "report_out"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for argv in (["data", "etl", str(src), "--out", str(etl_out), "--salt", "bench-salt", "--opaque-ids",
                      "--no-progress"],
                     ["report", "default", *map(str, sorted(src.rglob("*.dcm"))), "--out", str(rep_out),
                      "--formats", "html,json,md,png", "--heatmap", "none"]):
            sys.argv = ["pcbm", *argv]
            with contextlib.suppress(Exception, SystemExit):  # a crash here shows in what the scan finds
                main()
    return scan_outputs([etl_out, rep_out], src)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ws = build_workspace(Path(tmp) / "ws")
        outcomes = run_corpus(ws)
        leaks = leak_scan(Path(tmp))
    by_cat: dict[str, Counter] = {}
    for o in outcomes:
        c = by_cat.setdefault(o.case.category, Counter())
        c["tried"] += 1
        c["traceback"] += o.traceback is not None
        c["wrong exit"] += o.traceback is None and not o.ok_exit
        c["unclear message"] += o.traceback is None and not o.ok_message
        c["data lost or half-written"] += bool(o.changed)
    total = sum(by_cat.values(), Counter())
    cols = ("tried", "traceback", "wrong exit", "unclear message", "data lost or half-written")
    print("| category | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for cat, c in sorted(by_cat.items()):
        print(f"| {cat} | " + " | ".join(str(c[k]) for k in cols) + " |")
    print("| **all** | " + " | ".join(f"**{total[k]}**" for k in cols) + " |")
    print(f"leak scan: {leaks['files']} output files, {leaks['identifiers']} identifiers searched, "
          f"{len(leaks['found'])} found {leaks['found'][:5]}")
    for o in outcomes:
        if not o.ok:
            print("---", o.describe()[:1500])
    print(f"{time.perf_counter() - t0:.0f} s on {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}")
    if args.json:
        args.json.write_text(json.dumps({"by_category": {k: dict(v) for k, v in by_cat.items()},
                                         "total": dict(total), "leaks": leaks}, indent=2))


if __name__ == "__main__":
    main()
