"""Efficiency figures of a model (Tables 2 and 4): size, FLOPs, latency and throughput.

All timings are wall-clock on the device the model sits on, in inference mode, after warm-up.
FLOPs come from ``benchmarks/flops.py`` (torch's ``FlopCounterMode`` with the recurrent layers
added) on one customer with a full window, the worst case the scorer sees.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from benchmarks.flops import count_flops

__all__ = [
    "Efficiency",
    "count_parameters",
    "measure_efficiency",
    "measure_latency",
    "measure_throughput",
]


@dataclass(frozen=True)
class Efficiency:
    parameters: int
    flops_per_customer: int
    latency_p50_ms: float
    latency_p99_ms: float
    throughput_per_s: float
    batch_size: int
    threads: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _one_customer(
    events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor, index: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return events[index : index + 1], mask[index : index + 1], profile[index : index + 1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: torch.nn.Module,
    events: torch.Tensor,
    mask: torch.Tensor,
    profile: torch.Tensor,
    repeats: int = 300,
    warmup: int = 20,
) -> tuple[float, float]:
    """p50 and p99 of single-customer forward latency, in ms, cycling over the rows given."""
    model.eval()
    device = events.device
    n = events.shape[0]
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            one = _one_customer(events, mask, profile, i % n)
            _sync(device)
            started = time.perf_counter()
            model(*one)
            _sync(device)
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def measure_throughput(
    model: torch.nn.Module,
    events: torch.Tensor,
    mask: torch.Tensor,
    profile: torch.Tensor,
    batch_size: int = 1024,
    min_seconds: float = 2.0,
) -> float:
    """Customers scored per second in batches of ``batch_size`` (rows repeat if too few)."""
    model.eval()
    device = events.device
    reps = -(-batch_size // events.shape[0])
    e = events.repeat(reps, 1, 1)[:batch_size]
    m = mask.repeat(reps, 1)[:batch_size]
    p = profile.repeat(reps, 1)[:batch_size]
    with torch.inference_mode():
        model(e, m, p)  # warm-up
        _sync(device)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < min_seconds or done == 0:
            model(e, m, p)
            done += batch_size
        _sync(device)
        elapsed = time.perf_counter() - started
    return done / elapsed


def measure_efficiency(
    model: torch.nn.Module,
    events: np.ndarray,
    mask: np.ndarray,
    profile: np.ndarray,
    batch_size: int = 1024,
    latency_repeats: int = 300,
    throughput_seconds: float = 2.0,
    device: str = "cpu",
    served: torch.nn.Module | None = None,
) -> Efficiency:
    """All figures on real customers' arrays (FLOPs on the longest sequence given).

    Size and FLOPs are ``model``'s; latency and throughput are those of ``served`` when given
    (what the stream runs, e.g. the fused members: the same outputs, other operations).
    """
    dev = torch.device(device)
    model = model.to(dev).eval()
    timed = model if served is None else served.to(dev).eval()
    e = torch.as_tensor(np.asarray(events, np.float32), device=dev)
    m = torch.as_tensor(np.asarray(mask, bool), device=dev)
    p = torch.as_tensor(np.asarray(profile, np.float32), device=dev)
    longest = int(m.sum(dim=1).argmax())
    flops = round(count_flops(model, *_one_customer(e, m, p, longest)))
    p50, p99 = measure_latency(timed, e, m, p, repeats=latency_repeats)
    throughput = measure_throughput(timed, e, m, p, batch_size, throughput_seconds)
    return Efficiency(
        parameters=count_parameters(model),
        flops_per_customer=flops,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        throughput_per_s=throughput,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
        device=str(dev),
    )
