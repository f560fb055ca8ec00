"""Regenerate ``tests/golden/golden.json`` from the default model — only when a change of output is
intended (new weights, a fixed bug), and say so in the commit.

    HF_HUB_OFFLINE=1 .venv/bin/python tests/golden/make_golden.py

Warns about a case near a decision boundary (top two planes within 0.05, or the top probability
within 0.03 of the model's min_confidence), where the tolerances could flip plane or status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_cases import GOLDEN, PROB_TOL, cases, summary  # noqa: E402


def main() -> None:
    from pcbm import __version__
    from pcbm.models import load_model, predict

    model, _ = load_model("default")
    rows = cases()
    if not any(name.startswith("hc18:") for name, _, _ in rows):
        sys.exit("HC18 not found (../shared/data/hc18 or $PCBM_HC18): the golden set needs its 4 images")
    preds = predict(model, [im for _, im, _ in rows], [sp for _, _, sp in rows], names=[n for n, _, _ in rows])
    out = {"model": model.identity, "pcbm_version": __version__, "tolerances": {"plane_probs_abs": PROB_TOL,
           "hc_mm": "max(1 mm, 1 %)"}, "cases": {}}
    for (name, _, _), p in zip(rows, preds, strict=True):
        s = summary(p)
        top = sorted(s["plane_probs"].values(), reverse=True)
        if top[0] - top[1] < 0.05 or abs(top[0] - float(model.config.min_confidence)) < 0.03:
            print(f"warning: {name} is near a decision boundary ({top[:2]})", file=sys.stderr)
        out["cases"][name] = s
        print(name, s["plane"], s["status"], s["hc_mm"])
    GOLDEN.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
