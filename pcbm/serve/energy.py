"""Energy of inference: measured from RAPL where readable, otherwise estimated from CPU time.

* **RAPL** (``/sys/class/powercap/intel-rapl:N/energy_uj``, the CPU packages' energy counters):
  the energy the packages used while one inference ran (read before and after it, counter
  wrap-around handled). It is the whole package's energy: other processes running at the same
  time are counted too, and inferences overlapping in several workers are each charged the
  overlap, so it is an upper bound on a busy or shared machine.
* **CPU-time estimate** (where RAPL is not readable, e.g. in most VMs and containers): the serving
  process's CPU time (user + system, all its threads: HTTP, decoding, inference) since the last
  inference, times a stated power per busy core, :data:`DEFAULT_WATTS_PER_CORE` unless given. An
  estimate, labelled as such: it ignores idle and uncore power and assumes every busy core draws
  that figure.

Example:
    >>> m = EnergyMeter(powercap_root="/nonexistent", watts_per_core=10.0)
    >>> m.method
    'cpu-time estimate'
    >>> m.begin(); j = m.end(); j >= 0
    True
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DEFAULT_WATTS_PER_CORE = 10.0  # W per busy core: roughly a server CPU's TDP over its cores (e.g. 200 W / 20)
POWERCAP = "/sys/class/powercap"


def rapl_zones(root: str | os.PathLike[str] = POWERCAP) -> list[Path]:
    """Top-level RAPL package zones whose ``energy_uj`` this process can read (none in most VMs)."""
    base = Path(root)
    zones = []
    try:
        candidates = sorted(base.glob("intel-rapl:*"))
    except OSError:
        return []
    for z in candidates:
        if z.name.count(":") != 1:  # intel-rapl:0:1 is a sub-zone of package 0 (core, dram): not summed twice
            continue
        try:
            int((z / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(z)
    return zones


class EnergyMeter:
    """Joules per inference, by RAPL or by CPU time (see the module docstring).

    Args:
        watts_per_core: the stated power per busy core of the CPU-time estimate.
        powercap_root: where the RAPL zones are (tests point it at a fake tree).
    """

    def __init__(self, watts_per_core: float = DEFAULT_WATTS_PER_CORE, powercap_root: str | os.PathLike[str] = POWERCAP):
        if not watts_per_core > 0:
            raise ValueError(f"watts per core must be positive, got {watts_per_core}")
        self.watts_per_core = float(watts_per_core)
        self.zones = rapl_zones(powercap_root)
        self.method = "rapl" if self.zones else "cpu-time estimate"
        self._cpu_last = time.process_time()
        self._rapl_start: list[int] | None = None

    @property
    def description(self) -> str:
        if self.method == "rapl":
            return (f"measured: RAPL package energy ({len(self.zones)} zone(s)) during each inference; the whole "
                    "package's energy, so other load running at the same time is counted too")
        return (f"estimated: process CPU time (all threads) x {self.watts_per_core:g} W per busy core; "
                "RAPL (/sys/class/powercap) not readable here")

    def reset(self) -> None:
        """Start counting from now (after start-up and warm-up, which no inference should be charged)."""
        self._cpu_last = time.process_time()
        self._rapl_start = None

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def _ranges(self) -> list[int]:
        out = []
        for z in self.zones:
            try:
                out.append(int((z / "max_energy_range_uj").read_text()))
            except (OSError, ValueError):
                out.append(2**32)
        return out

    def begin(self) -> None:
        """Mark the start of an inference (RAPL reads the counters here)."""
        if self.zones:
            try:
                self._rapl_start = self._read()
            except (OSError, ValueError):
                self._rapl_start = None

    def end(self) -> float:
        """Joules to charge to the inference that just ended."""
        if self.zones and self._rapl_start is not None:
            try:
                now = self._read()
            except (OSError, ValueError):
                return 0.0
            total = 0
            for a, b, top in zip(self._rapl_start, now, self._ranges(), strict=True):
                total += b - a if b >= a else b + top - a
            self._rapl_start = None
            return total / 1e6
        cpu = time.process_time()
        used, self._cpu_last = cpu - self._cpu_last, cpu
        return max(used, 0.0) * self.watts_per_core
