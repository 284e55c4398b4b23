"""The recurrent layer over front-end features: LSTM (Eqs. 2-7), GRU, or none.

Unidirectional and run over the whole right-padded window without packing: a forward recurrence
is causal, so the state at real event ``t`` depends only on events ``0..t`` and padding after
the last real event cannot change it. The heads read the state at the last real event
(``model.masking.last_state``), never the final slot. This is as invariant as
``pack_padded_sequence`` and cheaper on CPU, where packing costs more than the few padded steps.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RECURRENTS", "Recurrent"]

RECURRENTS = ("lstm", "gru", "none")


class Recurrent(nn.Module):
    """Features ``(B, T, F)`` -> states ``(B, T, out_dim)``; "none" passes features through."""

    def __init__(self, kind: str, in_dim: int, hidden: int):
        super().__init__()
        if kind not in RECURRENTS:
            raise ValueError(f"recurrent={kind!r}, expected one of {RECURRENTS}")
        self.kind = kind
        self.rnn: nn.Module | None = None
        if kind == "lstm":
            self.rnn = nn.LSTM(in_dim, hidden, batch_first=True)
        elif kind == "gru":
            self.rnn = nn.GRU(in_dim, hidden, batch_first=True)
        self.out_dim = in_dim if self.rnn is None else hidden

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.rnn is None:
            return features
        states, _ = self.rnn(features)  # (B, T, hidden)
        return states
