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
        scenes: int = typer.Option(None, "--scenes", min=1, show_default="400", help="Fetuses per plane."),
        poses: int = typer.Option(None, "--poses", min=1, show_default="30", help="Poses per fetus."),
        episodes: int = typer.Option(None, "--episodes", min=1, show_default="300",
                                      help="On-policy episodes per plane and round."),
        rounds: int = typer.Option(None, "--rounds", min=0, show_default="6", help="On-policy (DAgger) rounds."),
        size: int = typer.Option(None, "--size", min=48, show_default="128", help="Frame side in px."),
        max_depth: int = typer.Option(None, "--max-depth", min=1, show_default="14", help="Tree depth."),
        min_samples_leaf: int = typer.Option(None, "--min-samples-leaf", min=1,
                                             show_default="5", help="Fewest training frames a tree's leaf may hold."),
        jobs: int = typer.Option(1, "--jobs", min=1, help="Planes fitted at once, in worker processes (the "
                                                          "policy is the same)."),
        package: Path = typer.Option(None, "--package", help="Read the frames with this exported model package "
                                                             "(pcbm export), as a deployed hint does, instead of "
                                                             "their ground truth; try --size 256 and fewer scenes: "
                                                             "every frame is a prediction."),
        candidates: int = typer.Option(None, "--candidates", min=1, show_default="1",
                                        help="Fits per plane (seeds --seed, --seed + 1, ...); the one whose hints "
                                             "reach the plane most often on validation fetuses is kept."),
        validation_episodes: int = typer.Option(None, "--validation-episodes", min=1, show_default="200",
                                                 help="Closed loops that choose among the candidates."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Render probe poses around each standard plane, label each frame with its pose offset, and fit
        a regression tree per plane and pose dimension (scikit-learn at fit time only), then add the
        frames its own hints visit (DAgger). Fits differ by chance: --candidates N keeps the best of N
        per plane on validation fetuses. The defaults rebuild the shipped policy, whose femur trees are
        what --planes femur --candidates 3 keeps (seed 1) (about 13 min with --jobs 2 on 2 cores)."""
        from rich.progress import Progress

        from pcbm._io import check_output_file
        from pcbm.data.phantom.pose import POSE_PLANES
        from pcbm.navigation.fit import FitConfig, fit_policy

        check_output_file(out, "--out", overwrite)
        if package is not None:
            from pcbm.runtime import Engine

            Engine(package, threads=1)  # a wrong path fails here, with its reason, before any frame is drawn
        chosen = tuple(planes.split("+")) if planes else POSE_PLANES
        given = {"scenes": scenes, "poses": poses, "episodes": episodes, "rounds": rounds, "size": size,
                 "max_depth": max_depth, "min_samples_leaf": min_samples_leaf, "candidates": candidates,
                 "validation_episodes": validation_episodes}
        cfg = FitConfig(planes=chosen, seed=seed, package=None if package is None else str(package),
                        **{k: v for k, v in given.items() if v is not None})
        with Progress(transient=True) as bar:
            task = bar.add_task("fitting", total=None)
            policy = fit_policy(cfg, progress=lambda n: bar.advance(task, n), jobs=jobs)
        policy.save(out)
        sizes = {p: len(t.feature) for p, t in policy.trees.items()}
        typer.echo(json.dumps({"policy": str(out), "nodes": sizes}, indent=2))
