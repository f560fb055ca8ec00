"""Prometheus metrics of one server, correct across several worker processes.

Per app (no module-level registry): request duration histogram and requests by endpoint, method
and code; errors (4xx/5xx) by endpoint and code; overload refusals; predictions by plane and
status; inference duration; energy (joules, by method) and inferences; requests in flight. At
scrape time: concept drift from the shared window (:mod:`pcbm.serve.drift`), energy per 1000
inferences and the model's identity.

With several workers the server sets ``PROMETHEUS_MULTIPROC_DIR`` to a folder it made before any
worker imports prometheus_client; each worker's values go to files there and ``/metrics`` merges
them (:class:`prometheus_client.multiprocess.MultiProcessCollector`), whichever worker answers.
Endpoint labels come from a fixed list (anything else is ``other``), so random URLs cannot grow
the label set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from pcbm.concepts import PROPERTY_CONCEPT_NAMES

ENDPOINTS = ("/v1/predict", "/v1/report", "/v1/intervene", "/v1/model", "/v1/drift", "/v1/monitor/window",
             "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
INFER_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)


def endpoint_label(path: str) -> str:
    return path if path in ENDPOINTS else "other"


def multiproc_dir() -> str | None:
    """The multiprocess folder when prometheus_client runs in multiprocess mode, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class _Scraped(Collector):
    """A collector computed at scrape time by ``fn``."""

    def __init__(self, fn: Callable[[], Iterable[Any]]):
        self.fn = fn

    def collect(self) -> Iterable[Any]:
        yield from self.fn()


class ServeMetrics:
    """The metrics of one app (see the module docstring).

    Args:
        drift: called at scrape time: the drift summary (:func:`pcbm.serve.drift.drift_summary`) or None.
        identity: the model's identity (name, version, sha256).
        energy_method: labels the energy counter ('rapl' or 'cpu-time estimate').
    """

    def __init__(self, drift: Callable[[], dict[str, Any] | None], identity: dict[str, Any], energy_method: str):
        self.multiproc = multiproc_dir()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pcbm_http_requests", "HTTP requests by endpoint, method and status code",
                                ["endpoint", "method", "code"], registry=r)
        self.errors = Counter("pcbm_http_errors", "HTTP responses with a 4xx or 5xx code", ["endpoint", "code"], registry=r)
        self.duration = Histogram("pcbm_http_request_duration_seconds", "Time to answer a request", ["endpoint"],
                                  buckets=HTTP_BUCKETS, registry=r)
        self.rejected = Counter("pcbm_overload_rejections", "Requests refused with 503 because too many were in flight",
                                ["endpoint"], registry=r)
        self.abandoned = Counter("pcbm_abandoned_requests", "Queued requests whose client left before their turn "
                                 "(not computed)", ["endpoint"], registry=r)
        self.predictions = Counter("pcbm_predictions", "Predictions by plane and status", ["plane", "status"], registry=r)
        self.inference = Histogram("pcbm_inference_duration_seconds", "Model time per request (decode excluded)",
                                   ["endpoint"], buckets=INFER_BUCKETS, registry=r)
        self.inferences = Counter("pcbm_inferences", "Model runs (an intervention counts two)", registry=r)
        self.energy = Counter("pcbm_energy_joules", "Energy charged to inference (see method)", ["method"], registry=r)
        self.in_flight = Gauge("pcbm_in_flight_requests", "Model requests in flight (running or queued)",
                               registry=r, multiprocess_mode="livesum")
        self.energy_method = energy_method
        self._extra = [_Scraped(lambda: self._model_info(identity)), _Scraped(lambda: self._drift(drift)),
                       _Scraped(self._energy_ratio)]
        if not self.multiproc:
            for c in self._extra:
                r.register(c)

    # ---- scrape-time families ------------------------------------------------------------------
    @staticmethod
    def _model_info(identity: dict[str, Any]) -> Iterable[Any]:
        info = InfoMetricFamily("pcbm_model", "The model served")
        info.add_metric([], {k: str(identity.get(k) or "") for k in ("name", "version", "sha256")})
        yield info

    @staticmethod
    def _drift(drift: Callable[[], dict[str, Any] | None]) -> Iterable[Any]:
        d = drift()
        if d is None:
            return
        n = GaugeMetricFamily("pcbm_drift_window_predictions", "Predictions in the drift window")
        n.add_metric([], d["n"])
        yield n
        mix = GaugeMetricFamily("pcbm_drift_plane_mix_psi", "PSI of the predicted plane mix against the reference")
        if d["plane_mix"]["psi"] is not None:
            mix.add_metric([], d["plane_mix"]["psi"])
        yield mix
        fams = {k: GaugeMetricFamily(f"pcbm_drift_{k}", h, labels=["concept"]) for k, h in (
            ("psi", "PSI of a property concept against the reference (window values where applicable)"),
            ("ks_statistic", "KS statistic against the reference's decile CDF"),
            ("ks_pvalue", "KS p-value against the reference's decile CDF"))}
        for name in PROPERTY_CONCEPT_NAMES:
            c = d["concepts"][name]
            for k, fam in fams.items():
                if c.get(k) is not None:
                    fam.add_metric([name], c[k])
        yield from fams.values()

    def totals(self) -> dict[str, float]:
        """Energy (J) and inferences so far, summed over every worker."""
        if self.multiproc:
            from prometheus_client.multiprocess import MultiProcessCollector

            reg = CollectorRegistry()
            MultiProcessCollector(reg, path=self.multiproc)
            families = reg.collect()
        else:
            families = [f for c in (self.energy, self.inferences) for f in c.collect()]
        out = {"joules": 0.0, "inferences": 0.0}
        for fam in families:
            for s in fam.samples:
                if s.name == "pcbm_energy_joules_total":
                    out["joules"] += s.value
                elif s.name == "pcbm_inferences_total":
                    out["inferences"] += s.value
        return out

    def _energy_ratio(self) -> Iterable[Any]:
        t = self.totals()
        g = GaugeMetricFamily("pcbm_energy_joules_per_1000_inferences",
                              "Energy per 1000 inferences so far (method label: measured by RAPL or estimated)",
                              labels=["method"])
        if t["inferences"]:
            g.add_metric([self.energy_method], t["joules"] / t["inferences"] * 1000)
        yield g

    def render(self) -> bytes:
        """The text exposition of every metric, all workers merged."""
        if not self.multiproc:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        reg = CollectorRegistry()
        MultiProcessCollector(reg, path=self.multiproc)
        for c in self._extra:
            reg.register(c)
        return generate_latest(reg)
