"""Issue 35, deliverables 4 and 7: nothing a user made is lost, a full disk during a live recording
keeps what was complete, and the newer commands' bad inputs are one line and exit 2 before any long
work (a port in use, a GPU that is not there, an unknown encoder, a bare train-head, …)."""

from __future__ import annotations

import errno
import json
import socket

import cv2
import numpy as np
import pytest

from pcbm.cli import main


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def _one_line_error(code: int, text: str, pattern: str) -> None:
    import re

    assert code == 2, text
    assert "Traceback" not in text, text
    assert re.search(pattern, text, re.IGNORECASE), text


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_serve_on_a_port_in_use_is_one_line_before_the_model(busy_port, capsys) -> None:
    code, text = _run(["serve", "--allow-unauthenticated", "--port", str(busy_port)], capsys)
    _one_line_error(code, text, rf"{busy_port}.*already in use")
    assert "serving" not in text


def test_live_on_a_port_in_use(busy_port, tmp_path, capsys) -> None:
    code, text = _run(["live", "--allow-unauthenticated", "--port", str(busy_port), "--session",
                       str(tmp_path / "s")], capsys)
    _one_line_error(code, text, r"already in use")
    assert not (tmp_path / "s").exists()


def test_serve_window_out_refuses_an_existing_file(tmp_path, capsys) -> None:
    mine = tmp_path / "window.json"
    mine.write_text("my window\n")
    code, text = _run(["serve", "--allow-unauthenticated", "--port", "1", "--window-out", str(mine)], capsys)
    _one_line_error(code, text, r"already exists.*--overwrite")
    assert mine.read_text() == "my window\n"


def test_serve_window_out_overwrite_goes_on_to_the_next_check(tmp_path, busy_port, capsys) -> None:
    mine = tmp_path / "window.json"
    mine.write_text("my window\n")
    code, text = _run(["serve", "--allow-unauthenticated", "--port", str(busy_port), "--window-out", str(mine),
                       "--overwrite"], capsys)
    _one_line_error(code, text, r"already in use")  # --window-out accepted; the port is the next refusal


@pytest.mark.parametrize("case, pattern", [
    ("folder", r"is a folder"),
    ("under_a_file", r"is a file, not a folder"),
    ("existing", r"exists.*--overwrite"),
])
def test_calibrate_checks_its_output_before_the_model(case, pattern, tmp_path, capsys, monkeypatch) -> None:
    import pcbm.models

    monkeypatch.setattr(pcbm.models, "load_model", lambda *a, **k: pytest.fail("calibration started"))
    (tmp_path / "notes.txt").write_text("mine")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "notes.txt" / "r.json",
           "existing": tmp_path / "notes.txt"}[case]
    argv = ["calibrate", "default", "--data", "phantom:n=4", "--out", str(out)]
    code, text = _run(argv + (["--overwrite"] if case == "folder" else []), capsys)
    _one_line_error(code, text, pattern)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bare_train_head_does_not_start_training(capsys, monkeypatch) -> None:
    import pcbm.training.head_refiner as hr

    monkeypatch.setattr(hr, "train_refiner", lambda *a, **k: pytest.fail("training started"))
    code, text = _run(["train-head"], capsys)
    _one_line_error(code, text, r"--out")


