"""Prior-shift correction measured: ECE before and after re-estimating the base rate.

For each protocol and seed, the paper's network is trained and calibrated as in the tables
(``fit_model``: cross-fitted members, Platt scaling on out-of-fold predictions of train +
validation). The test rows are then cut in two halves at random: the model's probabilities on
one half stand for "recent unlabelled scores" (their labels are never read), EM estimates the
positive rate from them (``training/prior_shift.py``: EM, and the probabilistic adjusted count
from the out-of-fold validation outputs), and the other half is scored before and after each
correction; then the halves swap. AUC cannot change (one logit shift for all rows).
Protocols whose base rate moved (bank time-ordered, retail) are the treatment; credit and bank
with a random split (no shift) are the control, where the correction must not hurt.

    python -m benchmarks.prior_shift                     # 4 protocols x 5 seeds
    python -m benchmarks.prior_shift --protocols bank_time --protocols retail --seeds 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.progress import track

from benchmarks.ours import check_protocols, mean_std, train_ours, write_results
from crmrisk.settings import Settings
from crmrisk.training.evaluate import binary_metrics
from crmrisk.training.fit import predict
from crmrisk.training.prior_shift import adjusted_count, estimate_prior

DEFAULT_PROTOCOLS = ("bank_time", "retail", "credit", "bank_random")


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = binary_metrics(y, p, threshold=0.5)  # the threshold plays no part in these three
    return {"auc": m["auc"], "brier": m["brier"], "ece": m["ece"]}


def _one(protocol: str, seed: int, epochs: int, settings: Settings) -> dict:
    trained = train_ours(protocol, seed, epochs, settings)
    network, data, fitted, seconds = (
        trained.network,
        trained.data,
        trained.fitted,
        trained.seconds,
    )
    p = predict(network, data.test).probability.astype(np.float64)
    y = data.test.label.astype(int)
    # The rate the calibration saw: cross-fitted members calibrate on train + validation.
    train_rate = float(np.concatenate([data.train.label, data.val.label]).mean())
    halves = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    folds = []
    for unlabelled in (halves, ~halves):
        scored = ~unlabelled
        em = estimate_prior(p[unlabelled], train_rate)
        count = adjusted_count(p[unlabelled], fitted.val_probability, data.val.label, train_rate)
        folds.append(
            {
                "true_rate_of_unlabelled_half": float(y[unlabelled].mean()),  # not used
                "before": _scores(y[scored], p[scored]),
                **{
                    method: {
                        "estimated_rate": shift.rate,
                        "iterations": shift.iterations,
                        "logit_shift": shift.logit_shift,
                        "after": _scores(y[scored], shift.adjust(p[scored])),
                    }
                    for method, shift in (("em", em), ("adjusted_count", count))
                },
            }
        )
    return {
        "protocol": protocol,
        "seed": seed,
        "train_rate": train_rate,
        "test_rate": float(y.mean()),
        "train_seconds": seconds,
        "folds": folds,
        "ece_before": float(np.mean([f["before"]["ece"] for f in folds])),
        "ece_em": float(np.mean([f["em"]["after"]["ece"] for f in folds])),
        "ece_adjusted_count": float(np.mean([f["adjusted_count"]["after"]["ece"] for f in folds])),
        "auc": float(np.mean([f["before"]["auc"] for f in folds])),
        "rate_em": float(np.mean([f["em"]["estimated_rate"] for f in folds])),
        "rate_adjusted_count": float(
            np.mean([f["adjusted_count"]["estimated_rate"] for f in folds])
        ),
    }


def _summary(runs: list[dict]) -> dict:
    keys = ("ece_before", "ece_em", "ece_adjusted_count", "auc", "train_rate", "test_rate",
            "rate_em", "rate_adjusted_count")  # fmt: skip
    out = {}
    for protocol in dict.fromkeys(r["protocol"] for r in runs):
        mine = [r for r in runs if r["protocol"] == protocol]
        out[protocol] = {**mean_std(mine, keys), "seeds": len(mine)}
    return out


def main(
    protocols: Annotated[
        list[str] | None, typer.Option("--protocols", help="Protocols (default: 4).")
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Upper bound on epochs.")] = 40,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    out: Annotated[Path, typer.Option("--out")] = Path("benchmarks/results/prior_shift.json"),
) -> None:
    """ECE of the paper's network before and after the prior-shift correction."""
    torch.set_num_threads(threads)
    settings = Settings()
    chosen = check_protocols(protocols, DEFAULT_PROTOCOLS)
    jobs = [(p, s) for p in chosen for s in range(seeds)]
    runs = [_one(p, s, epochs, settings) for p, s in track(jobs, description="prior shift")]
    summary = _summary(runs)
    result = write_results(out, __doc__, __spec__.name, threads, epochs, summary, runs)
    for protocol, s in result["summary"].items():
        print(
            f"{protocol:12s} ECE {s['ece_before']['mean']:.3f} -> EM {s['ece_em']['mean']:.3f}, "
            f"adjusted count {s['ece_adjusted_count']['mean']:.3f}  AUC {s['auc']['mean']:.3f}  "
            f"rate train {s['train_rate']['mean']:.3f} test {s['test_rate']['mean']:.3f} "
            f"(EM {s['rate_em']['mean']:.3f}, count {s['rate_adjusted_count']['mean']:.3f})"
        )


if __name__ == "__main__":
    typer.run(main)
