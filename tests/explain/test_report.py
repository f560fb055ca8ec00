"""Concept reports: contents, renderers, the CLI, and a real render in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pcbm.cli import app
from pcbm.concepts import get_plane
from pcbm.explain import ConceptReport, explain_image, find_pixel_spacing
from pcbm.explain.report import MeasurementRow, checklist_for

runner = CliRunner()


def test_checklist_rows_follow_the_ontology():
    rows = checklist_for("trans_thalamic", {"csp_visible": 0.9, "cerebellum_visible": 0.8}, {"csp_visible"})
    assert [r.property for r in rows] == [c.property for c in get_plane("trans_thalamic").criteria]
    by = {r.property: r for r in rows}
    assert by["csp_visible"].passed and by["csp_visible"].intervened and by["csp_visible"].derived_from == ("csp",)
    assert by["cerebellum_visible"].passed is False and by["cerebellum_visible"].describe() == "cerebellum_visible = no"
    assert by["thalamus_visible"].passed is None  # unknown value


def test_example_report_renderers(tmp_path):
    r = ConceptReport.example()
    html = r.to_html()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    # self-contained: images embedded, no external references, no scripts
    assert html.count("data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=['\"](https?:|//|/)", html) and "<script" not in html
    for c in get_plane("trans_thalamic").criteria:
        assert c.describe() in html
    assert "cerebellum_visible = no</b>" in html and ">fail<" in html and ">pass<" in html
    assert "close to standard" in html and "HC" in html and "152.3 mm" in html and "--pixel-spacing flag" in html
    md = r.to_markdown()
    assert "| cerebellum_visible = no | 0.71 | fail | cerebellum |" in md
    d = json.loads(r.to_json())
    assert d["decision"]["status"] == "close_to_standard" and d["missing"] == ["cerebellum_visible"]
    assert d["pixel_spacing_source"] == "--pixel-spacing flag" and d["model"]["trained_on"] == "phantom:n=100"
    png = r.to_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    paths = r.save(tmp_path, "ex", ("html", "json", "md", "png"))
    assert all(p.is_file() for p in paths.values())
    with pytest.raises(ValueError, match="unknown report format"):
        r.save(tmp_path, "ex", ("pdf",))


def test_report_without_spacing_says_px():
    r = ConceptReport.example()
    r.pixel_spacing_mm, r.spacing_source = None, None
    r.measurements = [MeasurementRow("hc", 300.0, "px")]
    assert "lengths in pixels" in r.to_html() and "HC 300.0 px" in r.to_markdown()


def test_an_unreliable_measurement_says_why_instead_of_a_number():
    r = ConceptReport.example()
    r.measurements = [MeasurementRow("hc", 171.0, "mm", 0.41, "the mask is in 3 pieces (quality 0.41 < 0.85)"),
                      MeasurementRow("bpd", 42.0, "mm", 0.97)]
    html, md = r.to_html(), r.to_markdown()
    assert "<b>unreliable</b> <s>171.0 mm</s>" in html and "the mask is in 3 pieces" in html and "42.0 mm" in html
    assert "HC unreliable (measured 171.0 mm: the mask is in 3 pieces" in md and "- BPD 42.0 mm" in md
    d = json.loads(r.to_json())["measurements"]
    assert d["hc"]["value"] is None and d["hc"]["measured"] == 171.0 and d["hc"]["reliable"] is False
    assert d["bpd"]["value"] == 42.0 and d["bpd"]["reliable"] and d["bpd"]["reason"] is None


def test_explain_image_on_tiny_model(tiny_model, small_image):
    r = explain_image(tiny_model, small_image, info={"run_dir": "tiny"}, pixel_spacing_mm=0.2,
                      spacing_source="test", heatmap="gradcam")
    assert r.image.shape == small_image.shape and r.masks["head"].shape == small_image.shape
    assert r.heatmap is not None and r.heatmap.shape == small_image.shape  # letterbox padding cropped
    assert r.status in ("standard", "close_to_standard", "not_a_known_plane")
    assert [c.property for c in r.checklist] == [c.property for c in get_plane(r.plane).criteria]
    assert set(r.missing) == {c.property for c in r.checklist if not c.passed}
    assert r.contribution_method == "exact" and len(r.contributions) == 6
    assert r.model["name"] == "tiny" and r.model["run"] == "tiny"
    for m in r.measurements:
        assert m.unit in ("mm", "deg")


def test_hc18_spacing_is_found_from_the_dataset(hc18_path):
    img = sorted((hc18_path / "images").glob("*.png"))[0]
    spacing, source = find_pixel_spacing(img)
    assert spacing and 0.01 < spacing < 1 and "pixel_size_and_hc.csv" in source


def test_cli_report_writes_reports_and_index(tiny_run, phantom_png, tmp_path):
    out = tmp_path / "reports"
    r = runner.invoke(app, ["report", str(tiny_run), str(phantom_png), str(phantom_png), "--out", str(out),
                            "--pixel-spacing", "0.3", "--formats", "html,json,md"])
    assert r.exit_code == 0, r.output
    assert (out / "phantom_tt.html").is_file() and (out / "phantom_tt_2.json").is_file()
    assert (out / "phantom_tt.md").is_file()
    index = (out / "index.html").read_text()
    assert "phantom_tt.html" in index and "phantom_tt_2.html" in index
    d = json.loads((out / "phantom_tt.json").read_text())
    assert d["pixel_spacing_source"] == "--pixel-spacing flag"
    assert d["model"]["trained_on"] == "phantom:n=8,seed=0 (6 train / 2 val images)"
    assert d["model"]["training_mode"] == "joint"
    assert d["model"]["validation_metrics"] == {"phantom:n=8,seed=0": {"plane_macro_f1": 0.5}}
    assert "phantom:n=8,seed=0: plane_macro_f1 0.5" in (out / "phantom_tt.html").read_text()
    html = (out / "phantom_tt.html").read_text()
    plane = get_plane(d["decision"]["plane"])
    for c in plane.criteria:
        assert c.describe() in html
    assert "wrote 2 report(s)" in r.output


def test_cli_report_errors(tiny_run, tmp_path):
    r = subprocess.run([".venv/bin/pcbm", "report", str(tiny_run), str(tmp_path / "nope.png"), "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    # a missing image is that image's failure (exit 1), not a usage error
    assert r.returncode == 1 and "image not found" in r.stderr and "Traceback" not in r.stderr
    assert "1 of 1 images failed" in r.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]

# Appended to a copy of the report: reports whether every embedded image decoded (and no script
# error happened) by writing into the DOM, which --dump-dom prints.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
  const d = document.createElement('div'); d.id = 'probe';
  d.textContent = 'PROBE images=' + imgs.length + ' ok=' + ok + ' errors=' + window.__errors.length;
  document.body.appendChild(d);
});
</script>"""


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs Debian's chromium)")
    page = tmp_path / "report.html"
    ConceptReport.example().to_html(page)
    shot = tmp_path / "shot.png"
    base = [exe, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=820,1180"]
    r = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), r.stderr[-2000:]
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 500 and img.std() > 10, "blank screenshot"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    errors = [ln for ln in r.stderr.splitlines() if "Uncaught" in ln or ("CONSOLE" in ln and "error" in ln.lower())]
    assert not errors, errors
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    r = subprocess.run([*base, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r"PROBE images=(\d+) ok=(\w+) errors=(\d+)", r.stdout)
    assert m, r.stdout[-1000:] + r.stderr[-1000:]
    assert m.groups() == ("2", "true", "0")


def test_report_from_dicom_takes_spacing_from_header(tiny_model, small_image, tmp_path):
    pytest.importorskip("pydicom")
    from dicom_helpers import PID, make_dicom

    path = make_dicom(tmp_path / "scan.dcm", small_image, region_cm=None, pixel_spacing=[0.25, 0.25])
    r = explain_image(tiny_model, path, heatmap=None)
    assert r.pixel_spacing_mm == pytest.approx(0.25) and r.spacing_source.startswith("DICOM header")
    assert "DOE" not in r.to_html() and PID not in r.to_json()
    r2 = explain_image(tiny_model, path, pixel_spacing_mm=0.5, spacing_source="--pixel-spacing flag", heatmap=None)
    assert r2.pixel_spacing_mm == 0.5 and r2.spacing_source == "--pixel-spacing flag"


def test_report_from_a_sample(tiny_model):
    from pcbm.data import open_dataset

    s = open_dataset("phantom:n=2,seed=4")[0]
    r = explain_image(tiny_model, s, heatmap="saliency")
    assert r.pixel_spacing_mm == s.pixel_spacing_mm and r.spacing_source == "dataset (phantom)"
    assert r.source == s.id


def test_report_is_built_on_the_prediction_record(tiny_model, small_image):
    """The report's decision, measurements and properties are pcbm predict's record of the image."""
    from pcbm.explain import explain_image
    from pcbm.models import predict

    r = explain_image(tiny_model, small_image, heatmap=None, pixel_spacing_mm=0.2)
    [p] = predict(tiny_model, [small_image], 0.2, names=[r.source])
    d = r.to_dict()
    assert d["prediction"]["plane"] == p.plane == r.plane and d["prediction"]["status"] == p.status == r.status
    assert d["prediction"]["plane_probs"] == p.plane_probs == r.plane_probs
    assert d["prediction"]["measurements"] == p.measurements
    assert r.missing == p.missing_criteria and r.status_reason == p.status_reason
    assert {m.name for m in r.measurements} == set(p.measurements)
    for n, v in p.properties.items():  # lengths the report measured show the measurement, the rest the record's
        if n not in ("hc_mm", "bpd_mm", "ofd_mm", "ac_mm", "fl_mm"):
            assert r.properties[n] == v, n
