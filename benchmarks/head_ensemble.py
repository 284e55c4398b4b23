"""In-network head ensembles measured: ``k`` heads sharing one network (``RiskHeads``,
TabM-mini style adapters, trained in one pass) vs one head, for the paper's network trained as
in the tables (three cross-fitted members either way).

Each (protocol, seed) trains once per ``k`` from the same seed; early stopping and the kept
epoch are chosen on validation. Whether to keep ``k`` heads is decided on the validation AUC
(out-of-fold for the cross-fitted members); test AUC and ECE are reported beside it, not used to
decide. Parameters and training seconds say what the heads cost.

    python -m benchmarks.head_ensemble                    # 4 protocols x 5 seeds, k = 1 and 8
    python -m benchmarks.head_ensemble --protocols credit --seeds 1 --epochs 2 --heads 4
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.progress import track

from benchmarks.ours import check_protocols, summarise, train_ours, write_results
from crmrisk.settings import Settings
from crmrisk.training.evaluate import score_split
from crmrisk.training.fit import predict

DEFAULT_PROTOCOLS = ("credit", "telco", "bank_random", "bank_time")
KEYS = ("val_auc", "test_auc", "test_ece", "train_seconds", "parameters")


def _one(protocol: str, seed: int, epochs: int, heads: int, settings: Settings) -> dict:
    trained = train_ours(protocol, seed, epochs, settings, {"head_members": heads})
    data = trained.data
    test = predict(trained.network, data.test).probability
    split = score_split(data.val.label, trained.fitted.val_probability, data.test.label, test)
    return {
        "protocol": protocol,
        "seed": seed,
        "head_members": heads,
        "val_auc": split["val"]["auc"],
        "test_auc": split["test"]["auc"],
        "test_ece": split["test"]["ece"],
        "train_seconds": trained.seconds,
        "parameters": sum(p.numel() for p in trained.network.parameters()),
        "best_epoch": trained.fitted.best_epochs,
    }


def main(
    protocols: Annotated[
        list[str] | None, typer.Option("--protocols", help="Protocols (default: 4); repeat.")
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Upper bound on epochs.")] = 40,
    heads: Annotated[
        int, typer.Option("--heads", min=2, help="Heads per network, compared with one.")
    ] = 8,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    out: Annotated[Path, typer.Option("--out")] = Path("benchmarks/results/head_ensemble.json"),
) -> None:
    """Validation and test AUC with one head and with ``--heads`` heads per network."""
    torch.set_num_threads(threads)
    settings = Settings()
    chosen = check_protocols(protocols, DEFAULT_PROTOCOLS)
    jobs = [(p, s, k) for p in chosen for s in range(seeds) for k in (1, heads)]
    runs = [_one(p, s, epochs, k, settings) for p, s, k in track(jobs, description="heads")]
    summary = summarise(runs, "head_members", KEYS)
    result = write_results(out, __doc__, __spec__.name, threads, epochs, summary, runs)
    for protocol, by_k in result["summary"].items():
        cells = [
            f"k={k}: val {s['val_auc']['mean']:.4f} test {s['test_auc']['mean']:.4f} "
            f"ECE {s['test_ece']['mean']:.3f} {s['train_seconds']['mean']:.0f} s"
            for k, s in by_k.items()
        ]
        print(f"{protocol:12s} " + " | ".join(cells))


if __name__ == "__main__":
    typer.run(main)
