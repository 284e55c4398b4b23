"""Every hyper-parameter of a risk model, and the parts each architecture field may name.

``RiskModelConfig`` is what a checkpoint manifest stores (``to_dict``/``from_dict``) and what
``model.network.RiskNetwork`` is built from. The paper's model is QRCNN -> LSTM -> cross-attention
(``model/network.py``); the ablations swap one of ``frontend``, ``recurrent`` or ``attention`` for
a part of ``model/ablations.py`` (named variants: ``model/variants.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["ATTENTIONS", "FRONTENDS", "RECURRENTS", "RiskModelConfig"]

FRONTENDS = ("qrcnn", "cnn", "linear", "tcn")
RECURRENTS = ("lstm", "gru", "none")
ATTENTIONS = ("none", "mean", "self", "multihead", "dynamic", "cross")


@dataclass(frozen=True)
class RiskModelConfig:
    """Every hyper-parameter of a ``RiskModel``; JSON-able through ``to_dict``/``from_dict``."""

    event_dim: int
    profile_dim: int
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # () for no quantile heads
    frontend: str = "qrcnn"  # one of FRONTENDS
    recurrent: str = "lstm"  # one of RECURRENTS
    attention: str = "cross"  # one of ATTENTIONS
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
    # Heads per network trained as an ensemble in one pass (``RiskHeads``); 1 = a plain head.
    head_members: int = 1

    def __post_init__(self) -> None:
        names = ("event_dim", "channels", "hidden", "d_k", "heads", "regions", "head_hidden")
        for name in (*names, "members", "head_members"):
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
        # A config saved before in-network heads existed had one head, whatever today's default.
        d = {"head_members": 1, **d}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
