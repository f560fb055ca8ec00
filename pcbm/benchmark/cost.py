"""What a backbone costs: parameters, GFLOPs (``torch.utils.flop_counter``), images/s and an energy estimate.

The energy figure is an **estimate**: process CPU seconds per image × a stated power per busy core
(``watts_per_core``, 10 W by default: a server core's share of its package power at load). It is
not a measurement; on a GPU run it leaves the GPU out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Cost:
    params_m: float  # parameters, millions
    gflops: float  # floating-point operations per image at the input size, 1e9 (FlopCounterMode: 2 per MAC)
    images_per_s: float  # inference throughput, batch ``batch``, eval mode, no grad
    cpu_s_per_image: float  # process CPU time per image over the timed batches
    joules_per_image_est: float  # cpu_s_per_image × watts_per_core: an estimate
    watts_per_core: float
    input_size: tuple[int, int]
    batch: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Total FLOPs of one forward pass on ``x`` (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure(encoder: torch.nn.Module, batch: int = 16, repeats: int = 3, watts_per_core: float = 10.0) -> Cost:
    """Cost of ``encoder`` (an :class:`~pcbm.benchmark.zoo.encoder.Encoder`) at its input size.

    Example:
        >>> from pcbm.benchmark.zoo import build_backbone
        >>> c = measure(build_backbone("resnet18", image_size=32), batch=2, repeats=1)
        >>> round(c.params_m, 1), c.gflops > 0
        (11.2, True)
    """
    encoder.eval()
    h, w = encoder.input_size
    x = torch.rand(batch, encoder.spec.in_chans, h, w)
    flops = count_flops(encoder, x[:1])
    encoder(x)  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        encoder(x)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = batch * repeats
    cpu_per = cpu / n
    return Cost(params_m=sum(p.numel() for p in encoder.parameters()) / 1e6, gflops=flops / 1e9,
                images_per_s=n / wall, cpu_s_per_image=cpu_per, joules_per_image_est=cpu_per * watts_per_core,
                watts_per_core=watts_per_core, input_size=(h, w), batch=batch, threads=torch.get_num_threads())
