"""Contact sheet: every plane, standard and breaking each criterion in turn, with mask overlays.

Example:
    >>> contact_sheet("/tmp/sheet.png", size=96)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pcbm.concepts.ontology import PLANE_NAMES, VISUAL_CONCEPTS
from pcbm.data.phantom.dataset import make_sample
from pcbm.data.phantom.scene import breakable
from pcbm.data.sample import Sample


def contact_sheet_samples(style: str = "default", seed: int = 0, size: int = 192) -> list[list[Sample]]:
    """Rows of samples, one row per plane: the standard scene, then one scene per breakable criterion."""
    rows = []
    for r, plane in enumerate(PLANE_NAMES):
        options: list[str | None] = [None, *breakable(plane)]
        rows.append([make_sample(seed, 1000 * r + k, style, size, plane=plane, broken=b) for k, b in enumerate(options)])
    return rows


def contact_sheet(out: str | os.PathLike[str], style: str = "default", seed: int = 0, size: int = 192) -> Path:
    """Write the contact sheet PNG atomically: image and overlay per scene, the broken criterion in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from pcbm._io import atomic_path
    from pcbm.data.summary import overlay

    rows = contact_sheet_samples(style, seed, size)
    ncol = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.9 * ncol, 1.75 * len(rows) + 0.8), squeeze=False)
    for r, samples in enumerate(rows):
        for k in range(ncol):
            ax = axes[r][k]
            ax.axis("off")
            if k >= len(samples):
                continue
            s = samples[k]
            ax.imshow(np.hstack([np.repeat(s.image[..., None], 3, 2), overlay(s, alpha=0.35)]))
            verdict = "standard" if s.standard else ("other" if s.plane == "other" else f"✗ {s.meta['broken']}")
            ax.set_title(f"{s.plane}\n{verdict}", fontsize=7, color="black" if s.standard else "firebrick")
    handles = [Patch(color=np.array(c.color) / 255, label=c.name) for c in VISUAL_CONCEPTS]
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=7, frameon=False)
    fig.suptitle(f"pcbm phantom — style {style!r}, seed {seed}: image | masks; title = plane and broken criterion",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(out)
