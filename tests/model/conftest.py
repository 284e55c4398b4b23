"""Helpers for the model tests: small random batches of right-padded sequences."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

EVENT_DIM, PROFILE_DIM = 7, 5

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def random_batch(
    lengths: Sequence[int],
    slots: int,
    event_dim: int = EVENT_DIM,
    profile_dim: int = PROFILE_DIM,
    seed: int = 0,
) -> Batch:
    """Events ``(B, slots, E)`` with random values in the padded slots too, so that a test
    fails if padding leaks; the mask marks ``lengths[b]`` real events per row."""
    g = torch.Generator().manual_seed(seed)
    events = torch.randn(len(lengths), slots, event_dim, generator=g)
    mask = torch.arange(slots)[None, :] < torch.tensor(lengths)[:, None]
    profile = torch.randn(len(lengths), profile_dim, generator=g)
    return events, mask, profile


def repad(batch: Batch, slots: int, fill: float = 7.0) -> Batch:
    """The same customers with ``slots`` event slots; new padded slots hold ``fill``."""
    events, mask, profile = batch
    out = torch.full((events.shape[0], slots, events.shape[2]), fill)
    keep = min(slots, events.shape[1])
    out[:, :keep] = events[:, :keep]
    new_mask = torch.zeros(events.shape[0], slots, dtype=torch.bool)
    new_mask[:, :keep] = mask[:, :keep]
    if mask[:, keep:].any():
        raise ValueError("repad would drop real events")
    return out, new_mask, profile


@contextlib.contextmanager
def fake_cuda() -> Iterator[None]:
    """Tensors that say ``cuda`` without a GPU: shapes, dtypes and devices, no data.

    Inside it ``.to("cuda")`` works on any machine and an operation that mixes devices fails
    as it would on a GPU ("found two different devices cpu, cuda:0"); an operation that needs
    the data on the host (``torch.equal``, ``.item()``: a sync a CUDA graph cannot capture)
    raises ``DataDependentOutputException``. cuDNN is off: its RNN asks the driver for a device.
    Build real (CPU) modules outside it and move them inside.
    """
    with FakeTensorMode(allow_non_fake_inputs=True), torch.backends.cudnn.flags(enabled=False):
        yield


def attention_inputs(
    lengths: Sequence[int] = (3, 5), slots: int = 5, dim: int = 8, query_dim: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What an attention module reads: states ``(B, slots, dim)``, the mask, lengths and a
    profile query ``(B, query_dim)``."""
    g = torch.Generator().manual_seed(0)
    states = torch.randn(len(lengths), slots, dim, generator=g)
    lengths = torch.tensor(lengths)
    mask = torch.arange(slots)[None, :] < lengths[:, None]
    query = torch.randn(len(lengths), query_dim, generator=g)
    return states, mask, lengths, query
