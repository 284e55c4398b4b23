"""Model speed per variant: parameters, FLOPs per customer, single-customer latency, throughput.

Inputs are random full windows (every slot a real event: the worst case for a given ``T``), so
the figures measure the architecture, not a dataset. Run::

    .venv/bin/python -m benchmarks.model_speed --threads 2 \
        --out benchmarks/results/model_speed.json

Writes one JSON document: the settings, the machine (CPU, load average, torch version) and one
record per variant and sequence length.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.flops import count_flops
from crmrisk.model import VARIANTS, build

__all__ = ["main", "measure_variant"]

log = logging.getLogger(__name__)


def _inputs(
    batch: int, steps: int, event_dim: int, profile_dim: int, device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    events = torch.randn(batch, steps, event_dim, generator=g).to(device)
    mask = torch.ones(batch, steps, dtype=torch.bool, device=device)
    profile = torch.randn(batch, profile_dim, generator=g).to(device)
    return events, mask, profile


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _latency_ms(model: Callable, inputs: tuple, repeats: int, device: torch.device):
    times = []
    with torch.inference_mode():
        for _ in range(50):  # warm-up
            model(*inputs)
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _throughput(model: Callable, inputs: tuple, seconds: float, device: torch.device):
    batch = inputs[0].shape[0]
    with torch.inference_mode():
        for _ in range(3):
            model(*inputs)
        _sync(device)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(*inputs)
            done += batch
        _sync(device)
        return done / (time.perf_counter() - start)


def measure_variant(
    variant: str,
    event_dim: int,
    profile_dim: int,
    lengths: tuple[int, ...],
    batch: int,
    latency_repeats: int,
    throughput_seconds: float,
    device: torch.device,
    overrides: dict[str, Any] | None = None,
    autocast: torch.dtype | None = None,
) -> dict[str, Any]:
    """Parameters, then per sequence length: FLOPs, latency p50/p99 (ms), throughput (1/s)."""
    model = build(variant, event_dim, profile_dim, seed=0, **(overrides or {})).to(device).eval()
    # FLOPs do not depend on the dtype: count them on the plain model, time the autocast one.
    timed = model
    if autocast is not None:
        timed = torch.autocast(device.type, dtype=autocast)(model)
    record: dict[str, Any] = {
        "variant": variant,
        "overrides": overrides or {},
        "parameters": sum(p.numel() for p in model.parameters()),
        "by_length": {},
    }
    for steps in lengths:
        one = _inputs(1, steps, event_dim, profile_dim, device, seed=1)
        many = _inputs(batch, steps, event_dim, profile_dim, device, seed=2)
        p50, p99 = _latency_ms(timed, one, latency_repeats, device)
        record["by_length"][str(steps)] = {
            "flops_per_customer": count_flops(model, *one),
            "latency_p50_ms": round(p50, 4),
            "latency_p99_ms": round(p99, 4),
            "throughput_per_s": round(_throughput(timed, many, throughput_seconds, device), 1),
        }
        log.info("%s T=%d %s", variant, steps, record["by_length"][str(steps)])
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--event-dim", type=int, default=32)
    parser.add_argument("--profile-dim", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="*", default=[6, 32])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-repeats", type=int, default=1000)
    parser.add_argument("--throughput-seconds", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", choices=["bfloat16", "float16"], default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a RiskModelConfig field, e.g. --set hidden=48 --set kernel_sizes=[1,3]",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_speed.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    autocast = getattr(torch, args.autocast) if args.autocast else None
    results = [
        measure_variant(
            v,
            args.event_dim,
            args.profile_dim,
            tuple(args.lengths),
            args.batch,
            args.latency_repeats,
            args.throughput_seconds,
            device,
            overrides,
            autocast,
        )
        for v in args.variants
    ]
    document = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "inputs": "random full windows (all T slots real), seed 0 weights",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
