"""The credit models the streaming benchmarks serve: random weights, or trained (cached).

Throughput does not depend on the weights, but what a user sees does: how many scores fire an
alert (and so how many are explained) depends on a trained model. ``trained_checkpoint``
trains credit once with the CLI's defaults (``crmrisk train --domain credit``) into a registry
of its own under ``var/`` and reuses it afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from crmrisk import lifecycle, model

__all__ = ["ROOT", "random_checkpoint", "trained_checkpoint"]

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)


def random_checkpoint(directory: Path) -> Path:
    """The credit encoder fitted on training customers, default variant, random weights."""
    from crmrisk.training.datasets import fit_encoder, load_domain

    dataset = load_domain("credit", ROOT / "data", 0)
    encoder = fit_encoder(dataset.spec, dataset.train)
    net = model.build(model.DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=0)
    path = directory / "credit" / "bench-random-0"
    lifecycle.save_checkpoint(
        path, net, {"domain": "credit", "version": "bench", "encoder": encoder.to_dict()}
    )
    return path


def trained_checkpoint(models_dir: Path = ROOT / "var" / "bench-models") -> Path:
    """A credit model trained with ``crmrisk train``'s defaults (seed 0), trained once."""
    from crmrisk.lifecycle.registry import ModelRegistry
    from crmrisk.settings import Settings
    from crmrisk.training.train_job import TrainJob, train_domain

    latest = ModelRegistry(models_dir).latest("credit")
    if latest is not None:
        return latest.path
    s = Settings()
    log.info("training the credit model the benchmarks serve (once, into %s)", models_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        saved = train_domain(
            TrainJob(
                domain="credit",
                variant=s.model.variant,
                data_dir=ROOT / "data",
                models_dir=models_dir,
                seed=0,
                epochs=s.training.epochs,
                batch_size=s.training.batch_size,
                learning_rate=s.training.learning_rate,
                patience=s.training.patience,
                window=s.redis.window,
                device="cpu",
            )
        )
    finally:
        torch.set_num_threads(threads)
    return saved.path
