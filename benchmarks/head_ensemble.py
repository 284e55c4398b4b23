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

from benchmarks.ours import ab_runs, check_protocols, print_ab, summarise, write_results
from crmrisk.settings import Settings

DEFAULT_PROTOCOLS = ("credit", "telco", "bank_random", "bank_time")
KEYS = ("val_auc", "test_auc", "test_ece", "train_seconds", "parameters")


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
    runs = ab_runs(
        chosen,
        seeds,
        epochs,
        settings,
        "head_members",
        {1: ({}, {}), heads: ({"head_members": heads}, {})},
    )
    summary = summarise(runs, "head_members", KEYS)
    result = write_results(out, __doc__, __spec__.name, threads, epochs, summary, runs)
    print_ab(result["summary"], "k")


if __name__ == "__main__":
    typer.run(main)
