"""The served models from settings: loaded from the registry, or followed on the live pointer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.lifecycle.watcher import ModelWatcher
from crmrisk.settings import Settings
from crmrisk.stream.models import DomainModel, load_domain_model
from crmrisk.stream.scorer import resolve_device
from crmrisk.wiring.clients import model_pointer

__all__ = ["follow_pointer", "latest_model_dir", "load_model", "load_models"]


def latest_model_dir(settings: Settings, domain: str) -> Path | None:
    """The registry's newest version of ``domain`` under ``settings.model.dir``, if any."""
    latest = ModelRegistry(settings.model.dir).latest(domain)
    return None if latest is None else latest.path


def load_models(
    settings: Settings, domains: Sequence[str], model_dirs: Mapping[str, Path] | None = None
) -> dict[str, DomainModel]:
    """Each domain's model from ``model_dirs`` or else the registry's newest version.

    Raises ``LookupError`` naming the domain when there is none.
    """
    device = resolve_device(settings.scoring.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # two cores are shared with Kafka and Redis
    given = dict(model_dirs or {})
    out = {}
    for domain in domains:
        directory = given.get(domain) or latest_model_dir(settings, domain)
        if directory is None:
            raise LookupError(
                f"no model for {domain!r} under {settings.model.dir}: train one or pass --model"
            )
        out[domain] = load_model(settings, directory, domain, device)
    return out


def load_model(
    settings: Settings, directory: Path, domain: str, device: torch.device
) -> DomainModel:
    """One checkpoint as served: the scoring settings' explanation, precision and graphs."""
    s = settings.scoring
    return load_domain_model(
        directory, domain, device, s.top_events, s.reasons, s.reason_steps, s.precision,
        s.cuda_graphs,
    )  # fmt: skip


def follow_pointer(
    settings: Settings, domains: Sequence[str]
) -> tuple[ModelWatcher, dict[str, DomainModel]]:
    """A started ``ModelWatcher`` on the live pointer, and the models it loaded first."""
    device = resolve_device(settings.scoring.device)
    k = settings.kafka
    watcher = ModelWatcher(
        ModelRegistry(settings.model.dir),
        model_pointer(settings),
        domains,
        load=lambda v: load_model(settings, v.path, v.domain, device),
        kafka_config=k.client_config(),
        topic=k.topics.model_updates,
        check_every_s=settings.training.reload_check_every_s,
    )
    return watcher, {d: loaded.value for d, loaded in watcher.start().items()}
