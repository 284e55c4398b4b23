"""What goes into and comes out of ``WindowTable.apply``: batches of events, their statuses,
and the windows scored events left (columns, not objects)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["AppendStatus", "Appends", "Applied", "Windows"]


class AppendStatus(IntEnum):
    APPLIED = 1
    DUPLICATE = 0  # the event id is already in the window (or is the stored profile)
    REDELIVERED = -1  # the partition offset was already applied: scored as of itself
    OUTSIDE_WINDOW = 2  # older than every event of a full window: nothing changed
    CONFLICT = 4  # the event id is stored with other content: a producer bug, nothing changed


@dataclass
class Appends:
    """A batch of encoded events of one domain, in arrival order (columns, not objects).

    ``vectors`` rows of profile events and ``profiles`` rows of other events are ignored;
    ``hashes`` 0 and ``exposure`` NaN mean unknown / none.
    """

    customers: list[str]
    event_ids: list[str]
    times_ms: np.ndarray  # int64 (n,)
    kinds: list[str]
    vectors: np.ndarray  # float32 (n, event_dim)
    profiles: np.ndarray  # float32 (n, profile_dim)
    is_profile: np.ndarray  # bool (n,)
    hashes: np.ndarray  # uint64 (n,)
    exposure: np.ndarray  # float64 (n,)
    partitions: np.ndarray  # int32 (n,)
    redelivered: np.ndarray  # bool (n,)

    def __len__(self) -> int:
        return len(self.customers)


@dataclass
class Windows:
    """The windows that scored events left, right-padded: row b is ``Applied.scored[b]``."""

    events: np.ndarray  # float32 (B, T, E)
    mask: np.ndarray  # bool (B, T)
    profile: np.ndarray  # float32 (B, P), zeros without a profile
    has_profile: np.ndarray  # bool (B,)
    lengths: np.ndarray  # int64 (B,)
    times_ms: np.ndarray  # int64 (B, T)
    kind_codes: np.ndarray  # int32 (B, T), names in ``kinds``
    kinds: Sequence[str]
    ids: list[bytes]  # per row, the window's event ids NUL-terminated (immutable snapshots)
    exposure: np.ndarray  # float64 (B,), NaN: none

    def __len__(self) -> int:
        return len(self.lengths)

    def event_ids(self, row: int) -> list[str]:
        return self.ids[row].decode().split("\0")[: int(self.lengths[row])]

    @staticmethod
    def concat(parts: Sequence[Windows]) -> Windows:
        """Several ``Windows`` (of one domain) as one, padded to the longest."""
        if len(parts) == 1:
            return parts[0]
        longest = max(p.mask.shape[1] for p in parts)

        def pad(a: np.ndarray) -> np.ndarray:
            return np.pad(a, [(0, 0), (0, longest - a.shape[1])] + [(0, 0)] * (a.ndim - 2))

        return Windows(
            events=np.concatenate([pad(p.events) for p in parts]),
            mask=np.concatenate([pad(p.mask) for p in parts]),
            profile=np.concatenate([p.profile for p in parts]),
            has_profile=np.concatenate([p.has_profile for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            times_ms=np.concatenate([pad(p.times_ms) for p in parts]),
            kind_codes=np.concatenate([pad(p.kind_codes) for p in parts]),
            kinds=parts[0].kinds,
            ids=[i for p in parts for i in p.ids],
            exposure=np.concatenate([p.exposure for p in parts]),
        )

    def take(self, rows: np.ndarray) -> Windows:
        """The windows of ``rows`` only (copies: they outlive the batch on the alert path)."""
        return Windows(
            self.events[rows],
            self.mask[rows],
            self.profile[rows],
            self.has_profile[rows],
            self.lengths[rows],
            self.times_ms[rows],
            self.kind_codes[rows],
            self.kinds,
            [self.ids[i] for i in rows.tolist()],
            self.exposure[rows],
        )


@dataclass
class Applied:
    status: np.ndarray  # int8 (n,), ``AppendStatus`` values
    stored_hash: np.ndarray  # uint64 (n,): with CONFLICT, the content hash already stored
    scored: np.ndarray  # int64 (B,): the events to score, in score order (per customer: arrival)
    windows: Windows
    slots: np.ndarray  # int64 (n,): each event's customer slot (``records`` writes them back)
