"""The GPU path measured: the scorer's real call, one customer, precisions, reasons, training.

``python -m benchmarks.gpu_throughput --device cuda --out OUT.json`` (``benchmarks/gpu_check.sh``
runs it on a GPU machine); ``--device cpu --quick`` runs every section small, anywhere, to prove
the code path (its figures say nothing about a GPU). Sections:

- ``scorer``: ``Scorer.forward`` (numpy in, numpy out: what the worker calls) in customers/s per
  batch size, fp32 vs bf16, with and without CUDA graphs, at credit's shapes (6 events of 22
  features, bucketed to 8 slots; 18 profile fields); weights freshly initialised (the same work);
- ``single``: one customer end to end through ``Scorer.score_windows`` (padding, forward, top
  events), p50/p99 in ms, with and without CUDA graphs;
- ``reasons``: alerts explained per second (``Explainer``, 16 steps) on the device;
- ``training``: ``train_domain`` on credit on the device vs the CPU with 2 threads: fit seconds
  and test AUC (train, evaluate, calibrate and publish on each).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from crmrisk.model import DEFAULT_VARIANT, FeatureEncoder, build
from crmrisk.model.attribution import Explainer
from crmrisk.model.devices import resolve_device
from crmrisk.state import CustomerSequence
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.scorer import Scorer, windows_of

__all__ = ["main"]

EVENTS, SLOTS, EVENT_DIM, PROFILE_DIM, QUANTILES = 6, 8, 22, 18, (0.1, 0.5, 0.9)
log = logging.getLogger(__name__)


def _scorer(device: torch.device, precision: str, graphs: bool) -> Scorer:
    torch.manual_seed(0)
    network = build(DEFAULT_VARIANT, EVENT_DIM, PROFILE_DIM, QUANTILES, seed=0)
    return Scorer(network, version="bench", event_dim=EVENT_DIM, profile_dim=PROFILE_DIM,
                  quantiles=QUANTILES, device=device, top_events=3, precision=precision,
                  cuda_graphs=graphs)  # fmt: skip


def _times(call, seconds: float, warmup: int = 3, most: int = 10_000) -> list[float]:
    """Seconds per call, called until ``seconds`` have passed (after ``warmup`` calls)."""
    for _ in range(warmup):
        call()
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(out) < most:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def _variants(device: torch.device) -> list[tuple[str, bool]]:
    if device.type != "cuda":
        return [("fp32", False)]
    return [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def scorer_rates(device: torch.device, batches: list[int], seconds: float) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for precision, graphs in _variants(device):
        scorer = _scorer(device, precision, graphs)
        for batch in batches:
            events = np.zeros((batch, SLOTS, EVENT_DIM), np.float32)
            events[:, :EVENTS] = rng.normal(size=(batch, EVENTS, EVENT_DIM))
            mask = np.zeros((batch, SLOTS), bool)
            mask[:, :EVENTS] = True
            profile = rng.normal(size=(batch, PROFILE_DIM)).astype(np.float32)
            call = lambda s=scorer, e=events, m=mask, p=profile: s.forward(e, m, p)  # noqa: E731
            times = _times(call, seconds)
            rows.append({"batch": batch, "precision": precision, "cuda_graphs": graphs,
                         "customers_per_s": batch / statistics.median(times),
                         "calls": len(times)})  # fmt: skip
            log.info("%s", rows[-1])
    return rows


def single_customer(device: torch.device, seconds: float) -> list[dict]:
    rng = np.random.default_rng(1)
    request = ScoreRequest(
        customer_id="c0", domain="credit", event_id="c0-5", event_time_ms=6000, produced_ms=0,
        sequence=CustomerSequence(
            event_ids=[f"c0-{t}" for t in range(EVENTS)],
            event_times_ms=np.arange(EVENTS, dtype=np.int64) * 1000,
            kinds=["bill"] * EVENTS,
            events=rng.normal(size=(EVENTS, EVENT_DIM)).astype(np.float32),
            profile=rng.normal(size=PROFILE_DIM).astype(np.float32),
        ),
    )  # fmt: skip
    rows = []
    for precision, graphs in _variants(device):
        if precision != "fp32":
            continue
        scorer = _scorer(device, precision, graphs)
        w = windows_of([request], EVENT_DIM, PROFILE_DIM)
        call = lambda s=scorer, w=w: s.score_windows(w)  # noqa: E731
        times = np.array(_times(call, seconds, warmup=20)) * 1e3
        rows.append({"precision": precision, "cuda_graphs": graphs, "calls": len(times),
                     "p50_ms": float(np.percentile(times, 50)),
                     "p99_ms": float(np.percentile(times, 99))})  # fmt: skip
        log.info("%s", rows[-1])
    return rows


def training_and_reasons(
    device: torch.device, data_dir: Path, max_rows: int | None, epochs: int, alerts: int
) -> dict:
    """``train_domain`` on credit on ``device`` and on 2 CPU threads; reasons on ``device``."""
    from crmrisk.lifecycle.registry import ModelRegistry
    from crmrisk.training.data import load_data
    from crmrisk.training.train_job import TrainJob, train_domain

    out: dict = {"training": []}
    threads = torch.get_num_threads()
    places = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    with tempfile.TemporaryDirectory() as tmp:
        for place in places:
            if place.type == "cpu":
                torch.set_num_threads(2)
            job = TrainJob(domain="credit", variant=DEFAULT_VARIANT, data_dir=data_dir,
                           models_dir=Path(tmp) / place.type, seed=0, epochs=epochs,
                           batch_size=256, learning_rate=3e-3, patience=5, window=32,
                           max_rows=max_rows, device=str(place))  # fmt: skip
            started = time.perf_counter()
            saved = train_domain(job)
            out["training"].append({
                "device": str(place), "cpu_threads": torch.get_num_threads(),
                "fit_seconds": saved.fit_seconds, "seconds_in_all": time.perf_counter() - started,
                "test_auc": saved.metrics["test"]["auc"], "epochs_run": saved.metrics["epochs_run"],
                "max_rows": max_rows, "batch_size": job.batch_size,
            })  # fmt: skip
            log.info("%s", out["training"][-1])
            torch.set_num_threads(threads)
        # Reasons: the device-trained model explains test customers on the device.
        model, entry = ModelRegistry(Path(tmp) / device.type).load("credit", saved.version)
        encoder = FeatureEncoder.from_dict(entry.manifest["encoder"])
        test = load_data("credit", data_dir, 0, 32).test
        n = min(alerts, len(test))
        explainer = Explainer(model, encoder, steps=16, top=5, device=device)
        args = (test.events[:n], test.mask[:n], test.profile[:n])
        times = _times(lambda: explainer.explain(*args), seconds=3.0, warmup=1, most=20)
        out["reasons"] = {"device": str(device), "alerts_per_call": n, "steps": 16,
                          "alerts_per_s": n / statistics.median(times)}  # fmt: skip
        log.info("%s", out["reasons"])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cpu or auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_throughput.json"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the code runs")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = resolve_device(args.device)
    if args.quick:
        batches, seconds, max_rows, epochs, alerts = [1, 64], 0.2, 300, 1, 8
    else:
        batches, seconds, max_rows, epochs, alerts = (
            [1, 64, 512, 1024, 16384, 65536],
            2.0,
            None,
            40,
            256,
        )
    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "variant": DEFAULT_VARIANT,
        "quick": args.quick,
        "scorer": scorer_rates(device, batches, seconds),
        "single": single_customer(device, seconds * 2),
    }
    if not args.skip_training:
        result.update(training_and_reasons(device, args.data_dir, max_rows, epochs, alerts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
