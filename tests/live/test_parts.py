"""The live loop's parts on their own: the latest-frame slot, sources, the recorder, smoothing."""

from __future__ import annotations

import csv
import threading
import time

import cv2
import numpy as np
import pytest

from pcbm.errors import InputError
from pcbm.live.recorder import Recorder
from pcbm.live.slot import FrameSlot
from pcbm.live.smooth import StatusSmoother, plain_missing, view
from pcbm.live.sources import PhantomSweepSource, open_source, parse_source


def test_slot_keeps_only_the_latest_frame():
    slot = FrameSlot.create(max_pixels=32 * 32)
    try:
        assert slot.read(after=0) is None
        for seq in range(1, 6):
            slot.write(np.full((16, 20), seq, np.uint8), seq, captured_at=100.0 + seq, pixel_spacing_mm=0.2,
                       truth={"plane": "femur", "seq": seq})
        f = slot.read(after=0)  # a slow reader gets the newest, never a backlog
        assert (f.seq, f.image.shape, int(f.image.max()), f.captured_at) == (5, (16, 20), 5, 105.0)
        assert f.truth == {"plane": "femur", "seq": 5} and f.pixel_spacing_mm == pytest.approx(0.2)
        assert slot.read(after=5) is None
        other = FrameSlot.attach(slot.name)  # another process's view of the same memory
        slot.write(np.zeros((4, 4), np.uint8), 6, 1.0)
        g = other.read(after=5)
        assert g.seq == 6 and g.pixel_spacing_mm is None and g.truth is None
        other.close()
        with pytest.raises(ValueError, match="larger than the slot"):
            slot.write(np.zeros((64, 64), np.uint8), 7, 1.0)
    finally:
        slot.close(unlink=True)


def test_slot_reader_never_sees_a_torn_frame():
    slot = FrameSlot.create(max_pixels=256 * 256)
    stop, torn, reads = threading.Event(), [], [0]

    def writer():
        seq = 0
        while not stop.is_set():
            seq += 1
            slot.write(np.full((256, 256), seq % 251, np.uint8), seq, float(seq))

    def reader():
        last = 0
        while not stop.is_set():
            f = slot.read(after=last)
            if f is not None:
                reads[0] += 1
                last = f.seq
                if f.image.min() != f.image.max() or int(f.image[0, 0]) != f.seq % 251:
                    torn.append(f.seq)

    ts = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in ts:
        t.join()
    slot.close(unlink=True)
    assert reads[0] > 10 and not torn


def test_source_specs_parse_or_say_why(tmp_path):
    s = parse_source("phantom-sweep:fps=15,frames=20,hold=0.5")
    assert s.kind == "phantom-sweep" and s.options == {"fps": "15", "frames": "20", "hold": "0.5"} and not s.live
    assert parse_source("camera:0").kind == "camera" and parse_source("camera:0").live
    assert parse_source("rtsp://10.0.0.5/stream").kind == "stream"
    for bad, why in [("phantom-sweep:speed=3", "bad phantom-sweep option"), ("phantom-sweep:fps=x", "must be a float"),
                     ("camera:front", "device index"), ("gopher://x", "unknown stream scheme"),
                     (str(tmp_path / "none.mp4"), "is not a file"), ("", "empty source"),
                     ("phantom-sweep:fps=0", "fps > 0")]:
        with pytest.raises(InputError, match=why):
            parse_source(bad)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="cannot open the video file"):
        open_source(str(tmp_path / "junk.mp4"))


def test_phantom_sweep_source_has_truth_and_frozen_holds():
    src = PhantomSweepSource(parse_source("phantom-sweep:fps=1000,frames=14,size=96,hold=0.004,loop=0"))
    frames = list(src.frames())
    assert len(frames) == len(src) == 14 + 7 * 4  # 7 planes, 4 frozen frames each at 1000 fps
    frozen = [t for _, t in frames if t["frozen"]]
    assert len(frozen) == 28 and {t["status"] for _, t in frames} <= {"standard", "close_to_standard", "not_a_known_plane"}
    i = next(i for i, (_, t) in enumerate(frames) if t["frozen"])
    assert np.array_equal(frames[i][0], frames[i - 1][0])  # a frozen screen repeats the frame exactly
    assert all(t["pixel_spacing_mm"] > 0 for _, t in frames)


