"""`pcbm` with every training schedule shrunk to a few steps on a tiny model: lets a test run the
whole default-model recipe (scripts/train_default.sh) for real in about a minute.

Usage (as the script's PCBM): python tests/_pcbm_shrunk.py train ... / refit ...
"""

from __future__ import annotations

import re
import sys

SET = {"--max-steps": "2", "--per-source": "6", "--epoch-size": "4", "--batch-size": "2", "--workers": "0",
       "--model": "tiny", "--size": "64", "--max-time-min": "5"}


def shrink(argv: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in SET:
            next(it)
            out += [a, SET[a]]
        else:
            out.append(re.sub(r"\bn=\d+", "n=24", a))  # phantom:n=40000,... -> 24 scenes
    if out and out[0] == "train" and "--workers" not in out:
        out += ["--workers", "0"]
    return out


if __name__ == "__main__":
    from pcbm.cli import main

    sys.argv = ["pcbm", *shrink(sys.argv[1:])]
    print("shrunk:", " ".join(sys.argv[1:]), flush=True)
    main()
