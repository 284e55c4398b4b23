"""``python -m benchmarks.tables`` (also ``crmrisk bench tables`` in a source checkout): the paper's
Tables 1-4, measured, with a markdown report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchmarks.tables.experiments import bench_config, run_benchmark
from crmrisk.settings import Settings

__all__ = ["bench_app", "tables"]

_console = Console()
bench_app = typer.Typer(help="Benchmarks: the paper's tables, measured on this machine.")


@bench_app.command("tables")
def tables(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="One seed, few epochs, subsampled data: a smoke run for tests."
        ),
    ] = False,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Seeds 0..N-1 (default 5).")
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domains",
            help="Protocols to run: credit, telco, bank_time, bank_random, bank_duration, retail "
            "(repeat the option; 'bank' means all three bank protocols). Default: all.",
        ),
    ] = None,
    ablation_domains: Annotated[
        list[str] | None,
        typer.Option(
            "--ablation-domains", help="Protocols for Tables 3 and 4 (default credit, telco)."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Epochs for Table 1 models.")
    ] = None,
    ablation_epochs: Annotated[
        int | None,
        typer.Option("--ablation-epochs", min=1, help="Epochs for Tables 3 and 4 variants."),
    ] = None,
    max_train_rows: Annotated[
        int | None,
        typer.Option(
            "--max-rows", min=50, help="Subsample each split to at most this many customers."
        ),
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results-dir", help="Where JSON, plots and report go (Settings.training.results_dir)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Mini-batch (Settings.training.batch_size)."),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option("--patience", min=1, help="Early-stopping patience (Settings.training)."),
    ] = None,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Train nothing: measure efficiency and report the runs already recorded.",
        ),
    ] = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch / LightGBM threads.")] = 2,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Only train, into runs_<mode>_<SHARD>.jsonl, so processes can split the "
            "protocols; finish with a run with --resume that measures efficiency and reports.",
        ),
    ] = None,
    redo: Annotated[
        list[str] | None,
        typer.Option(
            "--redo",
            help="With --resume: run keys to train again (table|protocol|seed|model, shell "
            "patterns, e.g. '1|retail|*|qrcnn-lstm-cross').",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep finished runs from an earlier, interrupted run.")
    ] = False,
) -> None:
    """Run Tables 1-4 (quality, efficiency, front-end and attention ablations); write the report.

    Writes tables_<mode>.json, runs_<mode>.jsonl (one line per finished run), the markdown
    report (report.md, or report_quick.md in quick mode) and ROC / calibration PNGs.
    """
    logging.getLogger("crmrisk.training").setLevel(logging.INFO)
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    settings = Settings()
    config = bench_config(
        quick=quick,
        seeds=seeds,
        protocols=domains,
        ablation_protocols=ablation_domains,
        epochs=epochs,
        ablation_epochs=ablation_epochs,
        max_train_rows=max_train_rows,
        threads=threads,
        model=settings.model.variant,
        batch_size=batch_size or settings.training.batch_size,
        learning_rate=settings.training.learning_rate,
        patience=patience or settings.training.patience,
        window=settings.redis.window,
    )
    out = results_dir or settings.training.results_dir
    written = run_benchmark(
        config,
        settings.training.data_dir,
        out,
        resume=resume,
        shard=shard,
        report_only=report_only,
        redo=tuple(redo or ()),
    )
    _console.print(f"{'runs' if shard else 'report'} written to {written}")


if __name__ == "__main__":
    bench_app()
