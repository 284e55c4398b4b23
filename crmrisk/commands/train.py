"""``crmrisk train``: train a domain's model, publish it to the registry, maybe make it live."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from crmrisk.commands.context import current_settings

if TYPE_CHECKING:
    from crmrisk.training.train_job import SavedModel, TrainJob

__all__ = ["register", "train"]

_console = Console()
log = logging.getLogger(__name__)


def train(
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain",
            help="credit, telco, bank or retail; or a domain with a spec file "
            "<data dir>/<domain>.yaml (see --spec).",
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            exists=True,
            dir_okay=False,
            help="A new domain without new code: a YAML/JSON spec naming a CSV, JSONL or "
            "Parquet file and its columns: rows with a label (datasets/generic_spec.py) or "
            "an event log with labels derived at cutoffs (event_log_spec.py; `crmrisk spec "
            "infer` writes one). A relative source is looked up next to the spec, then in the "
            "data dir. The domain name comes from the spec.",
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="Model variant (default: Settings.model.variant)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Upper bound on epochs.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for split, init and shuffling.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Registry root (default: Settings.model.dir); the model becomes the next "
            "version OUT/versions/<domain>/vNNNN.",
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="Make the new version live (moves the model pointer, announces it on "
            "risk.model-updates; needs Redis and Kafka): workers with --follow-pointer switch.",
        ),
    ] = False,
    monitor: Annotated[
        str, typer.Option("--monitor", help="Early stopping on validation auc or loss.")
    ] = "auc",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch / LightGBM threads.")] = 2,
    max_rows: Annotated[
        int | None,
        typer.Option(
            "--max-rows", min=10, help="Subsample each split to at most this many customers."
        ),
    ] = None,
    include_duration: Annotated[
        bool,
        typer.Option("--include-duration", help="bank only: keep the leaky `duration` column."),
    ] = False,
    split: Annotated[
        str | None, typer.Option("--split", help="bank only: 'time' (default) or 'random'.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="auto, cpu or cuda[:N]: where to train, evaluate and calibrate (default: "
            "RISK_TRAINING__DEVICE, auto = CUDA when present).",
        ),
    ] = None,
    tune: Annotated[
        int | None,
        typer.Option(
            "--tune",
            min=1,
            help="Tune the network first: N Optuna trials on the validation split (widths, "
            "dropout, learning rate, weight decay), each one member early-stopped on validation "
            "AUC; the best goes into the final model and its manifest. Needs the bench extra.",
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Also train a logistic regression and a tuned LightGBM on the same split and "
            "print one table (test AUC, PR-AUC, ECE, training time): is the deep model worth "
            "running on this data? Needs the bench extra (pip install 'crmrisk[bench]').",
        ),
    ] = False,
    compare_trials: Annotated[
        int,
        typer.Option(
            "--compare-trials", min=1, help="Optuna trials of the tuned LightGBM (--compare)."
        ),
    ] = 40,
) -> None:
    """Train DOMAIN's model and publish it as the next registry version.

    Loads the domain's train/validation/test split, fits the feature encoder on training
    customers, cross-fits the model's members on training + validation (each early-stopped on
    its held-out fold), calibrates them on their out-of-fold predictions, scores test once
    (decision threshold chosen out-of-fold) and publishes weights + manifest to the registry.
    With --promote the new version goes live.
    """
    import torch

    from crmrisk.errors import UserError
    from crmrisk.model.devices import DeviceUnavailable, resolve_device
    from crmrisk.training.train_job import TrainJob

    if (domain is None) == (spec is None):
        raise typer.BadParameter("give either --domain or --spec")
    if monitor not in ("auc", "loss"):
        raise typer.BadParameter("--monitor must be auc or loss")
    settings = current_settings()
    try:
        resolved = resolve_device(device or settings.training.device)
    except (DeviceUnavailable, RuntimeError) as exc:  # RuntimeError: a malformed name
        raise UserError(f"--device {device or settings.training.device}: {exc}") from None
    if promote:  # asked before, not after, minutes of training
        from crmrisk.errors import describe, require_services

        try:
            require_services(settings)
        except Exception as exc:
            message = describe(exc)
            if message is None:
                raise
            raise UserError(f"{message}. --promote needs both; nothing was trained") from exc
    if compare:  # asked before, not after, minutes of training
        _require_bench_extra("--compare", ("lightgbm", "optuna"))
    if tune:
        _require_bench_extra("--tune", ("optuna",))
    torch.set_num_threads(threads)
    options: dict[str, object] = {}
    if include_duration:
        options["include_duration"] = True
    if split:
        options["split"] = split
    if spec is not None:
        from crmrisk.commands.spec import spec_for_command

        domain, options["spec"] = spec_for_command(spec)
    job = TrainJob(
        domain=domain,
        variant=variant or settings.model.variant,
        data_dir=settings.training.data_dir,
        models_dir=out or settings.model.dir,
        seed=settings.training.seed if seed is None else seed,
        epochs=epochs or settings.training.epochs,
        batch_size=settings.training.batch_size,
        learning_rate=settings.training.learning_rate,
        patience=settings.training.patience,
        window=settings.redis.window,
        monitor=monitor,  # type: ignore[arg-type]
        threads=threads,
        max_rows=max_rows,
        options=options,
        device=str(resolved),
        tune_trials=tune or 0,
        ema_decay=settings.training.ema_decay,
    )
    started = time.perf_counter()
    saved = _train(job)
    wall = time.perf_counter() - started
    test = saved.metrics["test"]
    _console.print(
        f"[bold]{domain}[/bold] {job.variant}: test AUC {test['auc']:.4f}, accuracy "
        f"{test['accuracy']:.4f}, F1 {test['f1']:.4f} (threshold {test['threshold']:.3f} from "
        f"validation); {saved.fit_seconds:.1f} s training on {job.device}, {wall:.1f} s in all"
    )
    if saved.metrics.get("quantiles_test"):
        _console.print(f"quantiles (test): {json.dumps(saved.metrics['quantiles_test'])}")
    _console.print(f"published {domain} {saved.version}: {saved.path}")
    if compare:
        _print_comparison(job, saved, compare_trials)
    if promote:
        from kafka.errors import KafkaError
        from redis.exceptions import RedisError

        from crmrisk.commands.models import promote_version

        registry = settings.model.model_copy(update={"dir": job.models_dir})
        try:
            promote_version(
                settings.model_copy(update={"model": registry}), domain, saved.version, "trained"
            )
        except (OSError, KafkaError, RedisError) as exc:
            raise typer.BadParameter(
                f"{saved.version} is published but not live: {exc}. Start the services "
                f"(`crmrisk up`), then `crmrisk models promote {saved.version} --domain {domain}`"
            ) from None


def _train(job: TrainJob) -> SavedModel:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from crmrisk.training.train_job import train_domain

    if not job.tune_trials:
        return train_domain(job, show_progress=True)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_console) as bar:
        task = bar.add_task("tuning on validation (best AUC -)", total=job.tune_trials)
        best = [float("-inf")]

        def on_trial(number: int, auc: float) -> None:
            best[0] = max(best[0], auc)
            bar.update(
                task, advance=1, description=f"tuning on validation (best AUC {best[0]:.4f})"
            )

        saved = train_domain(job, show_progress=True, on_trial=on_trial)
    tuned = saved.tuning or {}
    chosen = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in tuned.get("overrides", {}).items())  # fmt: skip
    _console.print(
        f"tuned ({job.tune_trials} trials, best validation AUC {tuned.get('val_auc', 0):.4f}): "
        f"{chosen}, learning rate {tuned.get('learning_rate', 0):.3g}, weight decay "
        f"{tuned.get('weight_decay', 0):.3g} (in the manifest under 'tuning')"
    )
    return saved


def _require_bench_extra(option: str, packages: tuple[str, ...]) -> None:
    from importlib.util import find_spec

    from crmrisk.errors import UserError

    missing = [name for name in packages if find_spec(name) is None]
    if missing:
        raise UserError(
            f"{option} needs {' and '.join(missing)}: pip install 'crmrisk[bench]'; "
            "nothing was trained"
        )


def _print_comparison(job: TrainJob, saved: SavedModel, trials: int) -> None:
    from rich.table import Table

    from crmrisk.training.compare import compare_with_baselines

    with _console.status("") as status:
        rows = compare_with_baselines(
            job,
            saved,
            trials,
            lambda name: status.update(f"training {name} on the same split ({trials} trials)"),
        )
    table = Table(title=f"{job.domain}: the same split, test rows (seed {job.seed})")
    for column in ("model", "AUC", "PR-AUC", "ECE", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    best = max(row.auc for row in rows)
    for row in rows:
        mark = " *" if row.auc == best else ""
        table.add_row(
            row.model + mark,
            f"{row.auc:.4f}",
            f"{row.pr_auc:.4f}",
            f"{row.ece:.4f}",
            f"{row.train_seconds:.1f}",
        )
    _console.print(table)
    _console.print(
        "* best test AUC. Baselines read the plain linear encoding, decide on validation and "
        "refit on train + validation (as in the paper's tables); their ECE is uncalibrated."
    )


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``crmrisk`` CLI."""
    app.command("train")(train)
