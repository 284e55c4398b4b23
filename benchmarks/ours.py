"""The paper's network trained on one protocol and seed as the tables train it, for the
benchmarks that study one step after training (prior shift, weight averaging), and how those
benchmarks check their protocols, summarise their runs and write their results file."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import typer

from benchmarks.tables.experiments import PROTOCOLS
from crmrisk import model as models
from crmrisk.settings import Settings
from crmrisk.training.crossfit import Fitted, fit_model
from crmrisk.training.data import DomainData, load_data
from crmrisk.training.fit import FitConfig, seed_everything

__all__ = [
    "Trained",
    "ab_runs",
    "check_protocols",
    "mean_std",
    "print_ab",
    "summarise",
    "train_ours",
    "write_results",
]


@dataclass(frozen=True)
class Trained:
    network: Any  # a calibrated RiskModel
    data: DomainData
    fitted: Fitted
    seconds: float


def train_ours(
    protocol: str,
    seed: int,
    epochs: int,
    settings: Settings,
    network_options: dict[str, Any] | None = None,
    **fit_options: Any,
) -> Trained:
    """Cross-fitted members, Platt-calibrated out-of-fold (``fit_model``), no quantile heads;
    ``network_options`` override ``RiskModelConfig`` fields (e.g. ``head_members``),
    ``fit_options`` ``FitConfig`` fields (e.g. ``ema_decay``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    adapter, options = PROTOCOLS[protocol]
    t = settings.training
    data = load_data(adapter, t.data_dir, seed, settings.redis.window, **options)
    seed_everything(seed)
    network = models.build(
        settings.model.variant,
        event_dim=data.train.event_dim,
        profile_dim=data.train.profile_dim,
        quantiles=(),
        **(network_options or {}),
    )
    config = FitConfig(
        epochs=epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        patience=t.patience,
        seed=seed,
        **fit_options,
    )
    started = time.perf_counter()
    fitted = fit_model(network, data.train, data.val, config, True)
    return Trained(network, data, fitted, time.perf_counter() - started)


def check_protocols(chosen: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """``chosen`` (or ``default``), each a protocol of the tables; else one clear CLI error."""
    names = tuple(chosen or default)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown:
        raise typer.BadParameter(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    return names


def mean_std(runs: Sequence[dict], keys: Iterable[str]) -> dict[str, dict[str, float]]:
    """Mean and (population) standard deviation of each of ``keys`` over ``runs``."""
    return {
        key: {
            "mean": float(np.mean([r[key] for r in runs])),
            "std": float(np.std([r[key] for r in runs])),
        }
        for key in keys
    }


def ab_runs(
    protocols: Sequence[str],
    seeds: int,
    epochs: int,
    settings: Settings,
    arm: str,
    arms: dict[Any, tuple[dict[str, Any], dict[str, Any]]],
) -> list[dict]:
    """Train ours once per (protocol, seed, arm): ``arms`` maps the value recorded under
    ``arm`` to its (network options, fit options); each run scores validation (out-of-fold)
    and test. The A/B benchmarks (weight averaging, head ensembles) are this plus a summary."""
    from rich.progress import track

    from crmrisk.training.evaluate import score_split
    from crmrisk.training.fit import predict

    jobs = [(p, s, a) for p in protocols for s in range(seeds) for a in arms]
    runs = []
    for protocol, seed, value in track(jobs, description=arm):
        network_options, fit_options = arms[value]
        trained = train_ours(protocol, seed, epochs, settings, network_options, **fit_options)
        data = trained.data
        test = predict(trained.network, data.test).probability
        split = score_split(data.val.label, trained.fitted.val_probability, data.test.label, test)
        runs.append(
            {
                "protocol": protocol,
                "seed": seed,
                arm: value,
                "val_auc": split["val"]["auc"],
                "test_auc": split["test"]["auc"],
                "test_ece": split["test"]["ece"],
                "train_seconds": trained.seconds,
                "parameters": sum(p.numel() for p in trained.network.parameters()),
                "best_epoch": trained.fitted.best_epochs,
            }
        )
    return runs


def print_ab(summary: dict, label: str) -> None:
    """One line per protocol: each arm's mean validation and test AUC, ECE and seconds."""
    for protocol, by_arm in summary.items():
        cells = [
            f"{label} {a}: val {s['val_auc']['mean']:.4f} test {s['test_auc']['mean']:.4f} "
            f"ECE {s['test_ece']['mean']:.3f} {s['train_seconds']['mean']:.0f} s"
            for a, s in by_arm.items()
        ]
        print(f"{protocol:12s} " + " | ".join(cells))


def summarise(runs: Sequence[dict], arm: str, keys: Iterable[str]) -> dict:
    """``{protocol: {str(arm value): mean_std(...)}}``: each protocol's runs per arm."""
    out: dict = {}
    for protocol in dict.fromkeys(r["protocol"] for r in runs):
        out[protocol] = {}
        for value in sorted({r[arm] for r in runs}):
            mine = [r for r in runs if r["protocol"] == protocol and r[arm] == value]
            out[protocol][str(value)] = mean_std(mine, keys)
    return out


def write_results(
    out: Path, doc: str, module: str, threads: int, epochs: int, summary: dict, runs: list
) -> dict:
    """The results file every such benchmark writes: what, how, when, where, then the figures."""
    result = {
        "what": doc.split("\n\n")[0],
        "command": f"python -m {module}",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "torch_threads": threads},
        "epochs": epochs,
        "summary": summary,
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result
