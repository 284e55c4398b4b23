"""Batched scoring throughput of the default model on a GPU (ANCHORS.md: >= 1M customers/s).

Run on a machine with CUDA: ``python -m benchmarks.gpu_throughput OUT.json``. Inputs have
credit default's shapes (6 monthly events of 22 features, an 18-feature profile, every slot
real); the weights are freshly initialised, which does not change the work done. Needs only
numpy and torch (plus this repository's ``model`` and ``benchmarks.tables.efficiency``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from benchmarks.tables.efficiency import count_parameters, measure_latency, measure_throughput
from model import DEFAULT_VARIANT, build

__all__ = ["main"]

EVENTS, EVENT_DIM, PROFILE_DIM = 6, 22, 18


def main(out: Path) -> dict:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build(DEFAULT_VARIANT, EVENT_DIM, PROFILE_DIM, quantiles=()).to(device).eval()
    rows: list[dict] = []
    for batch in (4096, 16384, 65536):
        events = torch.randn(batch, EVENTS, EVENT_DIM, device=device)
        mask = torch.ones(batch, EVENTS, dtype=torch.bool, device=device)
        profile = torch.randn(batch, PROFILE_DIM, device=device)
        for dtype in (torch.float32, torch.bfloat16):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                rate = measure_throughput(model, events, mask, profile, batch, min_seconds=2.0)
            rows.append({"batch": batch, "dtype": str(dtype), "customers_per_s": rate})
            print(rows[-1], flush=True)
    one = torch.randn(64, EVENTS, EVENT_DIM, device=device)
    p50, p99 = measure_latency(
        model,
        one,
        torch.ones(64, EVENTS, dtype=torch.bool, device=device),
        torch.randn(64, PROFILE_DIM, device=device),
        repeats=300,
    )
    result = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "variant": DEFAULT_VARIANT,
        "parameters": count_parameters(model),
        "single_customer_latency_ms": {"p50": p50, "p99": p99},
        "throughput": rows,
        "best_customers_per_s": max(r["customers_per_s"] for r in rows),
    }
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
