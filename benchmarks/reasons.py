"""Reason codes' cost on the stream: events/s with reasons on vs off, in one run.

One process runs the ingest pipeline (``benchmarks.hot_path.bench_pipeline``: decode, window,
forward pass, score bytes, alert decisions; alerts explained by the completer in a thread of its
own; fenced state writes on the local Redis) over the same credit events twice per round,
reasons off then on, on fresh keys each time, for ``--rounds`` rounds; the sink keeps nothing
(Kafka is left out: ``benchmarks/stream_e2e.py`` measures it). The model is the benchmarks'
trained credit model (how many alerts fire, and so how many are explained, depends on the
weights), one torch thread. Per mode: wall events/s, alerts, and the time spent explaining them
(``Scorer.explain_windows``), per alert too.

Accuracy, on the alerts of the first "on" round (the exact batches the pipeline explained): for
each number of integration steps, the completeness gap ``|sum of attributions - (score -
baseline)|`` (median, p99, max) and how often the ordered top three (field, event slot) and the
top one equal those of 256 steps.

Writes ``benchmarks/results/reasons.json``. Run: ``.venv/bin/python -m benchmarks.reasons``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import redis
import torch

from benchmarks.checkpoints import ROOT, trained_checkpoint
from benchmarks.hot_path import Record, bench_pipeline, credit_records
from crmrisk.settings import Settings
from crmrisk.state import Windows
from crmrisk.stream.alert_policy import AlertPolicy
from crmrisk.stream.models import load_domain_model

__all__ = ["main"]


def _once(
    checkpoint: Path,
    values: list[Record],
    batch: int,
    reasons: int,
    s,
    keep: list[Windows] | None = None,
) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis.url)
    prefix = f"bench-reasons-{uuid.uuid4().hex[:8]}"
    kit = load_domain_model(
        checkpoint, "credit", torch.device("cpu"), 3, reasons, s.scoring.reason_steps
    )
    explained = [0, 0.0]  # alerts explained, seconds
    if kit.scorer.explainer is not None:
        explain = kit.scorer.explain_windows

        def timed(windows):
            started = time.perf_counter()
            try:
                return explain(windows)
            finally:
                explained[0] += len(windows)
                explained[1] += time.perf_counter() - started
                if keep is not None:
                    keep.append(windows)

        kit.scorer.explain_windows = timed
    batches = [values[i : i + batch] for i in range(0, len(values), batch)]
    pipeline, sink = bench_pipeline(kit, client, prefix, batches)
    sc = s.scoring
    pipeline.stages.scoring.alerter.policy = AlertPolicy(
        sc.alert_threshold, sc.alert_hysteresis, sc.alert_cooldown_s
    )

    async def drain() -> int:
        consumed = 0
        while True:
            report = await pipeline.step(0.0)
            if not report.consumed:
                await pipeline.close()
                return consumed
            consumed += report.consumed

    started = time.perf_counter()
    consumed = asyncio.run(drain())
    wall = time.perf_counter() - started
    for key in client.scan_iter(f"{prefix}:*", count=5000):
        client.delete(key)
    client.close()
    return {
        "events": consumed,
        "alerts": sink.messages["a"],
        "events_per_s": round(consumed / wall),
        "explained": explained[0],
        "explain_s": round(explained[1], 3),
        "explain_ms_per_alert": round(1000 * explained[1] / explained[0], 2)
        if explained[0]
        else None,
    }


def accuracy(
    checkpoint: Path, batches: list[Windows], steps: list[int], reference: int = 256
) -> dict[str, dict[str, float]]:
    """Per number of steps: completeness gaps and top-three agreement with ``reference`` steps."""

    def explain(n: int) -> list:
        scorer = load_domain_model(checkpoint, "credit", torch.device("cpu"), 3, 5, n).scorer
        return [e for windows in batches for e in scorer.explain_windows(windows)]

    def top(e, k: int) -> list[tuple[str, int | None]]:
        return [(r.field, r.position) for r in e.reasons[:k]]

    want = explain(reference)
    out = {}
    for n in [*steps, reference]:
        got = want if n == reference else explain(n)
        gap = np.abs([e.delta for e in got])
        out[str(n)] = {
            "alerts": len(got),
            "gap_median": round(float(np.median(gap)), 4),
            "gap_p99": round(float(np.quantile(gap, 0.99)), 4),
            "gap_max": round(float(gap.max()), 4),
            "top3_as_reference": round(
                float(np.mean([top(g, 3) == top(w, 3) for g, w in zip(got, want, strict=True)])), 3
            ),
            "top1_as_reference": round(
                float(np.mean([top(g, 1) == top(w, 1) for g, w in zip(got, want, strict=True)])), 3
            ),
        }
    return out


def run(customers: int, batch: int, rounds: int, checkpoint: Path, settings) -> dict[str, Any]:
    torch.set_num_threads(1)
    values = credit_records(customers)
    reasons = settings.scoring.reasons or 5
    _once(checkpoint, values[: batch * 4], batch, reasons, settings)  # warm-up: kernels, caches
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    explained: list[Windows] = []
    for i in range(rounds):
        runs["off"].append(_once(checkpoint, values, batch, 0, settings))
        keep = explained if i == 0 else None
        runs["on"].append(_once(checkpoint, values, batch, reasons, settings, keep))
    off = statistics.median(r["events_per_s"] for r in runs["off"])
    on = statistics.median(r["events_per_s"] for r in runs["on"])
    return {
        "checkpoint": str(checkpoint),
        "customers": customers,
        "events_per_run": runs["off"][0]["events"],
        "batch": batch,
        "reasons_per_alert": reasons,
        "reason_steps": settings.scoring.reason_steps,
        "alert_policy": {
            "threshold": settings.scoring.alert_threshold,
            "hysteresis": settings.scoring.alert_hysteresis,
            "cooldown_s": settings.scoring.alert_cooldown_s,
        },
        "runs": runs,
        "median_events_per_s": {"off": off, "on": on},
        "on_over_off": round(on / off, 3),
        "median_explain_ms_per_alert": statistics.median(
            r["explain_ms_per_alert"] for r in runs["on"]
        ),
        "accuracy_vs_256_steps": accuracy(checkpoint, explained, [4, 8, 12, 16, 32, 64]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model", type=Path, help="checkpoint (default: the benchmarks' trained credit model)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reasons.json")
    args = parser.parse_args(argv)
    settings = Settings()
    checkpoint = args.model or trained_checkpoint()
    result = run(args.customers, args.batch, args.rounds, checkpoint, settings)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_events_per_s"]), "on/off", result["on_over_off"])
    return result


if __name__ == "__main__":
    main()
