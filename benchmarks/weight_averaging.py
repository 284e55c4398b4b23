"""Weight averaging measured: an exponential moving average of the weights (EMA) vs the plain
last-step weights, for the paper's network trained as in the tables.

Each (protocol, seed) trains twice from the same seed, with ``FitConfig.ema_decay`` 0 (off)
and ``--decay``; early stopping and the kept epoch are chosen on validation with the weights
that would be kept. Whether to keep EMA is decided on the validation AUC (out-of-fold for the
cross-fitted members); test AUC and ECE are reported beside it, not used to decide.

    python -m benchmarks.weight_averaging                 # 4 protocols x 5 seeds
    python -m benchmarks.weight_averaging --protocols credit --seeds 1 --epochs 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from benchmarks.ours import ab_runs, check_protocols, print_ab, summarise, write_results
from crmrisk.settings import Settings

DEFAULT_PROTOCOLS = ("credit", "telco", "bank_random", "bank_time")
KEYS = ("val_auc", "test_auc", "test_ece", "train_seconds")


def main(
    protocols: Annotated[
        list[str] | None, typer.Option("--protocols", help="Protocols (default: 4); repeat.")
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Upper bound on epochs.")] = 40,
    decay: Annotated[float, typer.Option("--decay", help="EMA decay per step.")] = 0.99,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    out: Annotated[Path, typer.Option("--out")] = Path("benchmarks/results/weight_averaging.json"),
) -> None:
    """Test and validation AUC with and without an EMA of the weights."""
    if not 0.0 < decay < 1.0:
        raise typer.BadParameter(f"--decay must be in (0, 1), got {decay}")
    torch.set_num_threads(threads)
    settings = Settings()
    chosen = check_protocols(protocols, DEFAULT_PROTOCOLS)
    runs = ab_runs(
        chosen,
        seeds,
        epochs,
        settings,
        "ema_decay",
        {0.0: ({}, {}), decay: ({}, {"ema_decay": decay})},
    )
    summary = summarise(runs, "ema_decay", KEYS)
    result = write_results(out, __doc__, __spec__.name, threads, epochs, summary, runs)
    print_ab(result["summary"], "decay")


if __name__ == "__main__":
    typer.run(main)
