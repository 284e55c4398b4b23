"""The registry of model variants: name -> a few config fields; ``build`` makes one.

The ablation tables loop over names (``variants_in(group)``); nothing outside this module asks
``if variant == ...``. A variant is a diff of ``RiskModelConfig`` defaults, and callers may
override any field by keyword (``build("qrcnn-lstm-cross", 23, 5, hidden=32)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from crmrisk.model.config import RiskModelConfig
from crmrisk.model.network import RiskModel

__all__ = ["DEFAULT_VARIANT", "VARIANTS", "Variant", "build", "variants_in"]

DEFAULT_VARIANT = "qrcnn-lstm-cross"


@dataclass(frozen=True)
class Variant:
    """A named architecture: which table it belongs to and the config fields it sets."""

    description: str
    group: str  # "default" | "frontend" (Table 3) | "attention" (Table 4) | "baseline"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))  # read-only


VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        DEFAULT_VARIANT: Variant(
            "QRCNN (4 kernels, region pooling) -> LSTM -> cross-attention (the paper)", "default"
        ),
        # Table 3: the front end swapped, LSTM and cross-attention kept.
        "cnn-lstm-cross": Variant(
            "plain CNN (one kernel) -> LSTM -> cross-attention", "frontend", {"frontend": "cnn"}
        ),
        "rnn-lstm-cross": Variant(
            "no convolution: linear -> LSTM -> cross-attention", "frontend", {"frontend": "linear"}
        ),
        "rnn-gru-cross": Variant(
            "no convolution: linear -> GRU -> cross-attention",
            "frontend",
            {"frontend": "linear", "recurrent": "gru"},
        ),
        "tcn-lstm-cross": Variant(
            "TCN (dilated causal convolutions) -> LSTM -> cross-attention",
            "frontend",
            {"frontend": "tcn"},
        ),
        # Table 4: the attention swapped, QRCNN and LSTM kept.
        "qrcnn-lstm-none": Variant(
            "QRCNN -> LSTM -> last state, no attention", "attention", {"attention": "none"}
        ),
        "qrcnn-lstm-self": Variant(
            "QRCNN -> LSTM -> self-attention", "attention", {"attention": "self"}
        ),
        "qrcnn-lstm-multihead": Variant(
            "QRCNN -> LSTM -> 4-head self-attention",
            "attention",
            {"attention": "multihead", "heads": 4},
        ),
        "qrcnn-lstm-dynamic": Variant(
            "QRCNN -> LSTM -> additive attention with a learned query",
            "attention",
            {"attention": "dynamic"},
        ),
        # Neural baselines of Table 1.
        "lstm": Variant(
            "LSTM over linearly embedded events, last state",
            "baseline",
            {"frontend": "linear", "attention": "none"},
        ),
        "cnn": Variant(
            "one-kernel CNN, mean-pooled over events",
            "baseline",
            {"frontend": "cnn", "recurrent": "none", "attention": "mean"},
        ),
    }
)

# Fields ``build`` takes as its own arguments are not overrides.
_FIELDS = frozenset(f.name for f in dataclasses.fields(RiskModelConfig)) - {
    "event_dim",
    "profile_dim",
    "quantiles",
}


def variants_in(group: str) -> tuple[str, ...]:
    """Names of the variants of one group, in registry order."""
    return tuple(name for name, v in VARIANTS.items() if v.group == group)


def build(
    variant: str,
    event_dim: int,
    profile_dim: int,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    *,
    seed: int | None = None,
    **overrides: Any,
) -> RiskModel:
    """A fresh ``RiskModel`` of ``variant``; ``quantiles=()`` builds no quantile heads.

    ``seed`` makes the initial weights reproducible without touching the global RNG; with
    ``None`` they come from torch's global generator (seed it with ``torch.manual_seed``).
    Raises ``ValueError`` for an unknown variant or an unknown override.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; RiskModelConfig has {sorted(_FIELDS)}")
    options = {**VARIANTS[variant].options, **overrides}
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    config = RiskModelConfig(
        event_dim=event_dim, profile_dim=profile_dim, quantiles=tuple(quantiles), **options
    )
    if seed is None:
        return RiskModel(config, variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RiskModel(config, variant)
