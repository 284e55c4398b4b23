"""What a shadow model costs the workers (not a test): events/s without and with one, one run.

A registry of its own holds the champion (the trained credit checkpoint the streaming
benchmarks serve) and a challenger of the same network and encoder (its weights perturbed). Each
round drains the same backlog of credit events twice on fresh topics and keys, with a
``crmrisk worker ingest --follow-pointer`` process: once with no trial, once with the
challenger as a shadow (``crmrisk models shadow``), in alternating order. The clock runs from
a stable consumer group to the last score (``benchmarks.stream_e2e.drain``). Also recorded:
shadow records published, the model time per batch of both (Prometheus histograms) and the
workers' peak memory.

Writes ``benchmarks/results/shadow_cost.json``.
Run: ``.venv/bin/python -m benchmarks.shadow_cost [--customers N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.checkpoints import ROOT, trained_checkpoint
from benchmarks.stream_e2e import (
    _metric,
    _publish_process,
    _services_or_exit,
    cleanup,
    drain,
    make_settings,
    start_workers,
    wait_group_stable,
)
from crmrisk import lifecycle
from crmrisk.settings import Settings
from crmrisk.training.datasets.feed import dataset_events, load_records

log = logging.getLogger("benchmarks.shadow_cost")
RESULTS = ROOT / "benchmarks" / "results" / "shadow_cost.json"


def _registry(root: Path) -> tuple[str, str]:
    """Champion (live) and challenger versions in a registry at ``root``."""
    from crmrisk.lifecycle.registry import ModelRegistry

    registry = ModelRegistry(root)
    checkpoint = trained_checkpoint()
    champion = registry.import_checkpoint("credit", checkpoint)
    # The same network (members, widths) with other weights: the champion's, perturbed.
    other, manifest = lifecycle.load_checkpoint(checkpoint)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g) * (p.std() if p.numel() > 1 else 1))
    challenger = registry.publish("credit", other, {"encoder": manifest["encoder"]})
    return champion.version, challenger.version


def _histogram_mean(port: int, name: str) -> float | None:
    total, count = _metric(port, f"{name}_sum"), _metric(port, f"{name}_count")
    return total / count if count else None


def one_run(base: Settings, registry: Path, versions: tuple[str, str], shadow: bool,
            pairs, scored: int, partitions: int, workdir: Path) -> dict:  # fmt: skip
    """Drain the backlog with one worker, with or without the challenger as a shadow."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from crmrisk.commands.trials import _promoter
    from crmrisk.wiring.clients import model_pointer

    tag = uuid.uuid4().hex[:8]
    s = make_settings(base, tag, partitions)
    extra = {"shadow_scores": f"bench-shadow-{tag}", "model_updates": f"bench-updates-{tag}"}
    admin = KafkaAdminClient(**base.kafka.client_config(), client_id="bench")
    admin.create_topics([NewTopic(t, partitions, 1) for t in extra.values()])
    admin.close()
    s = Settings(
        kafka=s.kafka.model_dump() | {"topics": s.kafka.topics.model_dump() | extra},
        redis=s.redis.model_dump(),
        scoring=s.scoring.model_dump(),
        model={"dir": str(registry)},
    )
    champion, challenger = versions
    pointer = model_pointer(s)
    pointer.set("credit", champion, "benchmark")
    promoter, producer = _promoter(s)
    try:
        if shadow:
            promoter.start_trial("credit", challenger, "shadow", "benchmark")
        else:
            promoter.end_trial("credit", "stopped", "benchmark")
    finally:
        producer.close()
    workers = []
    try:
        publisher = multiprocessing.get_context("spawn").Process(
            target=_publish_process, args=(s.model_dump_json(), pairs, None)
        )
        publisher.start()
        publisher.join()
        workers = start_workers(s, None, 1, workdir, tag)
        wait_group_stable(s, 1)
        started = time.perf_counter()
        before = sum(w.counts()[0] for w in workers)
        result = drain(workers, len(pairs), scored, 900, started, before)
        port = workers[0].port
        labels = '{domain="credit",mode="shadow"}'
        return result | {
            "shadow": shadow,
            "shadow_rows": _metric(port, f"crmrisk_challenger_rows_total{labels}"),
            "shadow_failures": _metric(port, f"crmrisk_challenger_failures_total{labels}"),
            "champion_model_ms_per_batch": _histogram_mean(port, "crmrisk_model_ms"),
            "shadow_model_ms_per_batch": _histogram_mean(port, "crmrisk_challenger_model_ms"),
            "batches": _metric(port, "crmrisk_batch_size_count"),
        }
    finally:
        for w in workers:
            w.stop()
        cleanup(s)
        admin = KafkaAdminClient(**base.kafka.client_config(), client_id="bench")
        try:
            admin.delete_topics(list(extra.values()))
        except Exception as exc:
            log.warning("could not delete topics: %s", exc)
        admin.close()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=8000, help="credit customers (x7 events)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind, alternating")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    base = Settings()
    _services_or_exit(base)
    records = load_records("credit", ROOT / "data", 0)[: args.customers]
    events = dataset_events(records, "credit")
    pairs = [(e.key, e.to_bytes()) for e in events]
    scored = sum(e.kind != "profile" for e in events)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "registry"
        versions = _registry(registry)
        order = [i % 2 == 1 for i in range(2 * args.rounds)]  # without, with, without, ...
        for shadow in tqdm(order, desc="runs (without / with a shadow)", unit="run"):
            runs.append(one_run(base, registry, versions, shadow, pairs, scored,
                                args.partitions, Path(tmp)))  # fmt: skip
    without = [r["events_per_s"] for r in runs if not r["shadow"]]
    with_ = [r["events_per_s"] for r in runs if r["shadow"]]
    pairs_ratio = [b / a for a, b in zip(without, with_, strict=True)]
    result = {
        "machine": {"platform": platform.platform(), "cpus": multiprocessing.cpu_count()},
        "events": len(pairs),
        "scored": scored,
        "versions": {"champion": versions[0], "shadow": versions[1]},
        "runs": runs,
        "events_per_s_without": without,
        "events_per_s_with_shadow": with_,
        "ratio_with_to_without_per_round": pairs_ratio,
        "ratio_median": float(np.median(pairs_ratio)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("events_per_s_without", "events_per_s_with_shadow",
                                             "ratio_median")}, indent=2))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
