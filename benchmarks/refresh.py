"""Incremental refresh: how long one takes for 10k new labels, and what it does to later AUC.

Protocol (bank marketing: contacts in time order, May 2008 - Nov 2010, whose positive rate
drifts from ~3% to ~50%):

1. Sort every customer record by ``as_of``. The first ``--initial`` rows train the champion
   from scratch the way ``crmrisk train`` does (encoder fitted on them; ``fit_model``: members
   cross-fitted on folds of them, calibrated out-of-fold; the last 20% are the validation
   split).
2. The remaining rows arrive in chunks of ``--chunk`` labels. For each chunk, first both models
   score it *before* seeing its labels (prequential, so "later data" is always unseen): the
   never-retrained champion and the live model of the refreshing trainer. Then the chunk's
   events and labels go to ``IncrementalTrainer`` (the same code as ``crmrisk worker train``:
   point-in-time examples, fine-tune with replay, champion/challenger gate on the held-out
   slice) and one refresh runs, timed end to end.

The pointer is the trainer's ``current``/``promote`` callables over a dict here: Redis and
Kafka are not what is being measured. Run::

    .venv/bin/python -m benchmarks.refresh --threads 2 --out benchmarks/results/refresh.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from crmrisk import model
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model.features import FeatureEncoder
from crmrisk.training.crossfit import fit_model
from crmrisk.training.data import Arrays
from crmrisk.training.datasets import fit_encoder, load_domain, to_arrays
from crmrisk.training.datasets.feed import dataset_outcomes
from crmrisk.training.evaluate import expected_calibration_error
from crmrisk.training.example_buffer import ExampleBuffer
from crmrisk.training.fine_tune import FineTune
from crmrisk.training.fit import FitConfig, predict
from crmrisk.training.incremental_trainer import IncrementalTrainer
from crmrisk.training.promotion_rule import PromotionRule
from crmrisk.training.refresh_policy import RefreshPolicy

__all__ = ["main", "run"]

log = logging.getLogger(__name__)


def _arrays(records: list[Any], encoder: FeatureEncoder, window: int) -> Arrays:
    a = to_arrays(records, encoder, window)
    return Arrays(a.events, a.mask, a.profile, a.label, customer_ids=a.customer_ids)


def _quality(network: torch.nn.Module, data: Arrays) -> dict[str, float]:
    """AUC, calibration error, and how many distinct scores (1 = a constant: AUC is 0.5)."""
    p = predict(network, data).probability
    return {
        "auc": float(roc_auc_score(data.label, p)),
        "ece": expected_calibration_error(data.label, p),
        "mean_score": float(np.mean(p)),
        "distinct_scores": int(np.unique(p).size),
    }


def run(
    domain: str,
    data_dir: Path,
    initial: int,
    chunk: int,
    window: int,
    epochs: int,
    seed: int,
    tune: FineTune,
    rule: PromotionRule,
    replay_sample: int,
) -> dict[str, Any]:
    dataset = load_domain(domain, data_dir, seed)
    records = sorted(
        (r for split in dataset.splits().values() for r in split), key=lambda r: r.as_of
    )
    first, rest = records[:initial], records[initial:]
    encoder = fit_encoder(dataset.spec, [r.with_split("train") for r in first])

    # 1. The champion, from scratch on the first window.
    cut = int(len(first) * 0.8)
    champion = model.build(
        model.DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=seed
    )
    started = time.perf_counter()
    early = _arrays(first[cut:], encoder, window)
    fitted = fit_model(
        champion,
        _arrays(first[:cut], encoder, window),
        early,
        FitConfig(epochs=epochs, batch_size=256, learning_rate=3e-3, patience=2, seed=seed),
    )
    champion_seconds = time.perf_counter() - started
    # In-window quality on held-out predictions (out-of-fold when cross-fitted).
    champion_own_window = {
        "auc": float(roc_auc_score(early.label, fitted.val_probability)),
        "ece": expected_calibration_error(early.label, fitted.val_probability),
    }

    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(tmp)
        v1 = registry.publish(domain, champion, {"encoder": encoder.to_dict()})
        live = {domain: v1.version}
        trainer = IncrementalTrainer(
            domain,
            registry=registry,
            current=live.get,
            promote=lambda d, v, reason, expected: live.__setitem__(d, v),
            make_encoder=FeatureEncoder.from_dict,
            window=window,
            policy=RefreshPolicy(every_s=float("inf"), every_labels=max(chunk, 1), min_labels=1),
            rule=rule,
            tune=tune,
            buffer=ExampleBuffer(
                holdout_fraction=0.2, holdout_size=2000, replay_pool=50_000, seed=seed
            ),
            replay_sample=replay_sample,
            history_limit=4 * window,
        )
        # The first window's labels are the champion's training data: replay and held-out only.
        _feed(trainer, domain, first, trained=True)

        rows = []
        parts = _chunks(rest, chunk)
        for index, part in enumerate(parts):
            data = _arrays(part, encoder, window)
            live_model, _ = registry.load(domain, live[domain])
            row: dict[str, Any] = {
                "chunk": len(rows),
                "rows": len(part),
                "as_of": [part[0].as_of.isoformat(), part[-1].as_of.isoformat()],
                "positive_rate": float(np.mean(data.label)),
                "never_retrained": _quality(champion, data),
                "refreshed": {**_quality(live_model, data), "version": live[domain]},
            }
            log.info(
                "chunk %d (%s..%s): AUC never retrained %.4f, refreshed %.4f (%s)",
                row["chunk"], row["as_of"][0][:10], row["as_of"][1][:10],
                row["never_retrained"]["auc"], row["refreshed"]["auc"], live[domain],
            )  # fmt: skip
            if index + 1 < len(parts):  # the last chunk is only evaluated
                _feed(trainer, domain, part, trained=False)
                report = trainer.refresh(f"{len(part)} labels")
                row["refresh"] = {
                    "seconds": round(report.seconds, 2),
                    "new_rows": report.new_rows,
                    "replay_rows": report.replay_rows,
                    "promoted": report.decision.promote,
                    "reason": report.decision.reason,
                    "version": report.version,
                }
                log.info("refresh: %.1f s, %s", report.seconds, report.decision.reason)
            rows.append(row)

    full = chunk if chunk > 0 else None
    refresh_s = [
        r["refresh"]["seconds"] for r in rows if "refresh" in r and r["rows"] == (full or r["rows"])
    ]
    return {
        "domain": domain,
        "initial_rows": initial,
        "chunk": chunk,
        "champion_fit_seconds": round(champion_seconds, 2),
        "champion_own_window": champion_own_window,
        "refresh_seconds_per_chunk": refresh_s,
        "chunks": rows,
        "mean_auc": {
            "never_retrained": float(np.mean([r["never_retrained"]["auc"] for r in rows[1:]])),
            "refreshed": float(np.mean([r["refreshed"]["auc"] for r in rows[1:]])),
            "note": "over chunks after the first refresh (chunk 0 is scored by v0001 in both)",
        },
    }


def _chunks(records: list[Any], chunk: int) -> list[list[Any]]:
    """Consecutive chunks of ``chunk`` labels, or (``chunk`` = 0) one chunk per prediction date,
    for domains whose labels come in cutoffs (retail)."""
    if chunk > 0:
        return [records[i : i + chunk] for i in range(0, len(records), chunk)]
    dates: dict[Any, list[Any]] = {}
    for r in records:
        dates.setdefault(r.as_of, []).append(r)
    return list(dates.values())


def _feed(trainer: IncrementalTrainer, domain: str, records: list[Any], trained: bool) -> None:
    for r in records:
        trainer.observe_event(r.profile_event(domain))
        for event in r.events:
            trainer.observe_event(event)
    for outcome in dataset_outcomes(records, domain):
        trainer.observe_outcome(outcome, trained=trained)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domain", default="bank")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--initial", type=int, default=8000)
    parser.add_argument(
        "--chunk", type=int, default=10_000, help="Labels per refresh; 0 = one per as_of date."
    )
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8, help="Champion epochs (early-stopped).")
    parser.add_argument("--fine-tune-epochs", type=int, default=4)
    parser.add_argument("--fine-tune-lr", type=float, default=5e-4)
    parser.add_argument("--replay-sample", type=int, default=5000)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--calibration-tolerance", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/refresh.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = run(
        args.domain,
        args.data_dir,
        args.initial,
        args.chunk,
        args.window,
        args.epochs,
        args.seed,
        FineTune(
            epochs=args.fine_tune_epochs,
            batch_size=256,
            learning_rate=args.fine_tune_lr,
            patience=2,
            seed=args.seed,
            device="cpu",
        ),
        PromotionRule(args.tolerance, args.calibration_tolerance, min_holdout=200),
        args.replay_sample,
    )
    result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": os.getloadavg(),
        "torch": torch.__version__,
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
