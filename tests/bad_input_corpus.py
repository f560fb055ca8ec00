"""A corpus of bad inputs, interruptions and unwritable outputs, run through the real CLI entry point.

Each :class:`Case` is a command line against a workspace of files the corpus makes itself (broken
images, malformed CSVs, corrupt DICOMs, corrupt run folders, a user's folder that must survive, a
read-only and a full file system where the machine allows mounting them). :func:`run_case` runs
``pcbm.cli.main(argv)`` in-process and says whether it printed a traceback, whether the exit code
and the message were as expected, and whether any file of the workspace changed or appeared
(data lost or half-written). ``tests/test_bad_inputs.py`` runs every case;
``bench/bench_bad_inputs.py`` counts them for bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SALT = "corpus-secret-salt"


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the exit codes allowed, and what the message must name."""

    name: str
    category: str
    argv: Callable[[Path], list[str]]
    exit: tuple[int, ...]  # allowed exit codes (never 0 for a failure)
    message: str  # a regular expression the output must match (names the problem)
    writes: tuple[str, ...] = ()  # workspace-relative paths the command may create (successful parts)
    needs: str | None = None  # "mount": needs a mountable tmpfs (read-only / full disk cases)


@dataclass
class Outcome:
    case: Case
    exit: int | None
    output: str
    traceback: str | None = None
    changed: list[str] = field(default_factory=list)  # workspace files changed, removed or appeared

    @property
    def ok_exit(self) -> bool:
        return self.exit in self.case.exit

    @property
    def ok_message(self) -> bool:
        return re.search(self.case.message, self.output, re.IGNORECASE | re.DOTALL) is not None

    @property
    def ok(self) -> bool:
        return self.traceback is None and self.ok_exit and self.ok_message and not self.changed

    def describe(self) -> str:
        parts = [f"{self.case.name}: exit {self.exit} (want {self.case.exit})"]
        if self.traceback:
            parts.append("TRACEBACK:\n" + self.traceback[-3000:])
        if not self.ok_message:
            parts.append(f"message does not match {self.case.message!r}")
        if self.changed:
            parts.append(f"workspace changed: {self.changed[:10]}")
        parts.append("output:\n" + self.output[-2000:])
        return "\n".join(parts)


# ------------------------------------------------------------------------------------------- files


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h pixels, with one tiny (wrong) data chunk: huge to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _phantom_image(size: int = 128, index: int = 0) -> np.ndarray:
    from pcbm.data.phantom import PhantomDataset

    return PhantomDataset(n=index + 1, seed=5, size=size)[index].image


