"""Issue 35's part of the bad-input corpus: packages, service uploads, pixel spacings at every entry
point, DICOM headers (PHI), the newer commands.

Each :class:`Probe` is one real check that raises AssertionError when it fails: a CLI run through
``tests/bad_input_corpus.run_case`` (exit code, message, no traceback, nothing changed), an
``InputError`` from the library (``Engine``, ``pcbm.validate``, the readers) with its message, or a
service answer through FastAPI's TestClient (status, message, never a 5xx). Most are generated from
grids (bad spacing values x entry points, metadata keys x bad values, package files x faults).
Everything is built once per session by :class:`Bench` (one tiny package, copied per case).
``tests/test_bad_inputs_35.py`` runs them; ``tests/test_bad_inputs.py`` the older corpus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from bad_input_corpus import Case, run_case

PKG, SERVE, SPACING, DICOM, CMD = "package", "serve upload", "spacing", "dicom header", "newer command"
PHI_TEXT = "PATIENT JOHN DOE"
SECRET_NAME = "DOE_JOHN_1990"


@dataclass(frozen=True)
class Probe:
    """One bad input and the check of what happened (``check(bench)`` raises AssertionError)."""

    name: str
    category: str
    check: Callable[[Bench], None]


class Bench:
    """Everything the probes use, made once: a workspace of images, the tiny package, its engine and
    a service client (built lazily, so the probes of one kind pay only for their own)."""

    def __init__(self, root: Path, package: Path) -> None:
        self.root, self.package = root, package
        self._engine: Any = None
        self._client: Any = None
        self._n = 0
        img = root / "img"
        img.mkdir(parents=True, exist_ok=True)
        from pcbm.data.phantom import PhantomDataset

        self.image = PhantomDataset(n=1, seed=5, size=128)[0].image
        cv2.imwrite(str(img / "good.png"), self.image)
        self.png = (img / "good.png").read_bytes()
        ok, buf = cv2.imencode(".jpg", self.image)
        self.jpeg = buf.tobytes()
        for name, data in bad_images(self.png, self.jpeg).items():
            (img / name).write_bytes(data)

    def fresh(self, name: str) -> Path:
        """A new empty folder for one case."""
        self._n += 1
        d = self.root / "cases" / f"{self._n:04d}_{re.sub(r'[^A-Za-z0-9]+', '_', name)[:40]}"
        d.mkdir(parents=True)
        return d

    def package_copy(self, name: str) -> Path:
        """A copy of the package (the graphs hard-linked: replace a graph, never write into one)."""
        def link_graphs(src: str, dst: str) -> None:
            (os.link if src.endswith(".onnx") else shutil.copy2)(src, dst)

        dst = self.fresh(name) / "pkg"
        shutil.copytree(self.package, dst, copy_function=link_graphs)
        return dst

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from pcbm.runtime import Engine

            self._engine = Engine(self.package, threads=1)
        return self._engine

    @property
    def client(self) -> Any:
        if self._client is None:
            import time

            from fastapi.testclient import TestClient

            from pcbm.serve.app import create_app
            from pcbm.serve.service import ServeSettings

            self._client = TestClient(create_app(self.engine, ServeSettings(tokens=("t" * 40,))))
            self._client.__enter__()
            for _ in range(300):
                if self._client.get("/readyz").status_code == 200:
                    break
                time.sleep(0.02)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)


def bad_images(png: bytes, jpeg: bytes) -> dict[str, bytes]:
    """Corrupt and odd image files by name (the extension says what they claim to be)."""
    n = len(jpeg)
    zeroed = bytearray(jpeg)
    zeroed[n // 3: 2 * n // 3] = bytes(2 * n // 3 - n // 3)
    ffed = bytearray(jpeg)
    ffed[n // 2: n // 2 + 64] = b"\xff" * 64
    pz = bytearray(png)
    m = len(png)
    pz[m // 3: 2 * m // 3] = bytes(2 * m // 3 - m // 3)
    return {
        "jpeg_zeroed_middle.jpg": bytes(zeroed), "jpeg_ff_middle.jpg": bytes(ffed), "jpeg_truncated.jpg": jpeg[: n // 2],
        "jpeg_header_only.jpg": jpeg[:200], "png_zeroed_middle.png": bytes(pz), "png_truncated.png": png[: m // 2],
        "png_no_iend.png": png[:-12], "text.png": b"my notes, not an image\n" * 4, "empty.png": b"",
        "gif.png": b"GIF89a" + bytes(64), "pdf.png": b"%PDF-1.4\n" + bytes(64), "one_byte.png": b"\x89",
    }


CORRUPT = ("jpeg_zeroed_middle.jpg", "jpeg_ff_middle.jpg", "jpeg_truncated.jpg", "jpeg_header_only.jpg",
           "png_zeroed_middle.png", "png_truncated.png", "png_no_iend.png", "text.png", "empty.png", "gif.png",
           "pdf.png", "one_byte.png")
CORRUPT_MESSAGE = r"corrupt|truncated|not an image|empty|cannot read"


def cli(b: Bench, name: str, argv: list[str], exit: tuple[int, ...], message: str,
        ws: Path | None = None, writes: tuple[str, ...] = ()) -> str:
    """Run ``pcbm argv`` in-process in ``ws`` (a fresh folder) and check it; returns the output."""
    ws = ws or b.fresh(name)
    out = run_case(Case(name, "issue 35", lambda _: argv, exit, message, writes), ws)
    assert out.ok, out.describe()
    return out.output


def raises_input_error(fn: Callable[[], Any], message: str) -> str:
    from pcbm.errors import InputError

    try:
        fn()
    except InputError as e:
        assert re.search(message, str(e), re.IGNORECASE | re.DOTALL), f"{e!s} does not match {message!r}"
        assert "\n" not in str(e).strip(), f"not one line: {e!s}"
        return str(e)
    raise AssertionError(f"no InputError (wanted one matching {message!r})")


# ------------------------------------------------------------------------------------ pixel spacing

BAD_SPACINGS = ("1e-300", "0.005", "0.0099", "0", "-0.5", "nan", "inf", "-inf", "10.01", "1e9", "abc", "0.2mm")
SPACING_MESSAGE = r"pixel.spacing.*(\[0\.01, 10\]|number)"


def _as_number(v: str) -> Any:
    try:
        return float(v)
    except ValueError:
        return v


def _spacing_probes() -> list[Probe]:
    from pcbm.validate import pixel_spacing

    out: list[Probe] = []
    for v in BAD_SPACINGS:
        out.append(Probe(f"validate.pixel_spacing {v!r}", SPACING,
                         lambda b, v=v: raises_input_error(lambda: pixel_spacing(v, "pixel spacing"), SPACING_MESSAGE)))
        out.append(Probe(f"Engine.predict pixel_spacing_mm={v!r}", SPACING, lambda b, v=v: raises_input_error(
            lambda: b.engine.predict(b.image, pixel_spacing_mm=_as_number(v)), r"pixel_spacing_mm.*(\[0\.01, 10\]|number)")))
        out.append(Probe(f"Engine.predict_batch pixel_spacing_mm=[0.2, {v!r}]", SPACING, lambda b, v=v: raises_input_error(
            lambda: b.engine.predict_batch([b.image, b.image], pixel_spacing_mm=[0.2, _as_number(v)]),
            r"pixel_spacing_mm\[1\]")))
        out.append(Probe(f"serve /v1/predict pixel_spacing_mm={v!r}", SPACING, lambda b, v=v: _serve_refused(
            b, {"pixel_spacing_mm": v}, 400, r"pixel_spacing_mm.*(\[0\.01, 10\]|number)")))
        out.append(Probe(f"predict PKG --pixel-spacing {v!r}", SPACING, lambda b, v=v: cli(
            b, "predict", ["predict", str(b.package), str(b.root / "img" / "good.png"), "--pixel-spacing", v], (2,),
            r"--pixel-spacing")))
        out.append(Probe(f"intervene PKG --pixel-spacing {v!r}", SPACING, lambda b, v=v: cli(
            b, "intervene", ["intervene", str(b.package), str(b.root / "img" / "good.png"), "--set", "csp_visible=1",
                             "--pixel-spacing", v], (2,), r"--pixel-spacing")))
        out.append(Probe(f"labels.csv pixel_spacing_mm {v!r}", SPACING, lambda b, v=v: _folder_spacing(b, v)))
        out.append(Probe(f"DICOM PixelSpacing {v!r}", DICOM, lambda b, v=v: _dicom_spacing(b, v)))
    return out


def _folder_spacing(b: Bench, v: str) -> None:
    d = b.fresh("folder")
    (d / "ds" / "images").mkdir(parents=True)
    cv2.imwrite(str(d / "ds" / "images" / "a.png"), b.image)
    (d / "ds" / "labels.csv").write_text(f"image,plane,pixel_spacing_mm\na.png,femur,{v}\n")
    cli(b, "data check", ["data", "check", f"folder:{d / 'ds'}", "--no-progress"], (1, 2),
        r"line 2.*pixel_spacing_mm", ws=d)


def _dicom_spacing(b: Bench, v: str) -> None:
    """An out-of-range or non-numeric header spacing is ignored with a note that does not quote it."""
    from pcbm.data.dicom import read_dicom

    path = write_dicom(b.fresh("dicom") / "scan.dcm", f"{v}\\{v}")
    (s,) = read_dicom(path)
    assert s.pixel_spacing_mm is None, s.pixel_spacing_mm
    notes = " ".join(s.meta["notes"])
    assert re.search(r"PixelSpacing: (outside the plausible range|not two numbers)", notes), notes
    assert v not in notes.replace("[0.01, 10]", ""), notes


def write_dicom(path: Path, spacing_text: str | None, **kw: Any) -> Path:
    """A small ultrasound DICOM without a region, its PixelSpacing the raw text ``spacing_text``."""
    from dicom_helpers import make_dicom
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    def edit(ds: Any) -> None:
        if spacing_text is not None:
            raw = spacing_text.encode()
            raw += b" " * (len(raw) % 2)
            ds[0x00280030] = RawDataElement(Tag(0x00280030), "DS", len(raw), raw, 0, False, True)

    return make_dicom(path, region_cm=None, edit=edit, **kw)


# ------------------------------------------------------------------------------------ service


def _serve_refused(b: Bench, fields: dict[str, str], status: int, message: str,
                   image: tuple[str, bytes, str] | None = None, path: str = "/v1/predict") -> None:
    files = {"image": image or ("scan.png", b.png, "image/png")}
    r = b.client.post(path, files=files, data=fields, headers={"Authorization": "Bearer " + "t" * 40})
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert re.search(message, body.get("error", ""), re.IGNORECASE), body


def _serve_probes() -> list[Probe]:
    out: list[Probe] = []
    for name in CORRUPT:
        for path in ("/v1/predict", "/v1/report?format=json"):
            ctype = "image/jpeg" if name.endswith(".jpg") else "image/png"
            out.append(Probe(f"serve {path} upload {name}", SERVE, lambda b, n=name, c=ctype, p=path: _serve_refused(
                b, {}, 400 if n != "empty.png" else 400, CORRUPT_MESSAGE + r"|unsupported|upload",
                (n, (b.root / "img" / n).read_bytes(), c), p)))
    for ctype in ("text/plain", "application/pdf", "application/json"):
        out.append(Probe(f"serve upload declared {ctype} (text inside)", SERVE, lambda b, c=ctype: _serve_refused(
            b, {}, 415, r"type|unsupported|not an image", ("x.txt", b"hello", c))))
    out.append(Probe("serve no image part", SERVE, lambda b: _serve_no_image(b)))
    for field in ("pixel_spacing_mm",):
        for v in ("1e-300", "nan", "\u00bd", "0.1; DROP TABLE"):
            out.append(Probe(f"serve intervene {field}={v!r}", SERVE, lambda b, f=field, v=v: _serve_refused(
                b, {f: v, "set": "csp_visible=1"}, 400, r"pixel_spacing_mm", path="/v1/intervene")))
    return out


def _serve_no_image(b: Bench) -> None:
    r = b.client.post("/v1/predict", data={"pixel_spacing_mm": "0.2"}, headers={"Authorization": "Bearer " + "t" * 40})
    assert r.status_code in (400, 415, 422), (r.status_code, r.text[:300])
    assert "image" in r.text


# ------------------------------------------------------------------------------------ packages

# (metadata key path, bad value, what the message must say)
BAD_METADATA: tuple[tuple[str, Any, str], ...] = (
    *((("input.size", v, r"input\.size")) for v in (0, 31, 4096, 1.5, "64", None, True, -64)),
    *((("thresholds.min_confidence", v, r"min_confidence")) for v in (0, -0.1, 1.5, "0.5", None, False, 1e308)),
    *((("model.name", v, r"model\.name")) for v in ("", 3, None, ["a"])),
    *((("graphs.segment", v, r"segment")) for v in ("../segment.onnx", "/etc/passwd", "missing.onnx", 3, None,
                                                   "sub/segment.onnx", "..")),
    *((("graphs.decision", v, r"decision")) for v in ("../decision.onnx", "nope.onnx", "")),
    *((("graphs", v, r"graphs")) for v in ({}, [], "segment.onnx", None)),
    *((("reliability", v, r"reliability")) for v in ("../r.json", "nope.json", 5, "metadata.json/..")),
    *((("head_refiner", v, r"head_refiner")) for v in ("yes", 3, [1])),
    *((("ontology", v, r"ontology")) for v in (None, {}, "x")),
    *((("ontology.planes", v, r"ontology")) for v in ([], ["femur"], None)),
    *((("files", v, r"files disagree")) for v in ({"segment.onnx": "0" * 64},)),
)


def _set(meta: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    d = meta
    for k in parents:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[last] = value


def _replace(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # never write into a hard link to the shared package
    path.write_bytes(data)


def _edit_metadata(pkg: Path, key: str, value: Any, remanifest: bool) -> None:
    from pcbm.runtime.verify import write_manifest

    meta = json.loads((pkg / "metadata.json").read_text())
    _set(meta, key, value)
    _replace(pkg / "metadata.json", json.dumps(meta).encode())
    if remanifest:
        write_manifest(pkg)


def _package_refused(b: Bench, name: str, pkg: Path, message: str) -> None:
    """``pcbm verify`` exits 1 naming the problem, ``Engine`` raises one InputError naming it, and
    ``pcbm predict PKG`` exits 2 without a traceback."""
    cli(b, name, ["verify", str(pkg)], (1,), message, ws=pkg.parent)
    raises_input_error(lambda: __import__("pcbm.runtime", fromlist=["Engine"]).Engine(pkg, threads=1), message)


def _package_probes() -> list[Probe]:
    out: list[Probe] = []
    for key, value, what in BAD_METADATA:
        label = f"{key}={json.dumps(value)[:30]}"
        out.append(Probe(f"package metadata {label} (manifest rewritten)", PKG, lambda b, k=key, v=value, w=what: (
            _edit := b.package_copy("meta"), _edit_metadata(_edit, k, v, True),
            _package_refused(b, "verify", _edit, w))))
        out.append(Probe(f"package metadata {label} (manifest kept)", PKG, lambda b, k=key, v=value: (
            _edit := b.package_copy("meta"), _edit_metadata(_edit, k, v, False),
            _package_refused(b, "verify", _edit, r"metadata\.json"))))
    faults: dict[str, tuple[Callable[[Path], None], str]] = {
        "segment.onnx removed": (lambda p: (p / "segment.onnx").unlink(), r"segment\.onnx"),
        "decision.onnx truncated": (lambda p: _replace(p / "decision.onnx", (p / "decision.onnx").read_bytes()[:100]),
                                    r"decision\.onnx"),
        "properties.onnx swapped for decision.onnx": (
            lambda p: _replace(p / "properties.onnx", (p / "decision.onnx").read_bytes()), r"properties\.onnx"),
        "an extra graph": (lambda p: (p / "extra.onnx").write_bytes(b"onnx"), r"extra\.onnx"),
        "an extra folder": (lambda p: (p / "sub").mkdir(), r"sub"),
        "a link to a graph": (lambda p: os.symlink(p / "decision.onnx", p / "link.onnx"), r"link\.onnx"),
        "manifest removed": (lambda p: (p / "package.sha256").unlink(), r"package\.sha256|manifest"),
        "manifest empty": (lambda p: _replace(p / "package.sha256", b""), r"package\.sha256|manifest"),
        "manifest garbage": (lambda p: _replace(p / "package.sha256", b"not a manifest\n"), r"package\.sha256|manifest"),
        "manifest names a path outside": (
            lambda p: _replace(p / "package.sha256", (p / "package.sha256").read_bytes() + b"0" * 64 + b"  ../x\n"),
            r"\.\./x|plain file name|outside"),
        "manifest line for a missing file": (
            lambda p: _replace(p / "package.sha256", (p / "package.sha256").read_bytes() + b"0" * 64 + b"  gone.onnx\n"),
            r"gone\.onnx"),
        "metadata not JSON (manifest rewritten)": (
            lambda p: (_replace(p / "metadata.json", b"{ not json"), _remanifest(p)), r"metadata\.json"),
        "metadata a list (manifest rewritten)": (
            lambda p: (_replace(p / "metadata.json", b"[1, 2]"), _remanifest(p)), r"metadata\.json|object"),
        "metadata binary (manifest rewritten)": (
            lambda p: (_replace(p / "metadata.json", b"\xff\xfe\x00"), _remanifest(p)), r"metadata\.json"),
        "reference.json edited": (lambda p: _replace(p / "reference.json", b"{}"), r"reference\.json"),
    }
    for what, (mutate, message) in faults.items():
        out.append(Probe(f"package {what}", PKG, lambda b, m=mutate, msg=message: (
            _pkg := b.package_copy("fault"), m(_pkg), _package_refused(b, "verify", _pkg, msg))))
    out.append(Probe("verify a folder that is no package", PKG, lambda b: cli(
        b, "verify", ["verify", str(b.fresh("nopkg"))], (1, 2), r"not a pcbm model package")))
    out.append(Probe("verify a missing path", PKG, lambda b: cli(
        b, "verify", ["verify", str(b.root / "nowhere")], (1, 2), r"nowhere")))
    out.append(Probe("verify a file", PKG, lambda b: cli(
        b, "verify", ["verify", str(b.root / "img" / "good.png")], (1, 2), r"good\.png")))
    for key_text, message in (("", r"empty"), ("wrong-key", r"signature|package\.sig|unsigned")):
        out.append(Probe(f"verify --key-file {key_text or 'empty'}", PKG, lambda b, k=key_text, m=message: _key_case(
            b, k, m)))
    return out


def _remanifest(p: Path) -> None:
    from pcbm.runtime.verify import write_manifest

    write_manifest(p)


def _key_case(b: Bench, key: str, message: str) -> None:
    d = b.fresh("key")
    (d / "key.txt").write_text(key)
    cli(b, "verify key", ["verify", str(b.package), "--key-file", str(d / "key.txt")], (1, 2), message, ws=d)


# ------------------------------------------------------------------------------------ images and DICOM (CLI)


def _image_probes() -> list[Probe]:
    out: list[Probe] = []
    for name in CORRUPT:
        out.append(Probe(f"predict PKG {name}", "image", lambda b, n=name: cli(
            b, "predict", ["predict", str(b.package), str(b.root / "img" / n)], (1,), rf"{re.escape(n)}.*("
            + CORRUPT_MESSAGE + ")")))
    return out


def _phi_probes() -> list[Probe]:
    """A text in PixelSpacing (a name) and a name in the file name: neither in any output."""
    def predict(b: Bench) -> None:
        path = write_dicom(b.fresh("phi") / f"{SECRET_NAME}.dcm", PHI_TEXT)
        text = cli(b, "predict dicom", ["predict", str(b.package), str(path)], (0, 1), r".",
                   ws=path.parent)
        assert PHI_TEXT not in text, text

    def etl(b: Bench, opaque: bool) -> None:
        d = b.fresh("phi_etl")
        write_dicom(d / "src" / f"{SECRET_NAME}.dcm", PHI_TEXT)
        (d / "src" / f"{SECRET_NAME}_broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 50)
        argv = ["data", "etl", str(d / "src"), "--out", str(d / "out"), "--salt", "s", "--no-progress"]
        text = cli(b, "etl", argv + (["--opaque-ids"] if opaque else []), (1,), r"not converted", ws=d,
                   writes=("out",))
        files = "".join(p.read_text(errors="replace") for p in (d / "out").rglob("*") if p.suffix in (".csv", ".json"))
        assert PHI_TEXT not in text + files and "JOHN DOE" not in text + files, text
        if opaque:
            assert SECRET_NAME not in text + files, text

    def serve(b: Bench) -> None:
        path = write_dicom(b.fresh("phi_serve") / "scan.dcm", PHI_TEXT)
        r = b.client.post("/v1/predict", files={"image": ("scan.dcm", path.read_bytes(), "application/dicom")},
                          headers={"Authorization": "Bearer " + "t" * 40})
        assert r.status_code == 200, r.text[:300]
        assert PHI_TEXT not in r.text and "JOHN" not in r.text, r.text

    return [Probe("PixelSpacing text: predict", DICOM, predict), Probe("PixelSpacing text: etl", DICOM,
                                                                        lambda b: etl(b, False)),
            Probe("PixelSpacing text: etl --opaque-ids (no file name)", DICOM, lambda b: etl(b, True)),
            Probe("PixelSpacing text: /v1/predict", DICOM, serve)]


# ------------------------------------------------------------------------------------ newer commands


def _command_probes() -> list[Probe]:
    g = lambda b: str(b.root / "img" / "good.png")  # noqa: E731
    rows: list[tuple[str, Callable[[Bench], list[str]], tuple[int, ...], str]] = [
        ("verify without a package", lambda b: ["verify"], (2,), r"missing argument"),
        ("export without --out", lambda b: ["export", "default"], (2,), r"--out"),
        ("export a missing run", lambda b: ["export", str(b.root / "norun"), "--out", str(b.root / "x_pkg")], (2,),
         r"norun"),
        ("export onto a file", lambda b: ["export", "default", "--out", g(b)], (2,), r"file|exists"),
        ("export --reference-limit 0", lambda b: ["export", "default", "--out", str(b.root / "y_pkg"),
                                                  "--reference-limit", "0"], (2,), r"reference-limit"),
        ("export --reference bad spec", lambda b: ["export", "default", "--out", str(b.root / "z_pkg"),
                                                   "--reference", "unknown:x"], (2,), r"unknown dataset kind"),
        ("calibrate a missing run", lambda b: ["calibrate", str(b.root / "norun"), "--data", "phantom:n=2"], (2,),
         r"norun"),
        ("calibrate bad spec", lambda b: ["calibrate", "default", "--data", "unknown:x", "--out",
                                          str(b.root / "cal.json")], (2,), r"unknown dataset kind"),
        ("calibrate --quantile 2", lambda b: ["calibrate", "default", "--data", "phantom:n=2", "--quantile", "2"],
         (2,), r"quantile"),
        ("calibrate --quantile nan", lambda b: ["calibrate", "default", "--data", "phantom:n=2", "--quantile", "nan"],
         (2,), r"quantile"),
        ("calibrate --out onto a folder", lambda b: ["calibrate", "default", "--data", "phantom:n=2", "--out",
                                                     str(b.root / "img")], (2,), r"folder"),
        ("monitor a missing window", lambda b: ["monitor", str(b.root / "nowindow.json"), "--out",
                                                str(b.root / "mon")], (2,), r"nowindow"),
        ("monitor a text file", lambda b: ["monitor", str(b.root / "img" / "text.png"), "--out",
                                           str(b.root / "mon")], (2,), r"text\.png"),
        ("train-head --encoder bogus", lambda b: ["train-head", "--encoder", "bogus", "--data", "phantom:n=4",
                                                  "--out", str(b.root / "th")], (2,), r"bogus"),
        ("train-head --lr nan", lambda b: ["train-head", "--lr", "nan", "--data", "phantom:n=4", "--out",
                                           str(b.root / "th")], (2,), r"lr"),
        ("train-head bad spec", lambda b: ["train-head", "--data", "unknown:x", "--out", str(b.root / "th")], (2,),
         r"unknown dataset kind"),
        ("bench backbones --lr nan", lambda b: ["bench", "backbones", "--data", "phantom:n=8", "--lr", "nan", "--out",
                                                str(b.root / "bb")], (2,), r"lr"),
        ("bench backbones --folds 1", lambda b: ["bench", "backbones", "--data", "phantom:n=8", "--folds", "1",
                                                 "--out", str(b.root / "bb")], (2,), r"folds"),
        ("bench backbones --backbones bogus", lambda b: ["bench", "backbones", "--data", "phantom:n=8",
                                                         "--backbones", "bogus", "--out", str(b.root / "bb")], (2,),
         r"bogus"),
        ("bench backbones bad spec", lambda b: ["bench", "backbones", "--data", "unknown:x", "--out",
                                                str(b.root / "bb")], (2,), r"unknown dataset kind"),
        ("intervene PKG unknown concept", lambda b: ["intervene", str(b.package), g(b), "--set", "cerebelum_visible=1"],
         (2,), r"did you mean"),
        ("intervene PKG hc_mm=nan", lambda b: ["intervene", str(b.package), g(b), "--set", "hc_mm=nan"], (2,),
         r"hc_mm"),
    ]
    return [Probe(name, CMD, lambda b, n=name, a=argv, e=ex, m=msg: cli(b, n, a(b), e, m)) for name, argv, ex, msg
            in rows]


def probes() -> list[Probe]:
    """Every probe of issue 35's part of the corpus."""
    out = [*_spacing_probes(), *_package_probes(), *_serve_probes(), *_image_probes(), *_phi_probes(),
           *_command_probes()]
    names = [p.name for p in out]
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1]
    return out


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (they are not JSON)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


