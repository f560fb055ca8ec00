"""The live loop on a phantom sweep fed at 30 fps (issue 17): throughput, latency, overhead, drops, CPU.

    .venv/bin/python bench/bench_live.py [--package PKG] [--seconds 40] [--fps 30] [--threads 2]
        [--modes runtime,openvino-bf16,torch] [--out bench/live]

For each mode a :class:`pcbm.live.session.LiveSession` runs the built-in phantom sweep at ``--fps``
with recording on (mp4) and the page's WebSocket read by a client in this process for ``--seconds``:

* frames processed per second (results on the WebSocket / wall time, after a 5 s warm-up);
* end-to-end latency, capture → the result read by the WebSocket client (p50, p95);
* the framework's overhead over a bare ``predict``: latency minus the engine's own predict time;
* frames dropped (captured but never predicted: the latest-frame slot skips them by design) and
  frames lost by the recorder (captured − recorded; must be 0);
* CPU use of the session's processes (capture, engine, web server + this client), % of one core.

Modes: ``runtime`` (the package on onnxruntime), ``openvino-bf16`` (the package with
``PCBM_RUNTIME_BACKEND=openvino-bf16``), ``torch`` (the shipped default in eager torch).
Writes ``results.json``, ``results.md`` and ``live.png``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def run_mode(mode: str, model: str, seconds: float, fps: float, threads: int, warmup: float = 5.0) -> dict:
    import psutil
    from websockets.sync.client import connect

    from pcbm.live.app import serving
    from pcbm.live.session import LiveSession

    if mode == "openvino-bf16":
        os.environ["PCBM_RUNTIME_BACKEND"] = "openvino-bf16"
    else:
        os.environ.pop("PCBM_RUNTIME_BACKEND", None)
    folder = Path(tempfile.mkdtemp(prefix=f"pcbm_live_{mode}_")) / "session"
    frames = int((seconds + warmup + 60) * fps)  # long enough never to end inside the measurement
    s = LiveSession(f"phantom-sweep:fps={fps:g},frames={frames}", model, folder, record=True, threads=threads,
                    smooth=3).start()
    lat, infer, shown, truth = [], [], [], []
    try:
        with serving(s) as url:
            # wait for the engine (the first result), then measure
            with connect(url.replace("http", "ws") + "/ws", open_timeout=30, max_size=None) as ws:
                t_ready = time.time()
                while time.time() - t_ready < 120:
                    try:
                        m = ws.recv(timeout=5)
                    except TimeoutError:
                        continue
                    if isinstance(m, str) and json.loads(m).get("type") == "result":
                        break
                procs = [psutil.Process()] + [psutil.Process(p.pid) for p in (s.capture_proc, s.engine_proc)]
                t_start = time.time() + warmup
                cpu0 = None
                n_frames = n_results = 0
                while time.time() < t_start + seconds:
                    try:
                        m = ws.recv(timeout=1.0)
                    except TimeoutError:
                        continue
                    now = time.time()
                    if cpu0 is None and now >= t_start:
                        cpu0 = (now, [sum(p.cpu_times()[:2]) for p in procs])
                        st0 = s.status()
                    if now < t_start:
                        continue
                    if isinstance(m, bytes):
                        n_frames += 1
                        continue
                    msg = json.loads(m)
                    if msg.get("type") != "result":
                        continue
                    n_results += 1
                    lat.append((now - msg["captured_at"]) * 1000)
                    infer.append(msg["infer_ms"])
                    shown.append(msg["view"]["status"])
                    truth.append((msg.get("truth") or {}).get("status"))
                t_end = time.time()
                cpu = [sum(p.cpu_times()[:2]) for p in procs]
                st1 = s.status()
    finally:
        s.stop()
    st = s.slot_stats
    rows = list(csv.DictReader(open(folder / "recording.timestamps.csv")))
    wall = t_end - cpu0[0]
    cpu_pct = [100 * (b - a) / wall for a, b in zip(cpu0[1], cpu, strict=True)]
    lat_a, inf_a = np.asarray(lat), np.asarray(infer)
    captured = st1["frames_captured"] - st0["frames_captured"] if "frames_captured" in st1 else None
    agree = [a == b for a, b in zip(shown, truth, strict=True) if b]
    return {
        "mode": mode, "model": model, "seconds": round(wall, 1), "source_fps": fps,
        "processed_fps": round(n_results / wall, 2), "frames_on_page_fps": round(n_frames / wall, 2),
        "latency_ms_p50": round(float(np.percentile(lat_a, 50)), 1), "latency_ms_p95": round(float(np.percentile(lat_a, 95)), 1),
        "predict_ms_p50": round(float(np.percentile(inf_a, 50)), 1), "predict_ms_p95": round(float(np.percentile(inf_a, 95)), 1),
        "overhead_ms_p50": round(float(np.percentile(lat_a - inf_a, 50)), 1),
        "overhead_ms_p95": round(float(np.percentile(lat_a - inf_a, 95)), 1),
        "frames_captured": captured, "frames_dropped": None if captured is None else captured - n_results,
        "recording_frames": len(rows), "recording_lost": st["frames_captured"] - len(rows),
        "cpu_percent": {"web+client": round(cpu_pct[0]), "capture": round(cpu_pct[1]), "engine": round(cpu_pct[2]),
                        "total": round(sum(cpu_pct))},
        "status_agrees_with_truth": round(float(np.mean(agree)), 3) if agree else None,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = [r["mode"] for r in results]
    a.bar(names, [r["processed_fps"] for r in results], color="#2f80ed")
    a.axhline(25, ls="--", color="#d97706", label="goal 25 fps")
    a.set_ylabel("frames processed per second")
    a.legend(fontsize=8)
    x = np.arange(len(results))
    b.bar(x - 0.2, [r["latency_ms_p50"] for r in results], 0.4, label="latency p50", color="#27ae60")
    b.bar(x + 0.2, [r["latency_ms_p95"] for r in results], 0.4, label="latency p95", color="#8e44ad")
    b.axhline(100, ls="--", color="#d97706", label="goal p95 100 ms")
    b.set_xticks(x, names)
    b.set_ylabel("capture → WebSocket (ms)")
    b.legend(fontsize=8)
    fig.suptitle("pcbm live on a phantom sweep at 30 fps (2 cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default=None, help="an exported package (default: export the default to OUT/pkg)")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="runtime,openvino-bf16,torch")
    ap.add_argument("--out", default="bench/live")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pkg = args.package
    if pkg is None:
        from pcbm.export.package import export_package

        pkg = str(export_package("default", out / "pkg", overwrite=True, progress=print))
    results = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        r = run_mode(mode, "default" if mode == "torch" else pkg, args.seconds, args.fps, args.threads)
        print(json.dumps(r))
        results.append(r)
    meta = {"command": "python bench/bench_live.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} engine threads"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = ["| mode | processed fps | latency p50 / p95 (ms) | predict p50 / p95 (ms) | overhead p50 / p95 (ms) | "
             "dropped / captured | recording lost | CPU % (engine / capture / web / total) | status = truth |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["cpu_percent"]
        lines.append(f"| {r['mode']} | {r['processed_fps']} | {r['latency_ms_p50']} / {r['latency_ms_p95']} | "
                     f"{r['predict_ms_p50']} / {r['predict_ms_p95']} | {r['overhead_ms_p50']} / {r['overhead_ms_p95']} | "
                     f"{r['frames_dropped']} / {r['frames_captured']} | {r['recording_lost']} | "
                     f"{c['engine']} / {c['capture']} / {c['web+client']} / {c['total']} | {r['status_agrees_with_truth']} |")
    (out / "results.md").write_text(json.dumps(meta) + "\n\n" + "\n".join(lines) + "\n")
    plot(results, out / "live.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