def _write_images(root: Path) -> None:
    img = root / "img"
    img.mkdir(parents=True)
    good = _phantom_image()
    cv2.imwrite(str(img / "good.png"), good)
    cv2.imwrite(str(img / "good2.png"), _phantom_image(index=1))
    rgba = np.dstack([good, good, good, np.full_like(good, 200)])
    cv2.imwrite(str(img / "rgba.png"), rgba)
    ten_bit = (good.astype(np.uint16) * 4)  # a 10-bit image stored in 16 bits
    cv2.imwrite(str(img / "gray16.png"), ten_bit)
    _png_header_only(img / "huge.png", 20000, 20000)
    cv2.imwrite(str(img / "tiny.png"), np.full((1, 1), 128, np.uint8))
    cv2.imwrite(str(img / "black.png"), np.zeros((128, 128), np.uint8))
    data = (img / "good.png").read_bytes()
    (img / "truncated.png").write_bytes(data[: len(data) // 2])
    (img / "empty.png").write_bytes(b"")
    (img / "renamed.png").write_text("these are my notes, not an image\n")
    (img / "folder.png").mkdir()


def _write_datasets(root: Path) -> None:
    from pcbm.data.folder import write_folder
    from pcbm.data.phantom import PhantomDataset

    write_folder(list(PhantomDataset(n=4, seed=3, size=96)), root / "data" / "good", progress=False)
    bad = root / "data" / "bad"
    write_folder(list(PhantomDataset(n=6, seed=4, size=96)), bad, progress=False)
    lines = (bad / "labels.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("pixel_spacing_mm")
    rows = [ln.split(",") for ln in lines[1:]]
    rows[1][col] = "abc"  # line 3: a bad spacing
    (bad / "images" / rows[2][0]).write_bytes(b"\x89PNG broken")  # a corrupt image
    (bad / "images" / rows[3][0]).unlink()  # a missing image
    some_mask = next((bad / "masks").glob(f"*/{rows[4][0]}"))
    cv2.imwrite(str(some_mask), np.zeros((10, 12), np.uint8))  # a mask of the wrong size
    (bad / "labels.csv").write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    files = root / "data" / "bad_files"  # a good labels.csv, but a corrupt and a missing image
    write_folder(list(PhantomDataset(n=4, seed=6, size=96)), files, progress=False)
    names = sorted(p.name for p in (files / "images").iterdir())
    (files / "images" / names[0]).write_bytes(b"\x89PNG broken")
    (files / "images" / names[1]).unlink()
    for name, text in {
        "empty_csv": "",
        "no_image_column": "picture,plane\na.png,femur\n",
        "semicolons": "image;plane;standard\na.png;femur;1\n",
        "bad_plane": "image,plane\na.png,femurr\n",
        "nan_spacing": "image,plane,pixel_spacing_mm\na.png,femur,nan\n",
        "bad_bool": "image,plane,standard\na.png,femur,maybe\n",
    }.items():
        d = root / "data" / name
        (d / "images").mkdir(parents=True)
        cv2.imwrite(str(d / "images" / "a.png"), _phantom_image(96))
        (d / "labels.csv").write_text(text)


def _write_other_layouts(root: Path) -> None:
    img = _phantom_image(96)
    for name, text in {
        "hc18_no_hc_column": "filename,pixel_size_mm\n001_HC.png,0.1\n",
        "hc18_bad_number": "filename,pixel_size_mm,head_circumference_mm\n001_HC.png,zero,170\n",
        "hc18_negative_hc": "filename,pixel_size_mm,head_circumference_mm\n001_HC.png,0.1,-260\n",
        "hc18_missing_image": "filename,pixel_size_mm,head_circumference_mm\n999_HC.png,0.1,170\n",
        "hc18_empty": "",
    }.items():
        d = root / "data" / name
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
        cv2.imwrite(str(d / "images" / "001_HC.png"), img)
        cv2.imwrite(str(d / "masks" / "001_HC.png"), (img > 100).astype(np.uint8) * 255)
        (d / "pixel_size_and_hc.csv").write_text(text)
    header = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"
    for name, text in {
        "fpdb_commas": header.replace(";", ",") + "\nim1,1,Fetal femur,Not A Brain,op,Voluson E6,1\n",
        "fpdb_no_patient": "Image_name;Plane;Brain_plane;US_Machine\nim1;Fetal femur;Not A Brain;Voluson E6\n",
        "fpdb_unknown_plane": header + "\nim1;1;Fetal elbow;Not A Brain;op;Voluson E6;1\n",
        "fpdb_missing_image": header + "\nim9;1;Fetal femur;Not A Brain;op;Voluson E6;1\n",
    }.items():
        d = root / "data" / name
        (d / "Images").mkdir(parents=True)
        cv2.imwrite(str(d / "Images" / "im1.png"), img)
        (d / "FETAL_PLANES_DB_data.csv").write_text(text)


def _write_dicoms(root: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_helpers import make_dicom

    d = root / "dicom"
    make_dicom(d / "ok.dcm")
    (d / "corrupt.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(200))
    data = (d / "ok.dcm").read_bytes()
    (d / "truncated.dcm").write_bytes(data[: len(data) - 2000])
    (d / "notdicom.dcm").write_text("not a dicom at all\n")
    bad = root / "dicom_bad_region"
    make_dicom(bad / "ok.dcm")
    import pydicom

    ds = pydicom.dcmread(bad / "ok.dcm")
    r = ds.SequenceOfUltrasoundRegions[0]
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 500, 500, 900, 900
    ds.save_as(bad / "outside.dcm")


def _write_runs(root: Path) -> None:
    from pcbm.models.io import resolve_run

    runs = root / "runs"
    default = resolve_run("default")
    (runs / "empty").mkdir(parents=True)
    (runs / "config_only").mkdir()
    (runs / "config_only" / "config.json").write_text((default / "config.json").read_text())
    (runs / "truncated").mkdir()
    (runs / "truncated" / "config.json").write_text((default / "config.json").read_text())
    data = (default / "model.pt").read_bytes()
    (runs / "truncated" / "model.pt").write_bytes(data[: len(data) // 3])
    (runs / "garbage").mkdir()
    (runs / "garbage" / "model.pt").write_bytes(b"not a checkpoint")
    (runs / "bad_config").mkdir()
    (runs / "bad_config" / "model.pt").write_bytes(data)
    (runs / "bad_config" / "config.json").write_text("{ not json")
    (runs / "a_file").write_text("I am a file\n")


def _write_outputs(root: Path) -> None:
    user = root / "user"
    user.mkdir()
    (user / "NOTES.txt").write_text("my notes: do not delete\n")
    (user / "existing.json").write_text('{"mine": true}\n')
    run = root / "user_run"
    run.mkdir()
    (run / "config.json").write_text('{"mine": true}\n')
    (run / "model.pt").write_bytes(b"my model")
    reports = root / "user_reports"
    reports.mkdir()
    (reports / "good.html").write_text("<p>an earlier report</p>")
    (reports / "good.json").write_text("{}")
    (reports / "index.html").write_text("<p>my index</p>")

def build_workspace(root: Path) -> Path:
    """Make every file the corpus needs under ``root`` (a fresh folder); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    _write_images(root)
    _write_datasets(root)
    _write_other_layouts(root)
    _write_dicoms(root)
    _write_runs(root)
    _write_outputs(root)
    return root


@contextlib.contextmanager
def mounted(root: Path, name: str, options: str) -> Iterator[Path | None]:
    """A tmpfs mounted at ``root/name`` with ``options`` (e.g. ``size=64k`` or ``ro``); None where
    this machine does not allow mounting."""
    where = root / name
    where.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# ------------------------------------------------------------------------------------------- cases


def _p(*parts: str) -> Callable[[Path], str]:
    return lambda ws: str(ws.joinpath(*parts))


def _argv(*items: str | Callable[[Path], str]) -> Callable[[Path], list[str]]:
    return lambda ws: [i(ws) if callable(i) else i for i in items]


IMG = {k: _p("img", f"{k}.png") for k in ("good", "good2", "rgba", "gray16", "huge", "tiny", "black", "truncated",
                                         "empty", "renamed", "missing", "folder")}
USAGE, NUMBER, IMAGE, CSV, SPEC, DICOM, RUN, OUTPUT = ("usage", "bad number", "image", "csv", "spec", "dicom",
                                                       "run folder", "output")


def cases() -> list[Case]:
    """Every case of the corpus."""
    c: list[Case] = []
    add = c.append
    # CLI usage
    add(Case("no command", USAGE, _argv(), (2,), r"usage|commands"))
    add(Case("unknown command", USAGE, _argv("bogus"), (2,), r"no such command 'bogus'"))
    add(Case("missing argument", USAGE, _argv("predict"), (2,), r"missing argument"))
    add(Case("spacing not a number", USAGE, _argv("predict", "default", IMG["good"], "--pixel-spacing", "abc"), (2,),
             r"--pixel-spacing"))
    add(Case("synth --n 0", USAGE, _argv("data", "synth", "--out", _p("new_synth"), "--n", "0"), (2,), r"--n"))
    add(Case("unknown option", USAGE, _argv("eval", "default", "--data", "phantom", "--bogus"), (2,), r"--bogus"))
    # numbers that make no sense
    for v in ("nan", "0", "-0.1", "inf", "1e9"):
        add(Case(f"predict --pixel-spacing {v}", NUMBER,
                 _argv("predict", "default", IMG["good"], "--pixel-spacing", v), (2,), r"pixel.spacing"))
    add(Case("report --pixel-spacing nan", NUMBER,
             _argv("report", "default", IMG["good"], "--out", _p("new_reports"), "--pixel-spacing", "nan"), (2,),
             r"pixel.spacing"))
    for v in ("hc_mm=inf", "hc_mm=nan", "hc_mm=-260", "csp_visible=nan", "csp_visible=7"):
        add(Case(f"intervene --set {v}", NUMBER, _argv("intervene", "default", IMG["good"], "--set", v), (2,),
                 v.split("=")[0]))
    add(Case("intervene unknown concept", NUMBER, _argv("intervene", "default", IMG["good"], "--set",
                                                        "cerebelum_visible=1"), (2,), r"did you mean"))
    add(Case("refit --weights nan", NUMBER, _argv("refit", "default", "--data", "phantom:n=8,size=64", "--weights",
                                                  "nan", "--out", _p("new_refit")), (2,), r"weights"))
    add(Case("train --lr nan", NUMBER, _argv("train", "--data", "phantom:n=8", "--model", "tiny", "--lr", "nan",
                                             "--out", _p("new_run")), (2,), r"lr"))
    add(Case("train --lr -1", NUMBER, _argv("train", "--data", "phantom:n=8", "--model", "tiny", "--lr", "-1",
                                            "--out", _p("new_run")), (2,), r"lr"))
    add(Case("train --batch-size 0", NUMBER, _argv("train", "--data", "phantom:n=8", "--model", "tiny",
                                                   "--batch-size", "0", "--out", _p("new_run")), (2,), r"batch"))
    # images, one at a time: the file named, exit 1 (the batch form of predict)
    for k, what in (("missing", r"not found"), ("empty", r"empty"), ("truncated", r"corrupt|truncated|cannot read"),
                    ("renamed", r"corrupt|not an image|unsupported"), ("huge", r"pixels|too large|limit"),
                    ("tiny", r"small|1x1|1 x 1"), ("folder", r"not a file|folder|directory")):
        add(Case(f"predict {k} image", IMAGE, _argv("predict", "default", IMG[k]), (1,), rf"{k}\.png.*({what})"))
    add(Case("predict good + bad images", IMAGE, _argv("predict", "default", IMG["good"], IMG["truncated"],
                                                       IMG["good2"]), (1,),
             r'good\.png.*good2\.png|truncated\.png.*1 of 3'))
    add(Case("report good + bad images", IMAGE, _argv("report", "default", IMG["good"], IMG["empty"], "--out",
                                                      _p("new_reports2"), "--heatmap", "none"), (1,),
             r"empty\.png.*1 of 2", writes=("new_reports2",)))
    add(Case("report huge image", IMAGE, _argv("report", "default", IMG["huge"], "--out", _p("new_reports3"),
                                               "--heatmap", "none"), (1,), r"huge\.png.*(pixels|limit|large)",
             writes=("new_reports3",)))
    # data specs
    for spec, what in (("phantom:n=abc", r"n=abc|abc"), ("phantom:n=-1", r"n"), ("hc18:/nonexistent/hc18", r"not found|nonexistent"),
                       ("unknown:x", r"unknown dataset kind"), ("folder:", r"path|folder"),
                       ("phantom:style=nope", r"style"), ("phantom?split=bogus", r"split"),
                       ("fetal_planes_db:/nonexistent", r"not found|nonexistent")):
        add(Case(f"eval --data {spec}", SPEC, _argv("eval", "default", "--data", spec), (2,), what))
    # CSVs
    add(Case("data check: every problem at once", CSV, _argv("data", "check", lambda ws: f"folder:{ws / 'data' / 'bad'}",
                                                             "--no-progress"), (1,),
             r"(?=.*line 3)(?=.*abc)(?=.*corrupt|.*cannot read)(?=.*not found|.*missing)(?=.*size)"))
    for name, what in (("empty_csv", r"empty"), ("no_image_column", r"image"), ("semicolons", r"image|column|;"),
                       ("bad_plane", r"femurr"), ("nan_spacing", r"nan|spacing"), ("bad_bool", r"maybe")):
        add(Case(f"eval on {name}", CSV, _argv("eval", "default", "--data",
                                               lambda ws, n=name: f"folder:{ws / 'data' / n}"), (1, 2), what))
        add(Case(f"data check on {name}", CSV, _argv("data", "check", lambda ws, n=name: f"folder:{ws / 'data' / n}",
                                                     "--no-progress"), (1, 2), what))
    add(Case("eval with bad files goes on", CSV, _argv("eval", "default", "--data",
                                                        lambda ws: f"folder:{ws / 'data' / 'bad_files'}"),
             (1,), r"(?=.*not found|.*missing)(?=.*corrupt|.*cannot read)(?=.*2 of 4 samples)"))
    # DICOM
    for k, what in (("corrupt", r"corrupt|cannot read|not a valid"), ("truncated", r"truncated|corrupt|cannot read"),
                    ("notdicom", r"corrupt|not.*dicom|unsupported")):
        add(Case(f"predict {k} DICOM", DICOM, _argv("predict", "default", _p("dicom", f"{k}.dcm")), (1,),
                 rf"{k}\.dcm.*({what})"))
    add(Case("etl without a salt", DICOM, _argv("data", "etl", _p("dicom"), "--out", _p("new_etl")), (2,), r"salt"))
    add(Case("etl skips bad files, converts the rest", DICOM,
             _argv("data", "etl", _p("dicom"), "--out", _p("new_etl2"), "--salt", SALT, "--no-progress"), (1,),
             r"corrupt\.dcm", writes=("new_etl2",)))
    add(Case("etl region outside the image", DICOM,
             _argv("data", "etl", _p("dicom_bad_region"), "--out", _p("new_etl3"), "--salt", SALT, "--no-progress"),
             (1,), r"outside\.dcm.*region", writes=("new_etl3",)))
    # run folders
    for k in ("empty", "config_only", "truncated", "garbage", "bad_config", "a_file", "nonexistent"):
        add(Case(f"eval corrupt run {k}", RUN, _argv("eval", _p("runs", k), "--data", "phantom:n=2,size=64"), (2,),
                 rf"runs/{k}"))
    # outputs: nothing a user made is replaced; unwritable places are refused before the work
    add(Case("synth into a user's folder", OUTPUT, _argv("data", "synth", "--out", _p("user"), "--n", "2"), (2,),
             r"not empty|exists"))
    add(Case("synth onto a file", OUTPUT, _argv("data", "synth", "--out", _p("user", "NOTES.txt"), "--n", "2"), (2,),
             r"file"))
    add(Case("eval --json onto a folder", OUTPUT, _argv("eval", "default", "--data", "phantom:n=2,size=64", "--json",
                                                        _p("user")), (2,), r"folder"))
    add(Case("eval --json onto a user's file", OUTPUT, _argv("eval", "default", "--data", "phantom:n=2,size=64",
                                                             "--json", _p("user", "existing.json")), (2,),
             r"exists"))
    add(Case("data check --json onto a user's file", OUTPUT,
             _argv("data", "check", lambda ws: f"folder:{ws / 'data' / 'good'}", "--json", _p("user", "existing.json"),
                   "--no-progress"), (2,), r"exists"))
    add(Case("train into a user's run", OUTPUT, _argv("train", "--data", "phantom:n=8", "--model", "tiny", "--out",
                                                      _p("user_run")), (2,), r"not empty|exists"))
    add(Case("refit into a user's run", OUTPUT, _argv("refit", "default", "--data", "phantom:n=8,size=64", "--out",
                                                      _p("user_run")), (2,), r"not empty|exists"))
    add(Case("etl into a user's folder", OUTPUT, _argv("data", "etl", _p("dicom"), "--out", _p("user"), "--salt",
                                                       SALT), (2,), r"not empty|exists"))
    add(Case("report over a user's report", OUTPUT, _argv("report", "default", IMG["good"], "--out",
                                                          _p("user_reports"), "--heatmap", "none"), (2,),
             r"good\.html|refusing"))
    add(Case("synth onto a read-only disk", OUTPUT, _argv("data", "synth", "--out", _p("ro", "set"), "--n", "2"),
             (2,), r"not writable|read-only", needs="ro"))
    add(Case("eval --json onto a read-only disk", OUTPUT, _argv("eval", "default", "--data", "phantom:n=2,size=64",
                                                                "--json", _p("ro", "m.json")), (2,),
             r"not writable|read-only", needs="ro"))
    add(Case("synth onto a full disk", OUTPUT, _argv("data", "synth", "--out", _p("full", "set"), "--n", "40"),
             (1, 2), r"no space left", needs="full"))
    add(Case("etl onto a full disk", OUTPUT, _argv("data", "etl", _p("dicom"), "--out", _p("full", "etl"), "--salt",
                                                   SALT, "--no-progress"), (1, 2), r"no space left", needs="full"))

    names = {x.name for x in c}
    c += [x for x in _cross_cases() if x.name not in names]  # the same input through every command
    return c


BAD_IMAGES = (("missing", r"not found"), ("empty", r"empty"), ("truncated", r"corrupt|truncated|cannot read"),
              ("renamed", r"corrupt|not an image|unsupported"), ("huge", r"pixels|too large|limit"),
              ("tiny", r"small|1x1|1 x 1"), ("folder", r"not a file|folder|directory"))
BAD_SPECS = (("phantom:n=abc", r"abc"), ("phantom:n=-1", r"n"), ("phantom:n=2.5", r"2\.5|integer"),
             ("phantom:bogus=1", r"bogus"), ("phantom:n=2,n=3", r"duplicate|twice|n"),
             ("hc18:/nonexistent/hc18", r"not found|nonexistent"), ("unknown:x", r"unknown dataset kind"),
             ("folder:", r"path|folder"), ("folder:/nonexistent", r"not found|nonexistent"),
             ("phantom:style=nope", r"style"), ("phantom?split=bogus", r"split"), ("", r"empty|spec|data"),
             ("fetal_planes_db:/nonexistent", r"not found|nonexistent"), ("phantom:planes=elbow", r"elbow"))
RUNS = ("empty", "config_only", "truncated", "garbage", "bad_config", "a_file", "nonexistent")
LAYOUTS = (("hc18_no_hc_column", "hc18", r"head_circumference|column"), ("hc18_bad_number", "hc18", r"zero"),
           ("hc18_negative_hc", "hc18", r"-260|positive"), ("hc18_missing_image", "hc18", r"999_HC|not found|missing"),
           ("hc18_empty", "hc18", r"empty"), ("fpdb_commas", "fetal_planes_db", r"column|;|header|Patient_num"),
           ("fpdb_no_patient", "fetal_planes_db", r"Patient_num"), ("fpdb_unknown_plane", "fetal_planes_db",
                                                                     r"elbow"),
           ("fpdb_missing_image", "fetal_planes_db", r"im9|not found|missing"))


def _spec(kind: str, name: str) -> Callable[[Path], str]:
    return lambda ws: f"{kind}:{ws / 'data' / name}"


def _cross_cases() -> list[Case]:
    """The same bad input through every command that reads it."""
    c: list[Case] = []
    add = c.append
    for k, what in BAD_IMAGES:
        add(Case(f"report {k} image", IMAGE, _argv("report", "default", IMG[k], "--out", _p(f"new_rep_{k}"),
                                                  "--heatmap", "none"), (1, 2), rf"(?=.*{k}\.png)(?=.*({what}))",
                 writes=(f"new_rep_{k}",)))
        add(Case(f"intervene {k} image", IMAGE, _argv("intervene", "default", IMG[k], "--set", "csp_visible=1"),
                 (1, 2), rf"(?=.*{k}\.png)(?=.*({what}))"))
    for v in ("nan", "0", "-1", "inf", "abc", "1e9", "-inf", ""):
        add(Case(f"intervene --pixel-spacing {v!r}", NUMBER,
                 _argv("intervene", "default", IMG["good"], "--set", "csp_visible=1", "--pixel-spacing", v), (2,),
                 r"pixel.spacing"))
        add(Case(f"report --pixel-spacing {v!r}", NUMBER,
                 _argv("report", "default", IMG["good"], "--out", _p("new_rep_sp"), "--pixel-spacing", v), (2,),
                 r"pixel.spacing"))
    for v in ("nan", "inf", "-1", "0", "abc", "1,nan"):
        add(Case(f"refit --weights {v}", NUMBER, _argv("refit", "default", "--data", "phantom:n=8,size=64",
                                                      "--weights", v, "--out", _p("new_refit")), (2,), r"weights"))
    add(Case("refit --weights count", NUMBER, _argv("refit", "default", "--data", "phantom:n=8,size=64", "--weights",
                                                   "1,2", "--out", _p("new_refit")), (2,), r"weights|2.*1"))
    for opt, v in (("--lr", "inf"), ("--max-steps", "0"), ("--max-steps", "-5"), ("--max-time-min", "nan"),
                   ("--max-time-min", "-1"), ("--epochs", "0"), ("--size", "4"), ("--mode", "sideways"),
                   ("--model", "giant"), ("--precision", "fp3"), ("--refit-weights", "nan"), ("--workers", "-1"),
                   ("--accelerator", "tpu"), ("--seed", "x")):
        add(Case(f"train {opt} {v}", NUMBER, _argv("train", "--data", "phantom:n=8", "--model", "tiny", opt, v,
                                                   "--out", _p("new_run")) if opt != "--model" else
                 _argv("train", "--data", "phantom:n=8", opt, v, "--out", _p("new_run")), (2,),
                 opt.lstrip("-").split("-")[0]))
    add(Case("train --config missing", USAGE, _argv("train", "--config", _p("nope.toml"), "--out", _p("new_run")),
             (2,), r"nope\.toml"))
    add(Case("train --config malformed", USAGE, _argv("train", "--config", _p("user", "NOTES.txt"), "--out",
                                                      _p("new_run")), (2,), r"NOTES\.txt"))
    add(Case("train without --data", USAGE, _argv("train", "--out", _p("new_run")), (2,), r"--data"))
    for spec, what in BAD_SPECS:
        for cmd in (["train", "--model", "tiny", "--out", _p("new_run"), "--data", spec],
                    ["refit", "default", "--out", _p("new_refit"), "--data", spec],
                    ["data", "check", spec, "--no-progress"], ["data", "summary", spec],
                    ["eval", "default", "--data", spec]):
            label = " ".join(x for x in cmd[:2] if isinstance(x, str) and not x.startswith("-"))
            if cmd[0] == "eval":
                continue  # eval is in cases() already
            add(Case(f"{label} spec {spec!r}", SPEC, _argv(*cmd), (1, 2), what))
    for run in RUNS:
        for cmd in (["predict", _p("runs", run), IMG["good"]],
                    ["report", _p("runs", run), IMG["good"], "--out", _p("new_rep_run"), "--heatmap", "none"],
                    ["intervene", _p("runs", run), IMG["good"], "--set", "csp_visible=1"],
                    ["refit", _p("runs", run), "--data", "phantom:n=8,size=64", "--out", _p("new_refit")],
                    ["train", "--init", _p("runs", run), "--data", "phantom:n=8", "--out", _p("new_run")]):
            add(Case(f"{cmd[0]} corrupt run {run}", RUN, _argv(*cmd), (2,), rf"runs/{run}"))
    for name, kind, what in LAYOUTS:
        spec = _spec(kind, name)
        add(Case(f"data check {name}", CSV, _argv("data", "check", spec, "--no-progress"), (1, 2), what))
        add(Case(f"eval on {name}", CSV, _argv("eval", "default", "--data", spec), (1, 2), what))
        add(Case(f"train on {name}", CSV, _argv("train", "--model", "tiny", "--data", spec, "--out", _p("new_run")),
                 (1, 2), what))
    for name in ("semicolons", "bad_plane", "nan_spacing", "bad_bool", "empty_csv", "no_image_column"):
        add(Case(f"train on {name}", CSV, _argv("train", "--model", "tiny", "--data",
                                                lambda ws, n=name: f"folder:{ws / 'data' / n}", "--out",
                                                _p("new_run")), (1, 2), r"labels\.csv"))
    # outputs through every command that writes
    writers = {
        "synth": lambda out: ["data", "synth", "--out", out, "--n", "2"],
        "contact-sheet": lambda out: ["data", "contact-sheet", "--out", out],
        "summary --out": lambda out: ["data", "summary", "phantom:n=2,size=64", "--out", out],
        "check --json": lambda out: ["data", "check", "phantom:n=2,size=64", "--json", out, "--no-progress"],
        "eval --json": lambda out: ["eval", "default", "--data", "phantom:n=2,size=64", "--json", out],
        "synth --contact-sheet": lambda out: ["data", "synth", "--out", _p("new_synth_cs"), "--n", "2",
                                              "--contact-sheet", out],
        "train": lambda out: ["train", "--data", "phantom:n=8", "--model", "tiny", "--max-steps", "1", "--out", out],
        "refit": lambda out: ["refit", "default", "--data", "phantom:n=8,size=64", "--out", out],
        "report": lambda out: ["report", "default", IMG["good"], "--out", out, "--heatmap", "none"],
        "etl": lambda out: ["data", "etl", _p("dicom"), "--out", out, "--salt", SALT, "--no-progress"],
    }
    file_writers = ("contact-sheet", "summary --out", "check --json", "eval --json", "synth --contact-sheet")
    for name, make in writers.items():
        if name in file_writers:
            add(Case(f"{name} onto a user's file", OUTPUT, _argv(*make(_p("user", "NOTES.txt"))), (2,), r"exists"))
            add(Case(f"{name} onto a folder", OUTPUT, _argv(*make(_p("user"))), (2,), r"folder"))
        else:
            add(Case(f"{name} into a user's folder", OUTPUT, _argv(*make(_p("user"))), (2,), r"not empty|exists|already"))
            add(Case(f"{name} onto a file", OUTPUT, _argv(*make(_p("user", "NOTES.txt"))), (2,), r"file"))
        add(Case(f"{name} onto a read-only disk", OUTPUT, _argv(*make(_p("ro", "x.png" if name in file_writers
                                                                            else "x"))),
                 (2,), r"not writable|read-only", needs="ro"))
    return c


# ------------------------------------------------------------------------------------------ runner


def snapshot(root: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``root`` (folders as entries too)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _changes(before: dict[str, str], after: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    def free(path: str) -> bool:
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    changed = [p for p in before if before[p] != after.get(p)]
    changed += [f"+{p}" for p in after if p not in before and not free(p)]
    return sorted(changed)


def run_case(case: Case, ws: Path) -> Outcome:
    """Run one case in-process against the workspace ``ws`` and judge it (see :class:`Outcome`)."""
    from pcbm.cli import main

    argv = case.argv(ws)
    before = snapshot(ws)
    out, err = io.StringIO(), io.StringIO()
    code: int | None = 0
    tb = None
    saved_argv = sys.argv
    sys.argv = ["pcbm", *argv]  # main() reads sys.argv when given no list (as the console script does)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # a traceback the user would have seen
            tb = traceback.format_exc()
            code = None
        finally:
            sys.argv = saved_argv
    after = snapshot(ws)
    return Outcome(case, code, out.getvalue() + err.getvalue(), tb, _changes(before, after, case.writes))


# ------------------------------------------------------------------ issue 35: the newer commands
# (deliverables 4 and 7; appended here, in one block, so other additions never collide)


def _issue35_window(ws: Path) -> str:
    """A saved serving window whose reference deciles are malformed (made when the case's argv is built)."""
    import json

    p = ws / "issue35" / "bad_reference_window.json"
    p.parent.mkdir(exist_ok=True)
    p.write_text(json.dumps({"kind": "pcbm serve window", "planes": [], "values": {},
                             "reference": {"concepts": {"hc_mm": {"deciles": [1, "x"]}}}}))
    return str(p)


def issue35_cases() -> list[Case]:
    """Bad input through bench backbones, train-head, calibrate, monitor, serve and live: one line, exit 2,
    before any model loads or any training starts."""
    c: list[Case] = []
    add = c.append
    bench = ("bench", "backbones", "--data", "phantom:n=12,size=64", "--protocol", "linear", "--out", _p("new_bench"))
    add(Case("bench backbones more folds than a class has", NUMBER, _argv(*bench, "--folds", "10"), (2,), r"--folds 10"))
    add(Case("bench backbones --lr nan", NUMBER, _argv(*bench, "--lr", "nan"), (2,), r"--lr"))
    add(Case("bench backbones --devices abc", NUMBER, _argv(*bench, "--devices", "abc"), (2,), r"--devices"))
    add(Case("bench backbones --accelerator gpu, absent devices", NUMBER,
             _argv(*bench, "--accelerator", "gpu", "--devices", "99"), (2,), r"GPU"))
    add(Case("train-head with no arguments", USAGE, _argv("train-head"), (2,), r"--out"))
    add(Case("train-head --encoder bogus", USAGE, _argv("train-head", "--encoder", "bogus", "--out", _p("new_head")),
             (2,), r"encoder 'bogus'"))
    add(Case("calibrate --out a folder --overwrite", OUTPUT, _argv("calibrate", "default", "--data", "phantom:n=4",
                                                                   "--out", _p("user"), "--overwrite"), (2,), r"folder"))
    add(Case("calibrate --out onto a user's file", OUTPUT, _argv("calibrate", "default", "--data", "phantom:n=4",
                                                                 "--out", _p("user", "existing.json")), (2,), r"exists"))
    add(Case("calibrate --out under a file", OUTPUT, _argv("calibrate", "default", "--data", "phantom:n=4", "--out",
                                                           _p("user", "NOTES.txt", "r.json")), (2,), r"is a file"))
    add(Case("calibrate --out onto a read-only disk", OUTPUT, _argv("calibrate", "default", "--data", "phantom:n=4",
                                                                    "--out", _p("ro", "r.json")), (2,),
             r"not writable|read-only", needs="ro"))
    add(Case("monitor with a malformed reference", USAGE, _argv("monitor", _issue35_window, "--out", _p("new_drift")),
             (2,), r"deciles"))
    add(Case("serve --window-out onto a user's file", OUTPUT,
             _argv("serve", "--allow-unauthenticated", "--window-out", _p("user", "existing.json")), (2,), r"exists"))
    add(Case("live --record onto a file", OUTPUT, _argv("live", "--allow-unauthenticated", "--record",
                                                        _p("user", "NOTES.txt")), (2,), r"is a file"))
    add(Case("live --session onto a file", OUTPUT, _argv("live", "--allow-unauthenticated", "--session",
                                                         _p("user", "NOTES.txt")), (2,), r"is a file"))
    add(Case("live from a text file", USAGE, _argv("live", "--allow-unauthenticated", "--source", IMG["renamed"],
                                                   "--session", _p("new_live")), (2,), r"renamed\.png"))
    add(Case("live from camera:99", USAGE, _argv("live", "--allow-unauthenticated", "--source", "camera:99",
                                                 "--session", _p("new_live")), (2,), r"camera:99"))
    return c


_cases_before_issue35 = cases


def cases() -> list[Case]:  # noqa: F811 - the corpus, with the issue-35 block added at its end
    """Every case of the corpus."""
    c = _cases_before_issue35()
    names = {x.name for x in c}
    return c + [x for x in issue35_cases() if x.name not in names]
