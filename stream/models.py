"""A domain's scoring kit from a checkpoint: the model, its feature encoder, a ``Scorer``.

The encoder comes from the same manifest as the weights, so ingest encodes exactly as training
did (ARCHITECTURE.md, "one encoding for training, evaluation and serving"). The checkpoint's
files and versions are ``lifecycle``'s; the kit is the stream's (it holds a ``Scorer``), which is
why a worker hands ``load_domain_model`` to ``lifecycle.watcher.ModelWatcher`` as its ``load``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crmrisk.lifecycle import load_checkpoint
from crmrisk.model.attribution import Explainer
from crmrisk.model.features import FeatureEncoder
from crmrisk.model.serving import Precision
from crmrisk.stream.scorer import Scorer

__all__ = ["DomainModel", "load_domain_model"]


@dataclass(frozen=True)
class DomainModel:
    domain: str
    version: str
    encoder: FeatureEncoder
    scorer: Scorer
    manifest: Mapping[str, Any]


def load_domain_model(
    directory: Path | str,
    domain: str,
    device: torch.device,
    top_events: int,
    reasons: int = 0,
    reason_steps: int = 16,
    precision: Precision = "fp32",
    cuda_graphs: bool = False,
) -> DomainModel:
    """Load and verify the checkpoint in ``directory`` (a registry version or a plain one).

    ``reasons > 0`` gives the scorer an explainer naming that many reason codes per alert,
    integrating over ``reason_steps`` steps. ``precision`` and ``cuda_graphs``: how the scorer
    runs its forward pass on CUDA (``model.serving.ServingRunner``).
    """
    model, manifest = load_checkpoint(directory)
    hyper = manifest["hyperparameters"]
    encoder = FeatureEncoder.from_dict(manifest["encoder"])
    if encoder.domain != domain:
        raise ValueError(f"{directory} holds a {encoder.domain!r} model, not {domain!r}")
    version = str(manifest.get("version") or manifest["sha256"][:12])
    explainer = None
    if reasons > 0:
        explainer = Explainer(model, encoder, steps=reason_steps, top=reasons, device=device)
    scorer = Scorer(
        model,
        version=version,
        event_dim=int(hyper["event_dim"]),
        profile_dim=int(hyper["profile_dim"]),
        quantiles=tuple(hyper.get("quantiles") or ()),
        device=device,
        top_events=top_events,
        target_transform=str(manifest.get("target_transform") or "none"),
        target_scale=float(manifest.get("target_scale") or 1.0),
        explainer=explainer,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    scorer.source = Path(directory)
    return DomainModel(domain, version, encoder, scorer, manifest)
