"""The risk model assembled: front end -> recurrent layer -> attention -> heads.

``RiskModelConfig`` holds every constructor hyper-parameter (what a checkpoint manifest stores);
``RiskModel`` wires the parts chosen by its ``frontend``, ``recurrent`` and ``attention`` fields.
The paper's model is QRCNN -> LSTM -> cross-attention (``model/variants.py``,
"qrcnn-lstm-cross"); the ablations swap one field.

The heads read ``[last real state, attention context, QRCNN region summary, profile embedding]``
(parts a variant lacks are left out). A customer's output depends only on its own row and real
events: causal convolutions and recurrence, per-row lengths, masked softmax and pooling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from model.attention import ATTENTIONS, make_attention
from model.frontends import CNNFrontend, LinearFrontend, TCNFrontend
from model.heads import RiskHeads
from model.masking import last_state, sequence_lengths
from model.output import RiskOutput
from model.qrcnn import QRCNN
from model.recurrent import Recurrent

__all__ = ["FRONTENDS", "RiskModel", "RiskModelConfig"]

FRONTENDS = ("qrcnn", "cnn", "linear", "tcn")


@dataclass(frozen=True)
class RiskModelConfig:
    """Every hyper-parameter of a ``RiskModel``; JSON-able through ``to_dict``/``from_dict``."""

    event_dim: int
    profile_dim: int
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # () for no quantile heads
    frontend: str = "qrcnn"  # one of FRONTENDS
    recurrent: str = "lstm"  # lstm | gru | none
    attention: str = "cross"  # one of model.attention.ATTENTIONS
    # Sizes chosen for the CPU budget (ANCHORS.md: >= 20k customers/s on 2 cores at T = 32);
    # benchmarks/model_speed.py measures them.
    channels: int = 32  # front-end output width (QRCNN: split evenly over its kernels)
    kernel_sizes: tuple[int, ...] = (1, 2, 3, 5)  # QRCNN's four parallel kernels
    regions: int = 4  # QRCNN quick region pooling: regions per sequence
    region_pool: str = "maxavg"  # max | avg | maxavg
    summary_dim: int = 64  # QRCNN region summary width
    cnn_kernel: int = 3  # plain CNN front end: its single kernel width
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 4)
    hidden: int = 48  # LSTM/GRU state size
    d_k: int = 32  # attention key/value width (all heads together)
    heads: int = 1  # cross and multi-head attention heads
    profile_hidden: int = 32  # profile embedding width (also the cross-attention query source)
    head_hidden: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("event_dim", "channels", "hidden", "d_k", "heads", "regions", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.profile_dim < 0:
            raise ValueError(f"profile_dim={self.profile_dim} must be >= 0")
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend={self.frontend!r}, expected one of {FRONTENDS}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention={self.attention!r}, expected one of {ATTENTIONS}")
        if not all(0 < q < 1 for q in self.quantiles) or list(self.quantiles) != sorted(
            set(self.quantiles)
        ):
            raise ValueError(
                f"quantiles={self.quantiles} must be strictly increasing levels in (0, 1)"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RiskModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown RiskModelConfig fields: {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _make_frontend(config: RiskModelConfig) -> nn.Module:
    c = config
    if c.frontend == "qrcnn":
        return QRCNN(
            c.event_dim, c.channels, c.kernel_sizes, c.regions, c.region_pool, c.summary_dim
        )
    if c.frontend == "cnn":
        return CNNFrontend(c.event_dim, c.channels, c.cnn_kernel)
    if c.frontend == "linear":
        return LinearFrontend(c.event_dim, c.channels)
    return TCNFrontend(c.event_dim, c.channels, c.tcn_kernel, c.tcn_dilations)


class ProfileEncoder(nn.Module):
    """Static profile ``(B, P)`` -> embedding ``(B, D)``; a learned constant when ``P == 0``."""

    def __init__(self, profile_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(profile_dim, out_dim) if profile_dim else None
        self.constant = None if profile_dim else nn.Parameter(torch.zeros(out_dim))

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        if self.linear is None:
            return torch.relu(self.constant).expand(profile.shape[0], -1)  # (B, D)
        return torch.relu(self.linear(profile))  # (B, D)


class RiskModel(nn.Module):
    """``forward(events, mask, profile) -> RiskOutput``; see ARCHITECTURE.md, "The model"."""

    def __init__(self, config: RiskModelConfig, variant: str = "custom"):
        super().__init__()
        self.config, self.variant = config, variant
        self.frontend = _make_frontend(config)
        self.recurrent = Recurrent(config.recurrent, self.frontend.out_dim, config.hidden)
        self.profile = ProfileEncoder(config.profile_dim, config.profile_hidden)
        self.attention = make_attention(
            config.attention,
            self.recurrent.out_dim,
            config.profile_hidden,
            config.d_k,
            config.heads,
        )
        width = (
            self.recurrent.out_dim
            + self.attention.out_dim
            + self.frontend.summary_dim
            + config.profile_hidden
        )
        self.heads = RiskHeads(width, config.head_hidden, config.dropout, config.quantiles)

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
    ) -> RiskOutput:
        """Score ``B`` customers: events ``(B, T, E)``, mask ``(B, T)`` bool, profile ``(B, P)``."""
        self._check_shapes(events, mask, profile)
        mask = mask.to(torch.bool)
        lengths = sequence_lengths(mask)  # (B,)
        dtype = self.heads.logit.weight.dtype
        # torch.where, not a product: a NaN in a padded slot must not leak through 0 * NaN.
        events = torch.where(mask[..., None], events.to(dtype), 0.0)  # (B, T, E)
        features, summary = self.frontend(events, mask, lengths)  # (B, T, F), (B, S) | None
        states = self.recurrent(features)  # (B, T, H)
        query = self.profile(profile.to(dtype))  # (B, P')
        context, attention = self.attention(states, mask, lengths, query)  # (B, D) | None, (B, T)
        parts = [last_state(states, lengths), context, summary, query]
        logit, quantiles = self.heads(torch.cat([p for p in parts if p is not None], dim=-1))
        return RiskOutput(logit, torch.sigmoid(logit), quantiles, attention)

    def _check_shapes(
        self, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
    ) -> None:
        c = self.config
        if events.dim() != 3 or events.shape[2] != c.event_dim:
            raise ValueError(f"events must be (B, T, {c.event_dim}), got {tuple(events.shape)}")
        if events.shape[1] < 1:
            raise ValueError("events need at least one slot (T >= 1); pad empty customers")
        if tuple(mask.shape) != tuple(events.shape[:2]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match events[:2]")
        if tuple(profile.shape) != (events.shape[0], c.profile_dim):
            raise ValueError(
                f"profile must be ({events.shape[0]}, {c.profile_dim}), got {tuple(profile.shape)}"
            )