def test_train_head_unknown_encoder(tmp_path, capsys, monkeypatch) -> None:
    import pcbm.data

    monkeypatch.setattr(pcbm.data, "open_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, text = _run(["train-head", "--encoder", "resnet1", "--out", str(tmp_path / "h")], capsys)
    _one_line_error(code, text, r"unknown encoder 'resnet1'; did you mean 'resnet18'")


@pytest.mark.parametrize("extra, pattern", [
    (["--folds", "10"], r"--folds 10 needs a class with at least 10 subjects"),
    (["--lr", "nan"], r"--lr"),
    (["--devices", "abc"], r"--devices 'abc'"),
    (["--accelerator", "gpu", "--devices", "99"], r"GPU"),
    (["--accelerator", "tpu"], r"accelerator 'tpu'"),
    (["--batch-size", "0"], r"--batch-size"),
])
def test_bench_backbones_bad_settings(extra, pattern, tmp_path, capsys) -> None:
    code, text = _run(["bench", "backbones", "--data", "phantom:n=12,size=64", "--out", str(tmp_path / "b"),
                       "--protocol", "linear", *extra], capsys)
    _one_line_error(code, text, pattern)
    assert not (tmp_path / "b").exists()


def test_train_accelerator_gpu_without_one(tmp_path, capsys, monkeypatch) -> None:
    import torch

    import pcbm.training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(pcbm.training, "train", lambda *a, **k: pytest.fail("training started"))
    code, text = _run(["train", "--data", "phantom:n=8", "--model", "tiny", "--accelerator", "gpu", "--out",
                       str(tmp_path / "r")], capsys)
    _one_line_error(code, text, r"--accelerator gpu: no GPU")


def _window(ref: object) -> dict:
    return {"kind": "pcbm serve window", "planes": [], "values": {}, "reference": ref}


@pytest.mark.parametrize("ref, pattern", [
    ({"concepts": {"hc_mm": {"deciles": [1, "x"]}}}, r"concepts\.hc_mm\.deciles"),
    ({"concepts": {"hc_mm": {"deciles": list(range(11))[::-1]}}}, r"must not decrease"),
    ({"concepts": {"csp_visible": {"histogram": {"edges": [0, 1], "counts": [1, 2, 3]}}}}, r"histogram\.counts"),
    ({"concepts": ["hc_mm"]}, r"concepts must be an object"),
    ({"plane_mix": {"femur": "lots"}}, r"plane_mix"),
    (["not", "an", "object"], r"must be an object"),
])
def test_monitor_malformed_reference(ref, pattern, tmp_path, capsys) -> None:
    w = tmp_path / "w.json"
    w.write_text(json.dumps(_window(ref)))
    code, text = _run(["monitor", str(w), "--out", str(tmp_path / "report")], capsys)
    _one_line_error(code, text, pattern)
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("source, pattern", [("text", r"gives no frame|cannot open"), ("camera:99", r"camera:99")])
def test_live_source_that_gives_no_frame(source, pattern, tmp_path, capsys) -> None:
    if source == "text":
        source = str(tmp_path / "notes.mp4")
        (tmp_path / "notes.mp4").write_text("not a video\n")
    code, text = _run(["live", "--allow-unauthenticated", "--port", _free_port(), "--source", source, "--session",
                       str(tmp_path / "s")], capsys)
    _one_line_error(code, text, pattern)


def test_live_record_onto_a_file(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, text = _run(["live", "--allow-unauthenticated", "--port", _free_port(), "--record", str(tmp_path / "notes.txt")],
                      capsys)
    _one_line_error(code, text, r"--record .* is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---- a full disk while recording ------------------------------------------------------------------


class _FillingWriter:
    """cv2.VideoWriter that runs out of disk after ``limit`` frames (OSError ENOSPC), as a full disk does."""

    limit = 20

    def __init__(self, *args, **kwargs):
        self._real = _REAL_WRITER(*args, **kwargs)
        self.n = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._real.isOpened()

    def write(self, image) -> None:
        if self.n >= self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real.write(image)
        self.n += 1

    def release(self) -> None:
        self._real.release()


_REAL_WRITER = cv2.VideoWriter


def test_recorder_full_disk_keeps_the_complete_frames(tmp_path, monkeypatch, caplog) -> None:
    from pcbm.live.recorder import Recorder
    from pcbm.live.slot import FrameSlot

    monkeypatch.setattr(cv2, "VideoWriter", _FillingWriter)
    rec = Recorder(tmp_path, fps=10, raw=True)
    frames = [np.full((64, 80), 10 * (i % 20), np.uint8) for i in range(50)]
    with caplog.at_level("ERROR"):
        for i, f in enumerate(frames):
            rec.add(f, i + 1, 1000.0 + i / 10)
        path = rec.close()
    assert rec.written == 20 and rec.errno == errno.ENOSPC
    assert rec.error == "recording stopped at frame 20: disk full"
    assert "recording stopped at frame 20: disk full" in caplog.text
    assert path == tmp_path / "recording.mp4" and not (tmp_path / "recording.partial.mp4").exists()
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 20  # closed at the last good frame, and it plays
    meta = json.loads((tmp_path / "recording.json").read_text())
    assert meta["frames"] == 20 and meta["stopped"] == rec.error and meta["file"] == "recording.mp4"
    rec.add(frames[0], 99, 0.0)  # capture goes on after the error: nothing queued, nothing raised

    slot = FrameSlot.create(max_pixels=64 * 80)  # what the supervisor reads, and the summary shows
    try:
        slot.count(recorded=rec.written, record_errno=rec.errno)
        assert slot.stats()["recording_stopped"] == "recording stopped at frame 20: disk full"
    finally:
        slot.close(unlink=True)


def test_session_files_on_a_full_disk_never_stop_the_page(tmp_path, monkeypatch, caplog) -> None:
    import pcbm.live.session as session
    from pcbm.live.session import Hub

    hub = Hub(tmp_path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(session, "atomic_open", full)
    with caplog.at_level("ERROR"):
        assert hub._write(tmp_path / "gallery" / "a.png", b"x") is False
        assert hub._write(tmp_path / "timeline.csv", "x") is False
    assert hub.write_errors == 2 and "disk full" in hub.write_error
    assert caplog.text.count("disk full") == 1  # logged once, counted after


@pytest.mark.slow
def test_live_with_a_corrupt_model_exits_2_and_leaves_no_session(tmp_path, capsys) -> None:
    run = tmp_path / "garbage"
    run.mkdir()
    (run / "model.pt").write_bytes(b"not a checkpoint")
    code, text = _run(["live", "--allow-unauthenticated", "--port", _free_port(), "--model", str(run), "--session",
                       str(tmp_path / "s"), "--duration", "5"], capsys)
    _one_line_error(code, text, r"--model .*garbage: cannot be used")
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
