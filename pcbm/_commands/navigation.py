"""``pcbm navigation fit``: fit the probe-move policy on the probe-pose phantom."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    nav = typer.Typer(help="Probe-move hints toward standard planes (pcbm.navigation).", no_args_is_help=True)
    app.add_typer(nav, name="navigation")

    @nav.command("fit")
    def fit_cmd(
        out: Path = typer.Option(..., "--out", help="Policy file to write (JSON; pcbm/navigation/policy.json is the "
                                                    "shipped one)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
        planes: str = typer.Option(None, "--planes", help="Target planes joined by '+' (default: all the pose "
                                                         "phantom knows)."),
        scenes: int = typer.Option(100, "--scenes", min=1, help="Fetuses per plane."),
        poses: int = typer.Option(30, "--poses", min=1, help="Poses per fetus."),
        episodes: int = typer.Option(100, "--episodes", min=1, help="On-policy episodes per plane and round."),
        rounds: int = typer.Option(3, "--rounds", min=0, help="On-policy (DAgger) rounds."),
        size: int = typer.Option(128, "--size", min=48, help="Frame side in px."),
        max_depth: int = typer.Option(10, "--max-depth", min=1, help="Tree depth."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Render probe poses around each standard plane, label each frame with its pose offset, and fit
        a regression tree per plane and pose dimension (scikit-learn at fit time only). The defaults
        rebuild the shipped policy (about 5 min on 2 cores)."""
        from rich.progress import Progress

        from pcbm._io import check_output_file
        from pcbm.data.phantom.pose import POSE_PLANES
        from pcbm.navigation.fit import FitConfig, fit_policy

        check_output_file(out, "--out", overwrite)
        chosen = tuple(planes.split("+")) if planes else POSE_PLANES
        cfg = FitConfig(planes=chosen, scenes=scenes, poses=poses, episodes=episodes, rounds=rounds, size=size,
                        max_depth=max_depth, seed=seed)
        with Progress(transient=True) as bar:
            task = bar.add_task("fitting", total=None)
            policy = fit_policy(cfg, progress=lambda n: bar.advance(task, n))
        policy.save(out)
        sizes = {p: len(t.feature) for p, t in policy.trees.items()}
        typer.echo(json.dumps({"policy": str(out), "nodes": sizes}, indent=2))
