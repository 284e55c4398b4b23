"""Records -> model arrays, and the encoder fitted on training records.

Layout (ARCHITECTURE.md, "Sequences as arrays"): per customer the window the serving store
keeps (``state.window_rule``: the latest ``window`` non-profile events by event time, ties by
event id bytes, first delivery of an id wins), oldest first, right-padded; ``mask`` marks
real events. ``event_ids`` keeps, per row, the id at each real position, so attention weights
can be turned back into the events an explanation names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crmrisk.model.features import FeatureEncoder, FeatureSpec
from crmrisk.state.window_rule import right_padded
from crmrisk.stream.events import CustomerEvent
from crmrisk.stream.transform import window as serving_window
from crmrisk.training.datasets.records import PROFILE_KIND, CustomerRecord

__all__ = ["SequenceArrays", "fit_encoder", "ordered_window", "to_arrays"]


@dataclass(frozen=True)
class SequenceArrays:
    """One split as arrays; field names match ``training.data.Arrays`` plus ``event_ids``."""

    events: np.ndarray  # (N, T, event_dim) float32, zero on padding
    mask: np.ndarray  # (N, T) bool, True on real events (positions 0..L-1)
    profile: np.ndarray  # (N, profile_dim) float32
    label: np.ndarray  # (N,) int64 0/1
    target: np.ndarray | None  # (N,) float64, NaN where a record has none; None if no record has
    customer_ids: list[str]
    event_ids: list[list[str]]  # per row, the ids at positions 0..L-1

    def __len__(self) -> int:
        return len(self.label)


def ordered_window(events: Sequence[CustomerEvent], window: int) -> list[CustomerEvent]:
    """The latest ``window`` non-profile events, oldest first, as the serving store keeps them."""
    return serving_window(events, window)


def fit_encoder(spec: FeatureSpec, records: Sequence[CustomerRecord]) -> FeatureEncoder:
    """Fit the domain's encoder on these records (pass the training split only)."""
    if any(r.split != "train" for r in records):
        raise ValueError("fit_encoder takes training records only")
    events = [e for r in records for e in r.events if e.kind != PROFILE_KIND]
    return FeatureEncoder.fit(
        spec,
        [e.kind for e in events],
        [e.fields for e in events],
        [r.profile for r in records],
    )


def to_arrays(
    records: Sequence[CustomerRecord],
    encoder: FeatureEncoder,
    window: int,
    pad_to: int | None = None,
) -> SequenceArrays:
    """Encode records; ``T`` is the longest kept sequence (at least 1), or ``pad_to`` if given."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    kept = [ordered_window(r.events, window) for r in records]
    lengths = np.array([len(k) for k in kept], dtype=np.int64)
    longest = int(lengths.max(initial=0))
    steps = max(longest, 1) if pad_to is None else pad_to
    if steps < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than a kept sequence ({longest} events)")
    flat = [e for k in kept for e in k]
    encoded = encoder.encode_events_many([e.kind for e in flat], [e.fields for e in flat])
    n = len(records)
    events = np.zeros((n, steps, encoder.event_dim), dtype=np.float32)
    rows, positions, mask = right_padded(lengths, steps)
    events[rows, positions] = encoded
    has_target = any(r.target is not None for r in records)
    return SequenceArrays(
        events=events,
        mask=mask,
        profile=encoder.encode_profiles_many([r.profile for r in records]),
        label=np.array([r.label for r in records], dtype=np.int64),
        target=np.array(
            [np.nan if r.target is None else r.target for r in records], dtype=np.float64
        )
        if has_target
        else None,
        customer_ids=[r.customer_id for r in records],
        event_ids=[[e.event_id for e in k] for k in kept],
    )
