"""Run folders: built aside and renamed when whole, never mixed with or replacing a user's folder;
Ctrl-C keeps a checkpoint that --resume continues; a partial or damaged run is one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from pcbm.errors import InputError
from pcbm.models import build_model, load_model, save_model
from pcbm.training import TrainConfig, resume, train
from pcbm.training.module import PCBMTrainingModule
from pcbm.training.runs import CHECKPOINT, TrainingInterrupted, staging_path

DATA = "phantom:n=16,size=64"


def _cfg(out: Path, **kw) -> TrainConfig:
    base = {"data": (DATA,), "model": "tiny", "size": 64, "max_steps": 3, "batch_size": 4, "workers": 0,
            "out": str(out), "eval_limit": 2, "progress": False, "threads": 1, "val_batches": 1}
    return TrainConfig(**{**base, **kw})


def _user_run(path: Path) -> dict[str, bytes]:
    """A finished run of the user's: its files' bytes, to check later that nothing changed."""
    path.mkdir(parents=True)
    save_model(build_model("tiny"), path)
    (path / "config.json").write_text('{"model": {}, "note": "the user\'s"}\n')
    (path / "NOTES.txt").write_text("mine\n")
    return {p.name: p.read_bytes() for p in path.iterdir()}


@pytest.fixture
def interrupt_at(monkeypatch):
    """Make training raise KeyboardInterrupt (as Ctrl-C does) before the batch after ``step`` steps."""

    def arm(step: int) -> None:
        def hook(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            if self.global_step >= step:
                raise KeyboardInterrupt

        monkeypatch.setattr(PCBMTrainingModule, "on_train_batch_start", hook, raising=False)

    yield arm
    monkeypatch.undo()


def test_out_is_checked_before_any_work(tmp_path) -> None:
    user = tmp_path / "user_run"
    before = _user_run(user)
    bad_data = ("hc18:/nonexistent/hc18",)  # would fail at loading: the output check must come first
    with pytest.raises(InputError, match="not empty.*--overwrite"):
        train(_cfg(user, data=bad_data))
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before
    assert not staging_path(user).exists()
    with pytest.raises(InputError, match="is a file"):
        train(_cfg(user / "NOTES.txt", data=bad_data))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(InputError, match="not writable"):
                train(_cfg(ro / "run", data=bad_data))
        finally:
            ro.chmod(0o700)


def test_a_failed_start_leaves_nothing(tmp_path) -> None:
    out = tmp_path / "run"
    with pytest.raises(InputError):
        train(_cfg(out, data=("hc18:/nonexistent/hc18",)))
    assert not out.exists() and not staging_path(out).exists()


def test_interrupt_keeps_a_checkpoint_and_resume_finishes(tmp_path, interrupt_at, capsys) -> None:
    from pcbm.cli import main

    out = tmp_path / "run"
    interrupt_at(4)
    with pytest.raises(TrainingInterrupted, match=r"step 4.*run\.partial.*--resume") as e:
        train(_cfg(out, max_steps=6))
    stage = staging_path(out)
    assert e.value.staging == stage and not out.exists()
    assert (stage / CHECKPOINT).is_file() and (stage / "logs" / "metrics.csv").is_file()
    saved = json.loads((stage / "config.json").read_text())
    assert saved["status"] == "partial" and saved["train"]["max_steps"] == 6
    assert torch.load(stage / CHECKPOINT, weights_only=True)["global_step"] == 4

    # the partial run is named as such, everywhere
    for ref in (out, stage):
        with pytest.raises(InputError, match=rf"interrupted run.*pcbm train --resume {out}"):
            load_model(ref)
    with pytest.raises(InputError, match=r"interrupted run of it is in .*run\.partial.*--resume"):
        train(_cfg(out))
    with pytest.raises(InputError, match="--lr cannot be changed"):
        resume(out, lr=1e-3)
    with pytest.raises(SystemExit) as ex:
        main(["train", "--resume", str(out), "--data", DATA])
    assert ex.value.code == 2 and "--data cannot be changed" in capsys.readouterr().err
    assert (stage / CHECKPOINT).is_file()

    # the CLI: Ctrl-C again is one line and exit 130; the checkpoint stays
    with pytest.raises(SystemExit) as ex:
        main(["train", "--resume", str(out)])
    err = capsys.readouterr().err
    assert ex.value.code == 130 and "resume with: pcbm train --resume" in err and "Traceback" not in err

    interrupt_at(10**6)
    run = resume(out, max_steps=8)  # a longer schedule than the one it started: stretched, not an error
    conf = json.loads((run / "config.json").read_text())
    assert conf["steps"] == 8 and conf["resumed_at_steps"] == [4, 4] and conf["train"]["max_steps"] == 8
    assert "status" not in conf and conf["train_images"] == 8 * 4
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "logs", "metrics.json", "model.pt"]
    assert not stage.exists()
    steps = [int(r.split(",")[1]) for r in (run / "logs" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps and steps == sorted(steps) and steps[0] < 4 < steps[-1]  # both sessions' rows, in order
    load_model(run)
    with pytest.raises(InputError, match="complete.*--init"):
        resume(out)


def test_overwrite_replaces_only_when_complete(tmp_path, interrupt_at) -> None:
    out = tmp_path / "run"
    before = _user_run(out)
    interrupt_at(2)
    with pytest.raises(TrainingInterrupted):
        train(_cfg(out), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # interrupted: the old run is whole
    interrupt_at(10**6)
    resume(out)  # started with --overwrite: replaces the old run now that the new one is complete
    assert json.loads((out / "config.json").read_text())["steps"] == 3
    assert not (out / "NOTES.txt").exists() and not staging_path(out).exists()


def test_interrupt_before_the_first_step_keeps_nothing(tmp_path, interrupt_at) -> None:
    out = tmp_path / "run"
    interrupt_at(0)
    with pytest.raises(TrainingInterrupted, match="before the first"):
        train(_cfg(out))
    assert not out.exists() and not staging_path(out).exists()


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "bad_config", "a_file", "config_only",
                                    "nonexistent"])
def test_damaged_run_is_one_clear_line(tmp_path, damage) -> None:
    run = tmp_path / damage
    if damage != "nonexistent":
        _user_run(run)
    model = run / "model.pt"
    if damage in ("missing", "config_only"):
        model.unlink()
    elif damage == "truncated":
        model.write_bytes(model.read_bytes()[:1000])
    elif damage == "garbage":
        model.write_bytes(b"not a model at all")
    elif damage == "bad_config":
        (run / "config.json").write_text("{ not json")
    elif damage == "a_file":
        for p in run.iterdir():
            p.unlink()
        run.rmdir()
        run.write_text("x")
    what = {"missing": "no model", "config_only": "no model", "truncated": "truncated", "garbage": "not a pcbm model",
            "bad_config": "config.json", "a_file": "is a file", "nonexistent": "does not exist"}[damage]
    with pytest.raises(InputError, match=what) as e:
        load_model(run)
    assert str(run) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_real_ctrl_c_through_the_cli(tmp_path) -> None:
    """SIGINT to a training `pcbm train`: exit 130, one line saying where and how to resume, a checkpoint kept."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pcbm", "train", "--data", DATA, "--model", "tiny", "--size", "64", "--batch-size",
           "4", "--workers", "0", "--max-steps", "100000", "--checkpoint-every", "1", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = staging_path(out) / CHECKPOINT
    deadline = time.monotonic() + 120
    while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: pcbm train --resume {out}" in err and "Traceback" not in err
    assert ckpt.is_file() and not out.exists()
