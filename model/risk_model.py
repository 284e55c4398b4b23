"""The risk model assembled: front end -> recurrent layer -> attention -> heads, ``members`` times.

``RiskModelConfig`` holds every constructor hyper-parameter (what a checkpoint manifest stores);
``RiskNetwork`` wires the parts chosen by its ``frontend``, ``recurrent`` and ``attention``
fields. The paper's model is QRCNN -> LSTM -> cross-attention (``model/variants.py``,
"qrcnn-lstm-cross"); the ablations swap one field.

The heads read ``[last real state, attention context, QRCNN region summary, profile embedding]``
(parts a variant lacks are left out). A customer's output depends only on its own row and real
events: causal convolutions and recurrence, per-row lengths, masked softmax and pooling.

``RiskModel`` averages ``members`` such networks (logits, quantiles and attention; each member
is trained on other folds of the data, ``training/crossfit.py``) and then applies what was
calibrated on held-out predictions: a Platt scaling of the averaged logit (``a * logit + b``)
and a conformal margin that widens (or narrows) the outer quantiles. Both are buffers, saved
with the weights, so the stream serves exactly what was evaluated; they start as the identity.
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

__all__ = ["FRONTENDS", "RiskModel", "RiskModelConfig", "RiskNetwork"]

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
    # Sizes chosen for the CPU budget (ANCHORS.md: >= 20k customers/s on 2 cores at T = 32)
    # with three members: three small networks averaged beat one network three times their
    # size on held-out data (benchmarks/results/report.md, ablation rows);
    # benchmarks/model_speed.py measures them.
    channels: int = 16  # front-end output width (QRCNN: split evenly over its kernels)
    kernel_sizes: tuple[int, ...] = (1, 2, 3, 5)  # QRCNN's four parallel kernels
    regions: int = 4  # QRCNN quick region pooling: regions per sequence
    region_pool: str = "maxavg"  # max | avg | maxavg
    summary_dim: int = 32  # QRCNN region summary width
    cnn_kernel: int = 3  # plain CNN front end: its single kernel width
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 4)
    hidden: int = 24  # LSTM/GRU state size
    d_k: int = 16  # attention key/value width (all heads together)
    heads: int = 1  # cross and multi-head attention heads
    profile_hidden: int = 16  # profile embedding width (also the cross-attention query source)
    head_hidden: int = 32
    dropout: float = 0.1
    members: int = 3  # networks averaged in logit space (one per cross-fitting fold)

    def __post_init__(self) -> None:
        names = ("event_dim", "channels", "hidden", "d_k", "heads", "regions", "head_hidden")
        for name in (*names, "members"):
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


class RiskNetwork(nn.Module):
    """One member: ``forward(events, mask, profile) -> RiskOutput`` (uncalibrated)."""

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


class RiskModel(nn.Module):
    """``forward(events, mask, profile) -> RiskOutput``; see ARCHITECTURE.md, "The model"."""

    def __init__(self, config: RiskModelConfig, variant: str = "custom"):
        super().__init__()
        self.config, self.variant = config, variant
        self.members = nn.ModuleList(RiskNetwork(config, variant) for _ in range(config.members))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))  # logit scale, bias
        self.register_buffer("interval_margin", torch.zeros(()))  # added to the outer quantiles

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
    ) -> RiskOutput:
        """Score ``B`` customers: events ``(B, T, E)``, mask ``(B, T)`` bool, profile ``(B, P)``."""
        outs = [member(events, mask, profile) for member in self.members]
        if len(outs) == 1:
            logit, quantiles, attention = outs[0].logit, outs[0].quantiles, outs[0].attention
        else:
            logit = torch.stack([o.logit for o in outs]).mean(0)
            attention = torch.stack([o.attention for o in outs]).mean(0)
            quantiles = None
            if outs[0].quantiles is not None:
                quantiles = torch.stack([o.quantiles for o in outs]).mean(0)
        scale, bias = self.calibration.to(logit.dtype)
        logit = logit * scale + bias
        if quantiles is not None and quantiles.shape[1] > 1:
            quantiles = _widen(quantiles, self.interval_margin.to(quantiles.dtype))
        return RiskOutput(logit, torch.sigmoid(logit), quantiles, attention)

    @torch.no_grad()
    def set_calibration(self, scale: float, bias: float) -> None:
        """Platt scaling of the averaged logit, fitted on predictions for unseen rows."""
        self.calibration.copy_(torch.tensor([scale, bias]))

    @torch.no_grad()
    def set_interval_margin(self, margin: float) -> None:
        """The conformal margin (training units) subtracted from q_low and added to q_high."""
        self.interval_margin.fill_(margin)


def _widen(quantiles: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """Outer quantiles moved out by ``margin`` (in if negative), never past their neighbours."""
    low = torch.minimum(quantiles[:, :1] - margin, quantiles[:, 1:2])
    high = torch.maximum(quantiles[:, -1:] + margin, quantiles[:, -2:-1])
    if quantiles.shape[1] == 2:
        return torch.cat([low, torch.maximum(high, low)], dim=1)
    return torch.cat([low, quantiles[:, 1:-1], high], dim=1)
