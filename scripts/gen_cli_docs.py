"""Write docs/cli.md, the CLI reference, from the typer app ``pcbm.cli.app``.

Typer's own generator (``python -m typer pcbm.cli utils docs``) writes every command's usage,
arguments and options; this script runs it and adds a header. ``tests/test_docs.py`` compares the
committed file with a fresh generation, so a command or option changed without rerunning this fails
the tests.

    .venv/bin/python scripts/gen_cli_docs.py            # rewrite docs/cli.md
    .venv/bin/python scripts/gen_cli_docs.py --check    # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI_MD = REPO / "docs" / "cli.md"

HEADER = (
    "<!-- Generated from the typer app (pcbm/cli.py) by scripts/gen_cli_docs.py: do not edit by hand.\n"
    "     tests/test_docs.py fails when this file differs from a fresh generation. -->\n\n"
)


def generate() -> str:
    """The CLI reference as Markdown: typer's ``utils docs`` output under a header."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "typer", "pcbm.cli", "utils", "docs", "--name", "pcbm", "--title", "CLI reference"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"typer's docs generator failed (exit {proc.returncode}):\n{proc.stderr}")
    # typer passes help text through rich's HTML export, which writes apostrophes as &#x27;
    text = proc.stdout.strip().replace("&#x27;", "'")
    return HEADER + text + "\n"


def main(argv: list[str]) -> int:
    fresh = generate()
    if "--check" in argv:
        if not CLI_MD.exists() or CLI_MD.read_text(encoding="utf-8") != fresh:
            print(f"stale CLI reference {CLI_MD.relative_to(REPO)}: run scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    CLI_MD.write_text(fresh, encoding="utf-8")
    print(f"wrote {CLI_MD.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
