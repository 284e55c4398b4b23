"""Building blocks shared by every network family: right-padded, causal event sequences.

Every sequence is right-padded (real events at ``0..L-1``, ``mask[b, t]`` True for real events),
as ARCHITECTURE.md fixes. The helpers below are what keeps a customer's output independent of the
amount of padding: padded slots never reach a softmax, a pooling or a gathered state, and causal
windows (left zero padding) never let a real position read the padding after it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "causal_windows",
    "check_batch",
    "check_right_padded",
    "last_state",
    "masked_softmax",
    "sequence_lengths",
    "split_heads",
]


def check_batch(
    events: torch.Tensor,
    mask: torch.Tensor,
    profile: torch.Tensor,
    event_dim: int,
    profile_dim: int,
) -> None:
    """Raise ``ValueError`` unless events are ``(B, T, event_dim)`` with ``T >= 1``, the mask
    ``(B, T)`` and the profile ``(B, profile_dim)``: what every network's forward reads."""
    if events.dim() != 3 or events.shape[2] != event_dim:
        raise ValueError(f"events must be (B, T, {event_dim}), got {tuple(events.shape)}")
    if events.shape[1] < 1:
        raise ValueError("events need at least one slot (T >= 1); pad empty customers")
    if tuple(mask.shape) != tuple(events.shape[:2]):
        raise ValueError(f"mask {tuple(mask.shape)} does not match events[:2]")
    if tuple(profile.shape) != (events.shape[0], profile_dim):
        raise ValueError(
            f"profile must be ({events.shape[0]}, {profile_dim}), got {tuple(profile.shape)}"
        )


def check_right_padded(mask: np.ndarray) -> None:
    """``sequence_lengths``'s check on the host, before the mask goes to a device.

    >>> check_right_padded(np.array([[True, False], [False, True]]))
    Traceback (most recent call last):
    ...
    ValueError: mask must be right-padded: real events at 0..L-1, padding after them
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    lengths = mask.sum(axis=1)  # (B,)
    if not np.array_equal(mask, np.arange(mask.shape[1])[None, :] < lengths[:, None]):
        raise ValueError("mask must be right-padded: real events at 0..L-1, padding after them")


def sequence_lengths(mask: torch.Tensor, check: bool = True) -> torch.Tensor:
    """Real events per row, ``(B,)`` int64, after checking that ``mask`` is right-padded.

    Raises ``ValueError`` when a row has a padded slot before a real event: the causal layers
    would otherwise read padding as history. The check reads a device tensor on the host (a
    sync, which a CUDA graph cannot capture): ``check=False`` is for callers that checked the
    mask before it reached the device (``model/serving.py``).
    """
    if mask.dim() != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    lengths = mask.sum(dim=1)  # (B,)
    if not check:
        return lengths
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    if not torch.equal(mask, positions[None, :] < lengths[:, None]):
        raise ValueError("mask must be right-padded: real events at 0..L-1, padding after them")
    return lengths


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``mask``; exactly 0 on masked slots.

    The fill value is the dtype's own minimum (finite in fp16/bf16, unlike a literal -1e9), and a
    row with no real slot comes out all zeros instead of uniform over padding.
    """
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * mask.to(scores.dtype)


def last_state(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The state at each row's last real event, ``(B, H)``; zeros for an empty row."""
    index = (lengths - 1).clamp(min=0)  # (B,)
    picked = states[torch.arange(states.shape[0], device=states.device), index]  # (B, H)
    return picked * (lengths > 0).to(states.dtype)[:, None]


def causal_windows(x: torch.Tensor, width: int, dilation: int = 1) -> torch.Tensor:
    """``(B, T, C)`` -> ``(B, T, width * C)``: for each ``t`` the inputs at ``t - (width-1-j) d``
    for ``j = 0..width-1`` (oldest tap first), zeros before the sequence start.

    A causal convolution is one matrix product over these windows: stacking the shifted copies
    keeps the sequence-major layout the LSTM wants (no transposes) and, on CPU, beats
    ``nn.Conv1d`` for these short sequences and narrow channels.
    """
    if width == 1:
        return x
    steps = x.shape[1]
    padded = F.pad(x, (0, 0, (width - 1) * dilation, 0))  # (B, T + (width-1) d, C)
    return torch.cat([padded[:, j * dilation : j * dilation + steps] for j in range(width)], -1)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(..., D)`` -> ``(..., heads, D / heads)``: attention heads side by side."""
    return x.unflatten(-1, (heads, -1))
