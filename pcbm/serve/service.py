"""What the routes do, without HTTP: read an upload, run the model under the in-flight limit, keep
the metrics, the energy and the drift window. One :class:`Service` per app.

Example:
    >>> gate = Gate(max_in_flight=2, concurrency=1)
    >>> gate.try_enter(), gate.try_enter(), gate.try_enter()
    (True, True, False)
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcbm._io import jsonable
from pcbm.concepts import PLANE_NAMES
from pcbm.errors import InputError
from pcbm.serve.drift import STATUSES, drift_row, drift_summary
from pcbm.serve.energy import DEFAULT_WATTS_PER_CORE, POWERCAP, EnergyMeter
from pcbm.serve.metrics import ServeMetrics
from pcbm.serve.uploads import ApiError, Form, read_upload, sniff
from pcbm.serve.window import WindowStore

MiB = 1 << 20
Wanted = Callable[[], bool] | None  # "is the client still there?", asked when a queued request's turn comes


#: ``--refine-head`` choices -> the runtime's ``refine_head`` argument
REFINE_HEAD: dict[str, bool | str] = {"always": True, "standard": "standard", "never": False}


@dataclass(frozen=True)
class ServeSettings:
    """How one app serves (per worker process)."""

    tokens: tuple[str, ...] = field(default=(), repr=False)  # bearer tokens (never in a repr); empty: no auth
    max_upload_bytes: int = 32 * MiB  # a request body larger than this: 413
    max_pixels: int = 9_000_000  # an image with more pixels: 400 (a 4K frame is 8.3 MP)
    max_in_flight: int = 4  # model requests running or waiting in this worker; one more: 503 + Retry-After
    concurrency: int = 1  # model requests running at once in this worker (the others wait their turn)
    body_timeout_s: float = 30.0  # the whole request body must arrive within this; else 408 (read before a slot)
    queue_timeout_s: float = 60.0  # an admitted request waits at most this long for its turn; else 503
    retry_after_s: int = 1  # the Retry-After of a 503
    window_size: int = 1000  # predictions in the drift window (all workers together)
    state_dir: str | None = None  # the drift window's files (shared by the workers); None: a temp folder per app
    watts_per_core: float = DEFAULT_WATTS_PER_CORE  # the energy estimate's power per busy core, where no RAPL
    powercap_root: str = POWERCAP  # where RAPL is looked for
    warmup: bool = True  # one prediction on a blank frame at start-up before /readyz says ready
    refine_head: str = "always"  # head refiner before measuring: always (as pcbm predict), standard (only on
    # standard frames, as pcbm live: fewer CPU-seconds per head frame) or never

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_in_flight", "concurrency", "window_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.concurrency > self.max_in_flight:
            raise InputError(f"concurrency ({self.concurrency}) cannot exceed max-in-flight ({self.max_in_flight})")
        if self.refine_head not in REFINE_HEAD:
            raise InputError(f"refine-head must be one of {', '.join(REFINE_HEAD)}, got {self.refine_head!r}")
        if not (math.isfinite(self.watts_per_core) and self.watts_per_core > 0):
            raise InputError(f"watts-per-core must be a positive number, got {self.watts_per_core}")
        for name in ("body_timeout_s", "queue_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"{name[:-2].replace('_', '-')} must be a positive number of seconds, got {value}")


class Gate:
    """At most ``max_in_flight`` requests admitted; of those, ``concurrency`` run the model at once."""

    def __init__(self, max_in_flight: int, concurrency: int):
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._n = 0
        self.run = threading.Semaphore(concurrency)

    def try_enter(self) -> bool:
        with self._lock:
            if self._n >= self.max_in_flight:
                return False
            self._n += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._n -= 1

    @property
    def in_flight(self) -> int:
        return self._n


@dataclass
class Upload:
    """An upload read: the frame, its spacing and where that came from, and what the client may see."""

    image: np.ndarray
    spacing: float | None
    spacing_source: str | None
    info: dict[str, Any]


class Service:
    """The model behind the routes (see the module docstring)."""

    def __init__(self, engine: Any, settings: ServeSettings, state_dir: str):
        self.engine = engine
        self.settings = settings
        self.identity = {k: engine.identity.get(k) for k in ("name", "version", "sha256")}
        from pcbm.layout import REFERENCE

        ref_path = Path(engine.package) / REFERENCE
        self.reference: dict[str, Any] | None = json.loads(ref_path.read_text()) if ref_path.is_file() else None
        self.gate = Gate(settings.max_in_flight, settings.concurrency)
        self.meter = EnergyMeter(settings.watts_per_core, settings.powercap_root)
        self.window = WindowStore(state_dir, settings.window_size)
        self.metrics = ServeMetrics(self.drift, self.identity, self.meter.method)
        self.started = time.time()
        self.ready = threading.Event()
        self.ready_error: str | None = None

    # ---- start-up ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """One prediction on a blank frame (loads the graphs' kernels), then ready."""
        try:
            if self.settings.warmup:
                self.engine.predict(np.zeros((64, 64), np.uint8), name="warm-up")
            self.meter.reset()
            self.ready.set()
        except Exception as e:  # noqa: BLE001 - reported by /readyz, the server keeps answering /healthz
            self.ready_error = f"warm-up failed: {type(e).__name__}: {e}"

    # ---- inputs --------------------------------------------------------------------------------
    def read(self, form: Form) -> Upload:
        """The form's image and pixel spacing (the form field wins over a DICOM header)."""
        from pcbm.validate import pixel_spacing

        if form.image is None:
            raise ApiError(400, "no 'image' part in the form: send the image as multipart field 'image'")
        kind = sniff(form.image, form.image_type)
        given = form.one("pixel_spacing_mm")
        spacing = pixel_spacing(given, "form field pixel_spacing_mm") if given not in (None, "") else None
        try:
            loaded = read_upload(form.image, self.settings.max_pixels)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - the reader should raise InputError; never a 5xx for an odd file
            raise InputError(f"cannot read the {kind} upload ({type(e).__name__})") from None
        if spacing is not None:
            source = "form field pixel_spacing_mm"
        else:
            spacing, source = loaded.pixel_spacing_mm, loaded.spacing_source
        h, w = loaded.image.shape
        info = {"kind": kind, "width": int(w), "height": int(h), "pixel_spacing_mm": spacing,
                "spacing_source": source, "notes": list(loaded.notes)}
        return Upload(loaded.image, spacing, source if spacing else None, info)

    # ---- the model -----------------------------------------------------------------------------
    def _run(self, endpoint: str, fn: Callable[[], Any], runs: int = 1, wanted: Wanted = None) -> Any:
        """``fn()`` when this request's turn comes; not at all when its client has gone by then, or
        when the turn has not come within ``queue_timeout_s`` (503: the model is stuck or far too slow)."""
        wait = self.settings.queue_timeout_s
        if not self.gate.run.acquire(timeout=wait):
            self.metrics.rejected.labels(endpoint).inc()
            raise ApiError(503, f"busy: no turn at the model within {wait:g} s; retry shortly",
                           {"Retry-After": str(self.settings.retry_after_s)})
        try:
            if wanted is not None and not wanted():
                self.metrics.abandoned.labels(endpoint).inc()
                raise ApiError(499, "the client closed the connection before its turn; nothing was computed")
            self.meter.begin()
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                self.metrics.inference.labels(endpoint).observe(time.perf_counter() - t0)
                self.metrics.inferences.inc(runs)
                self.metrics.energy.labels(self.meter.method).inc(self.meter.end())
        finally:
            self.gate.run.release()

    def _record(self, pred: Any, up: Upload) -> None:
        self.metrics.predictions.labels(pred.plane, pred.status).inc()
        self.window.add(time.time(), PLANE_NAMES.index(pred.plane), STATUSES.index(pred.status),
                        drift_row(pred, up.image.shape, up.spacing))

    @staticmethod
    def navigation_target(navigate: bool, target: str | None) -> tuple[str | None] | None:
        """``(target or None,)`` when a hint is asked for, else None; a target without ``navigate`` or
        one the navigation policy does not know is an :class:`InputError` naming the choices."""
        if target is not None and not navigate:
            raise InputError("target needs navigate=true")
        if not navigate:
            return None
        if target is not None:
            from pcbm.navigation import known_target

            known_target(target)
        return (target,)

    def predict(self, up: Upload, keep_masks: bool = False, wanted: Wanted = None,
                navigate: tuple[str | None] | None = None) -> Any:
        """The engine's Prediction of an upload; ``navigate`` ((target or None,), see
        :meth:`navigation_target`) adds its ``navigation`` hint, read from the masks as well."""
        masks = keep_masks or navigate is not None
        pred = self._run("/v1/report" if keep_masks else "/v1/predict",
                         lambda: self.engine.predict(up.image, up.spacing, name="upload", keep_masks=masks,
                                                     refine_head=REFINE_HEAD[self.settings.refine_head]),
                         wanted=wanted)
        self._record(pred, up)
        if navigate is not None:
            from pcbm.navigation import hint

            pred.navigation = hint(pred, navigate[0]).to_dict()
        return pred

    def record_json(self, pred: Any, up: Upload) -> dict[str, Any]:
        d = jsonable(pred.to_dict())
        d["model"] = self.identity
        d["input"] = up.info
        return d

    def report(self, up: Upload, fmt: str, wanted: Wanted = None) -> Any:
        from pcbm.explain.build import package_card, report_from_prediction

        pred = self.predict(up, keep_masks=True, wanted=wanted)
        rep = report_from_prediction(up.image, pred, package_card(self.engine.metadata), up.spacing,
                                     up.spacing_source, "upload")
        if fmt == "html":
            return rep.to_html()
        d = jsonable(rep.to_dict())
        d["model"] = self.identity
        d["input"] = up.info
        return d

    def intervene(self, up: Upload, sets: list[str], erases: list[str], wanted: Wanted = None) -> dict[str, Any]:
        from pcbm.explain.interventions import intervene, parse_intervention

        if not sets and not erases:
            raise InputError("nothing to change: give at least one form field set=NAME=VALUE or erase=NAME")
        kwargs = parse_intervention(sets, erases)
        res = self._run("/v1/intervene", lambda: intervene(self.engine, up.image, pixel_spacing_mm=up.spacing, **kwargs),
                        runs=2, wanted=wanted)
        d = jsonable(res.to_dict())
        for side in ("before", "after"):  # the property values too (mm for lengths; null where not applicable)
            d[side]["properties"] = jsonable(getattr(res, side).properties)
        d["model"] = self.identity
        d["input"] = up.info
        return d

    # ---- monitoring ----------------------------------------------------------------------------
    def drift(self) -> dict[str, Any] | None:
        if self.reference is None:
            return None
        _, planes, _, values = self.window.arrays()
        d = drift_summary(self.reference, planes, values)
        d["window_size"] = self.settings.window_size
        return jsonable(d)

    def energy(self) -> dict[str, Any]:
        t = self.metrics.totals()
        per = t["joules"] / t["inferences"] * 1000 if t["inferences"] else None
        return {"method": self.meter.method, "description": self.meter.description, "inferences": int(t["inferences"]),
                "joules": round(t["joules"], 3), "joules_per_1000_inferences": None if per is None else round(per, 2),
                "watts_per_core": None if self.meter.method == "rapl" else self.meter.watts_per_core}

    def model_card(self) -> dict[str, Any]:
        from pcbm.explain.build import package_card

        meta = self.engine.metadata
        ref = self.reference or {}
        return jsonable({
            "identity": self.identity, "card": package_card(meta), "metrics": meta.get("metrics"),
            "ontology": meta.get("ontology"), "thresholds": meta.get("thresholds"), "input": meta.get("input"),
            "reference": {k: ref.get(k) for k in ("data", "n", "plane_mix", "values")} if ref else None,
            "energy": self.energy(), "exported": meta.get("exported"),
        })
