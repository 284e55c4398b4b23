"""``crmrisk worker train``: the incremental trainer of one domain, assembled from ``Settings``.

It reads ``crm.events`` and ``crm.outcomes`` (and ``risk.scores`` for drift), refreshes the live
model every ``RISK_TRAINING__RETRAIN_EVERY_S`` seconds or ``..._EVERY_LABELS`` labels (earlier on
drift), publishes every challenger to the registry and promotes it only when it holds up on the
held-out slice. Mounted by ``crmrisk/commands/worker.py`` as ``app.command("train")``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Annotated

import redis
import torch
import typer
from kafka import KafkaProducer
from prometheus_client import REGISTRY

from crmrisk.commands.context import current_settings
from crmrisk.errors import UserError, require_services
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model.devices import DeviceUnavailable, resolve_device
from crmrisk.model.features import FeatureEncoder
from crmrisk.settings import Settings
from crmrisk.stream.metrics import serve
from crmrisk.trainer_feed import KafkaRecordSource
from crmrisk.training.drift import DriftMonitor
from crmrisk.training.example_buffer import ExampleBuffer
from crmrisk.training.fine_tune import FineTune
from crmrisk.training.incremental_trainer import IncrementalTrainer
from crmrisk.training.promotion_rule import PromotionRule
from crmrisk.training.refresh_policy import RefreshPolicy
from crmrisk.training.trainer_loop import TrainerLoop
from crmrisk.wiring.clients import model_pointer

__all__ = ["build_trainer_loop", "train_worker"]

log = logging.getLogger(__name__)


class _Health:
    """The trainer's /metrics (the process-wide registry its collectors use) and /health."""

    registry = REGISTRY

    def __init__(self) -> None:
        self.last_step_s: float | None = None

    def mark(self) -> None:
        self.last_step_s = time.time()


def _go_live(promoter: ModelPromoter, shadow_first: bool):
    """What the trainer does with a challenger that passed its gate: promote it, or (with
    ``training.shadow_first``) put it on a shadow trial for the guard to promote or roll back."""
    if shadow_first:
        return lambda d, v, reason, expected: promoter.start_trial(d, v, "shadow", reason)
    return lambda d, v, reason, expected: promoter.promote(d, v, reason, expected=expected)


def build_trainer_loop(
    settings: Settings, domain: str, promoter: ModelPromoter, pointer: ModelPointer
) -> TrainerLoop:
    """The trainer and its reading loop for ``domain``, every value from ``settings``."""
    t, k = settings.training, settings.kafka
    device = str(resolve_device(t.device))
    trainer = IncrementalTrainer(
        domain,
        registry=ModelRegistry(settings.model.dir),
        current=pointer.current,
        promote=_go_live(promoter, t.shadow_first),
        make_encoder=FeatureEncoder.from_dict,
        window=settings.redis.window,
        policy=RefreshPolicy(t.retrain_every_s, t.retrain_every_labels, t.min_new_labels),
        rule=PromotionRule(t.promotion_tolerance, t.calibration_tolerance, t.min_holdout),
        tune=FineTune(
            epochs=t.fine_tune_epochs,
            batch_size=t.batch_size,
            learning_rate=t.fine_tune_learning_rate,
            patience=min(t.patience, t.fine_tune_epochs),
            seed=t.seed,
            device=device,
        ),
        buffer=ExampleBuffer(
            holdout_fraction=t.holdout_fraction,
            holdout_size=t.holdout_size,
            replay_pool=t.replay_pool,
            seed=t.seed,
        ),
        replay_sample=t.replay_sample,
        history_limit=t.history_limit,
    )
    drift = DriftMonitor(
        domain,
        {},
        threshold=t.drift_psi_threshold,
        recent=t.drift_recent,
        min_values=t.drift_min_values,
    )
    source = KafkaRecordSource(
        k.client_config(),
        events_topic=k.topics.events,
        outcomes_topic=k.topics.outcomes,
        scores_topic=k.topics.scores,
    )
    return TrainerLoop(
        trainer,
        source=source,
        events_topic=k.topics.events,
        outcomes_topic=k.topics.outcomes,
        drift=drift,
        drift_features=t.drift_features,
        drift_retrain=t.drift_retrain,
    )


def train_worker(
    domain: Annotated[
        str, typer.Option("--domain", "-d", help="The domain to refresh.")
    ] = "credit",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads.")] = 1,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="auto, cpu or cuda[:N]: where refreshes train (default: "
            "RISK_TRAINING__DEVICE, auto = CUDA when present).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: RISK_TRAINING__METRICS_PORT; 0 = off)."),
    ] = None,
) -> None:
    """Refresh DOMAIN's live model from new labels; promote only what holds up."""
    settings = current_settings()
    if device is not None:
        training = settings.training.model_copy(update={"device": device})
        settings = settings.model_copy(update={"training": training})
    try:
        resolve_device(settings.training.device)  # before the services, a clear error
    except (DeviceUnavailable, RuntimeError) as exc:
        raise UserError(f"--device {settings.training.device}: {exc}") from None
    # The clients would retry absent services for ever: at start, a clear error instead.
    require_services(settings)
    torch.set_num_threads(threads)
    client = redis.Redis.from_url(settings.redis.url, **settings.redis.client_kwargs())
    pointer = model_pointer(settings, client)
    if pointer.current(domain) is None:
        raise typer.BadParameter(
            f"no live model for {domain}: `crmrisk models import PATH --domain {domain} --promote`"
        )
    k = settings.kafka
    producer = KafkaProducer(**k.client_config(), client_id=f"{k.client_id}-trainer", acks="all")
    promoter = ModelPromoter(
        ModelRegistry(settings.model.dir), pointer, producer, k.topics.model_updates
    )
    loop = build_trainer_loop(settings, domain, promoter, pointer)
    port = settings.training.metrics_port if metrics_port is None else metrics_port
    health = _Health()
    # A refresh (fine-tuning) can run for minutes between steps: /health is lenient here.
    token = settings.scoring.metrics_token
    server = (
        serve(
            health,
            port,
            stale_after_s=1800.0,
            host=settings.scoring.metrics_host,
            token=token.get_secret_value() if token else None,
        )
        if port
        else None
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("trainer for %s started (live version %s)", domain, pointer.current(domain))
    try:
        loop.run(stop, on_step=health.mark)
    finally:
        if server is not None:
            server.shutdown()
        loop.close()
        producer.close()
        client.close()