def test_file_source_plays_a_video(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 200, (64, 48))
    for k in range(12):
        w.write(np.full((48, 64, 3), k * 20, np.uint8))
    w.release()
    src = open_source(str(path))
    got = list(src.frames())
    src.close()
    assert len(got) == 12 and got[0][0].shape == (48, 64) and got[0][0].dtype == np.uint8 and got[0][1] is None


def _frames(n: int = 20) -> list[np.ndarray]:
    frames = []
    for s in PhantomSweepSource(parse_source(f"phantom-sweep:frames={n},size=256,loop=0"))._frames:
        frames.append(s[0].copy())  # the phantom burns the scanner's text in above the fan, top left
        if len(frames) == n:
            break
    return frames


def test_recorder_lossless_keeps_every_frame_bit_for_bit(tmp_path):
    frames = _frames()
    rec = Recorder(tmp_path, fps=30, fmt="lossless", raw=True)
    for k, im in enumerate(frames):
        rec.add(im, seq=100 + k, captured_at=1000.0 + k / 30)
    path = rec.close()
    assert path.name == "recording.mkv" and not list(tmp_path.glob("*.partial*"))
    cap = cv2.VideoCapture(str(path))
    back = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        back.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    assert len(back) == len(frames) and all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    rows = list(csv.DictReader(open(rec.timestamps)))
    assert [int(r["seq"]) for r in rows] == list(range(100, 120)) and float(rows[-1]["t"]) == pytest.approx(19 / 30)
    again = Recorder(tmp_path, fps=30, fmt="lossless")  # a second recording never overwrites the first
    again.close()
    assert again.path.name == "recording_001.mkv"


def test_recorder_masks_burned_in_text_by_default(tmp_path):
    frames = _frames()
    rec = Recorder(tmp_path, fps=30, fmt="lossless")
    for k, im in enumerate(frames):
        rec.add(im, k + 1, float(k))
    path = rec.close()
    assert rec.masked == "sector"
    cap = cv2.VideoCapture(str(path))
    ok, f = cap.read()
    assert ok
    f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
    assert frames[0][:20, :60].max() > 150 and f[:20, :60].max() == 0  # the text is gone
    inside = frames[0] > 40
    assert np.mean(f[inside] == frames[0][inside]) > 0.95  # the scan is kept


def test_smoother_stops_flicker_and_words_are_isuog():
    s = StatusSmoother(5)
    shown = [s.update(p, st) for p, st in [("femur", "standard")] * 3 + [("femur", "close_to_standard")]
             + [("abdomen", "standard")] + [("femur", "standard")]]
    assert all(x == ("femur", "standard") for x in shown)
    flipped = [s.update("abdomen", "close_to_standard") for _ in range(4)]
    assert flipped[-1] == ("abdomen", "close_to_standard")
    assert plain_missing(["csp_visible"]) == ["cavum septi pellucidi visible"]
    pred = {"plane": "femur", "status": "standard", "plane_probs": {"femur": 0.9}, "missing_criteria": [],
            "measurements": {"fl": {"value": 41.23, "unit": "mm"}}, "status_reason": None}
    v = view(pred, ("femur", "standard"))
    assert v["measurements"] == {"FL": "41.2 mm"} and v["status_words"] == "Standard plane" and v["confidence"] == 0.9
    assert view({**pred, "status": "close_to_standard"}, ("femur", "close_to_standard"))["measurements"] == {}


def test_capture_reopens_a_source_that_is_not_there():
    from pcbm.live.worker import capture_main

    slot = FrameSlot.create(max_pixels=64)
    stop = threading.Event()
    t = threading.Thread(target=capture_main, args=("camera:97", slot.name, stop, None, 0, 3, None))
    t.start()
    t0 = time.time()
    while slot.stats()["source_reopened"] < 2 and time.time() - t0 < 20:
        time.sleep(0.05)
    stats = slot.stats()
    stop.set()
    t.join(10)
    assert stats["source_state"] == "reopening" and stats["source_reopened"] >= 2
    assert slot.stats()["source_state"] == "ended"
    slot.close(unlink=True)
