"""Estimated vs realized performance on a replay whose truth is known (issue 20's check).

Credit's held-out (test) customers go through the real system: ``crmrisk replay``'s code path
(``stream.replay.replay``) publishes their events and outcomes onto this run's own topics, a
real ``crmrisk worker ingest`` process scores every statement with a credit model trained on
the training split only (``benchmarks.checkpoints.trained_checkpoint``: ``crmrisk train``'s
defaults, seed 0; validation rows early-stop and calibrate it, test rows never touch it), and
the scores and outcomes are read back from the topics with ``crmrisk models performance``'s
reader (``read_topic``) and compared with its code (``training.performance.
performance_by_chunk``: the CBPE estimate per chunk of score event time, realized AUC from
outcomes joined point in time).

Chunks. In the dataset every credit customer's six statements fall on the same six month-end
days and every outcome's ``as_of`` is 2005-10-01, so one-day chunks would put all 6,000
labelled customers in one chunk. As an issuer staggers billing cycles, each customer's whole
history (statements, profile and ``as_of``) is shifted by ``cohort`` days, ``cohort`` = a
stable hash of the customer id modulo ``--cohorts`` (3 by default). The model sees no
absolute time (its features are the statement fields and the profile), so its scores are those
of the unshifted data; with one-day chunks, each cohort's September statements, the scores the
outcomes join, make one chunk of about 2,000 customers (about 440 defaults: an AUC's sampling
standard deviation is about 0.012 there). The earlier months' chunks have scores but no
outcome joins them (a later score supersedes them); they are kept in the file as estimate-only.

Two comparisons of the same scores:

1. **calibrated**: the dataset's own labels. The estimate should be within 0.03 of the realized
   AUC in every chunk (the issue's bar), if the model's calibration holds on the test customers
   (the file gives each chunk's ECE, mean probability and default rate, to tell why if not);
2. **drift**: the same outcomes with the label flipped for one customer in ``--flip-one-in``
   (3: a third), chosen by another stable hash, published on a topic of their own and read back.
   A concept drift (``P(y | x)`` changed) leaves the probabilities, hence the estimate, as they
   were; the realized AUC falls, and the gap shows it.

Writes ``benchmarks/results/performance_replay.json``. Run (a few minutes on 2 cores; trains the
credit model first if ``var/bench-models`` has none)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.performance_replay
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.checkpoints import ROOT, trained_checkpoint
from benchmarks.stream_e2e import Worker, cleanup, make_settings
from crmrisk.commands.performance import read_topic
from crmrisk.settings import Settings
from crmrisk.stream.events import Outcome, RiskScore
from crmrisk.stream.kafka_producer import BatchProducer
from crmrisk.stream.replay import publish_outcomes
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes, load_records
from crmrisk.training.datasets.records import CustomerRecord
from crmrisk.training.evaluate import expected_calibration_error
from crmrisk.training.performance import join_outcomes, performance_by_chunk
from crmrisk.wiring.clients import quiet_kafka_clients
from crmrisk.wiring.replay import replay

__all__ = ["BAR", "bucket", "compare", "flip_labels", "main", "run", "stagger"]

log = logging.getLogger("benchmarks.performance_replay")

DOMAIN = "credit"
BAR = 0.03  # issue 20: |estimated - realized| AUC per chunk when calibration holds
DAY_S = 86_400.0


# -- the pure parts (tests/benchmarks/test_performance_replay.py) -------------------------------
def bucket(customer_id: str, salt: str, buckets: int) -> int:
    """A stable bucket in ``0..buckets-1`` for a customer (sha256, not Python's salted hash).

    >>> bucket("42", "cycle", 3) == bucket("42", "cycle", 3)
    True
    """
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def stagger(records: Sequence[CustomerRecord], cohorts: int) -> list[CustomerRecord]:
    """Each customer's whole history (events and ``as_of``) shifted by its cohort in days."""
    shifted = []
    for r in records:
        by = timedelta(days=bucket(r.customer_id, "cycle", cohorts))
        events = [e.model_copy(update={"event_time": e.event_time + by}) for e in r.events]
        shifted.append(dataclasses.replace(r, events=events, as_of=r.as_of + by))
    return shifted


def flip_labels(outcomes: Sequence[Outcome], one_in: int) -> list[Outcome]:
    """The concept drift: the label flipped for the customers in hash bucket 0 of ``one_in``."""
    return [
        o.model_copy(update={"label": 1 - o.label})
        if bucket(o.customer_id, "drift", one_in) == 0
        else o
        for o in outcomes
    ]


def _chunk_start(t: datetime, chunk_s: float) -> datetime:
    # The same flooring as training.performance (its helper is private).
    return datetime.fromtimestamp(t.timestamp() // chunk_s * chunk_s, tz=t.tzinfo)


def compare(
    scores: Sequence[RiskScore],
    outcomes: Sequence[Outcome],
    threshold: float,
    chunk_s: float,
    draws: int = 300,
) -> dict[str, Any]:
    """Per (version, chunk) estimated vs realized AUC, and a summary over the labelled chunks.

    ``performance_by_chunk`` does the work (as ``crmrisk models performance``); the joined
    pairs are regrouped here only for each chunk's calibration figures (ECE, mean probability,
    positive rate), which say why a gap is what it is.
    """
    joined: dict[tuple[str, datetime], list[tuple[float, int]]] = defaultdict(list)
    for s, o in join_outcomes(scores, outcomes):
        joined[(s.model_version, _chunk_start(s.event_time, chunk_s))].append(
            (s.probability, o.label)
        )
    rows = []
    for r in performance_by_chunk(scores, outcomes, threshold, chunk_s, draws=draws):
        e, real = r.estimate, r.realized
        row: dict[str, Any] = {
            "model_version": r.model_version,
            "chunk_start": r.chunk_start.isoformat(),
            "n": e.n,
            "estimated_auc": e.auc,
            "estimated_auc_std": e.auc_std,
            "labelled": real.n if real else 0,
            "realized_auc": real.auc if real else None,
            "gap": (e.auc - real.auc) if real and real.auc is not None else None,
        }
        pairs = joined.get((r.model_version, r.chunk_start))
        if pairs:
            p, y = map(np.array, zip(*pairs, strict=True))
            row |= {
                "positives": int(y.sum()),
                "mean_probability": float(p.mean()),
                "positive_rate": float(y.mean()),
                "ece": expected_calibration_error(y, p),
            }
        rows.append(row)
    gaps = [abs(row["gap"]) for row in rows if row["gap"] is not None]
    every = np.array([pair for pairs in joined.values() for pair in pairs]).reshape(-1, 2)
    return {
        "chunks": rows,
        "labelled_chunks": len(gaps),
        "estimate_only_chunks": len(rows) - len(gaps),
        "max_abs_gap": max(gaps) if gaps else None,
        "mean_abs_gap": float(np.mean(gaps)) if gaps else None,
        "min_abs_gap": min(gaps) if gaps else None,
        "within_bar": bool(gaps) and max(gaps) <= BAR,
        "ece_all_labelled": (
            expected_calibration_error(every[:, 1].astype(int), every[:, 0]) if len(every) else None
        ),
    }


# -- the run through the real system ------------------------------------------------------------
def _values(settings: Settings, topic: str, model: type) -> list[Any]:
    return [model.model_validate_json(v) for v in read_topic(settings, topic)]


def _wait_for_scores(worker: Worker, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with Progress(
        TextColumn("[bold]scoring[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        task = progress.add_task("scores", total=expected)
        while True:
            scored = worker.counts()[1]
            progress.update(task, completed=scored)
            if scored >= expected:
                return
            if time.monotonic() > deadline or worker.process.poll() is not None:
                raise RuntimeError(f"the worker published {scored:.0f}/{expected} scores")
            time.sleep(0.5)


async def _publish_outcomes(settings: Settings, topic: str, outcomes: list[Outcome]) -> None:
    producer = BatchProducer(settings.kafka.client_config(), "bench-drift-outcomes", linger_ms=5)
    await producer.start()
    try:
        await publish_outcomes(producer, topic, outcomes)
    finally:
        await producer.stop()


def run(
    cohorts: int, flip_one_in: int, limit: int, draws: int, partitions: int, timeout_s: float
) -> dict[str, Any]:
    """Replay, score, read back and compare; this run's topics and keys are removed after."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    checkpoint = trained_checkpoint()
    records = load_records(DOMAIN, ROOT / "data", 0, ("test",))  # seed 0: the model's split
    records = stagger(records[:limit] if limit else records, cohorts)
    events = dataset_events(records, DOMAIN)
    outcomes = dataset_outcomes(records, DOMAIN)
    expected = sum(e.kind != "profile" for e in events)  # one score per statement
    tag = uuid.uuid4().hex[:8]
    base = Settings()
    settings = make_settings(base, tag, partitions, scoring={"reasons": 0})
    drift_topic = f"bench-outcomes-drift-{tag}"
    admin = KafkaAdminClient(**settings.kafka.client_config(), client_id="bench")
    admin.create_topics([NewTopic(drift_topic, partitions, 1)])
    try:
        took = asyncio.run(replay(settings, events, outcomes, None))
        log.info("replayed %d events of %d customers in %.1f s", len(events), len(records), took)
        with tempfile.TemporaryDirectory(prefix="perf-replay-") as tmp:
            worker = Worker(settings, checkpoint, Path(tmp) / "worker.log")
            try:
                _wait_for_scores(worker, expected, timeout_s)
            except RuntimeError:
                log.error("worker log:\n%s", (Path(tmp) / "worker.log").read_text()[-4000:])
                raise
            finally:
                worker.stop()
        asyncio.run(_publish_outcomes(settings, drift_topic, flip_labels(outcomes, flip_one_in)))
        topics = settings.kafka.topics
        scores = [s for s in _values(settings, topics.scores, RiskScore) if s.domain == DOMAIN]
        read_outcomes = _values(settings, topics.outcomes, Outcome)
        drifted = _values(settings, drift_topic, Outcome)
    finally:
        cleanup(settings)
        try:
            admin.delete_topics([drift_topic])
        finally:
            admin.close()
    if len(scores) != expected:
        raise RuntimeError(f"read {len(scores)} scores back, expected {expected}")
    threshold = settings.scoring.alert_threshold
    flipped = sum(bucket(o.customer_id, "drift", flip_one_in) == 0 for o in outcomes)
    return {
        "domain": DOMAIN,
        "model": {
            "path": _shown(checkpoint),
            "versions": sorted({s.model_version for s in scores}),
        },
        "customers": len(records),
        "events": len(events),
        "scores": len(scores),
        "outcomes": len(read_outcomes),
        "cohorts": cohorts,
        "chunk_hours": 24,
        "threshold": threshold,
        "bar": BAR,
        "calibrated": compare(scores, read_outcomes, threshold, DAY_S, draws),
        "drift": {
            "segment": f"customers in sha256 bucket 0 of {flip_one_in}, label flipped",
            "flipped": flipped,
            **compare(scores, drifted, threshold, DAY_S, draws),
        },
    }


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Replays credit's test customers through `crmrisk replay`'s code path and a real "
        "worker onto fresh topics (deleted after), then compares the CBPE estimate of `crmrisk "
        "models performance` with the realized AUC per one-day chunk, with the dataset's labels "
        "and with a third of them flipped (concept drift).",
    )
    parser.add_argument(
        "--cohorts",
        type=int,
        default=3,
        help="Billing cycles: customers shifted by 0..N-1 days, one labelled chunk each.",
    )
    parser.add_argument(
        "--flip-one-in", type=int, default=3, help="Drift: flip the label of 1 customer in N."
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="Only the first N test customers (0 = all 6,000)."
    )
    parser.add_argument("--draws", type=int, default=300, help="Sampled label vectors per band.")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait for scores.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "performance_replay.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    quiet_kafka_clients()
    started = time.perf_counter()
    result = run(
        args.cohorts, args.flip_one_in, args.limit, args.draws, args.partitions, args.timeout
    )
    result["settings"] = vars(args) | {"out": _shown(args.out)}
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("calibrated", "drift"):
        for row in result[name]["chunks"]:
            if row["gap"] is not None:
                log.info(
                    "%-10s %s n=%d estimated %.3f ± %.3f realized %.3f gap %+.3f",
                    name,
                    row["chunk_start"][:10],
                    row["labelled"],
                    row["estimated_auc"],
                    row["estimated_auc_std"],
                    row["realized_auc"],
                    row["gap"],
                )
    log.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    main()
