"""Helpers for right-padded sequences: lengths, masked softmax, the last real state.

Every sequence is right-padded (real events at ``0..L-1``, ``mask[b, t]`` True for real events),
as ARCHITECTURE.md fixes. The helpers below are what keeps a customer's output independent of the
amount of padding: padded slots never reach a softmax, a pooling or a gathered state.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_right_padded", "last_state", "masked_softmax", "sequence_lengths"]


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
