"""The window rule, written once: which of a customer's events form its window, in what order.

A customer's window is its latest ``size`` non-profile events, ordered by (event time in whole
milliseconds since the epoch, the event id's UTF-8 bytes), oldest first. An event id counts
once: its first delivery wins, later ones are duplicates. Profile events are kept apart (the
latest by time) and are never part of the window. Models see the window right-padded: row
``b`` holds its ``L`` events at positions ``0..L-1`` and ``mask`` marks them.

Who follows it: ``stream.transform.window`` and ``training.datasets.arrays`` call
``window_positions``; ``WindowTable`` (``state/window_table.py``) applies the same rule one
batch at a time, and Redis keeps what the table computed (``partition_fence.lua`` writes
window records, it never orders or trims them). ``tests/state/test_window_rule.py`` runs
random event streams through the table and the script on Redis (and the in-memory twin)
and asserts the stored windows equal this function's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = ["right_padded", "time_ms", "window_positions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def time_ms(moment: datetime) -> int:
    """A time as whole milliseconds since the epoch (exact integer arithmetic, floored).

    >>> time_ms(datetime(1970, 1, 1, 0, 0, 1, 1900, tzinfo=UTC))
    1001
    """
    return (moment - _EPOCH) // _MS


def window_positions(
    event_ids: Sequence[str],
    times_ms: Sequence[int],
    is_profile: Sequence[bool],
    size: int,
) -> list[int]:
    """Positions (into the arrival-ordered inputs) of the window's events, oldest first.

    >>> window_positions(["b", "a", "c", "a", "p"], [3, 1, 2, 9, 5], [0, 0, 0, 0, 1], 2)
    [2, 0]
    >>> window_positions(["z", "m"], [5, 5], [False, False], 4)  # a tie: by id bytes
    [1, 0]
    """
    first: dict[str, int] = {}
    for i, (event_id, profile) in enumerate(zip(event_ids, is_profile, strict=True)):
        if not profile:
            first.setdefault(event_id, i)
    ordered = sorted(first.values(), key=lambda i: (int(times_ms[i]), event_ids[i].encode()))
    return ordered[-size:] if size > 0 else []


def right_padded(lengths: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded layout of windows of ``lengths`` events in ``steps`` positions.

    Returns (row, position) of each event of the windows laid end to end, and ``mask``
    (B, steps), True on real events.

    >>> rows, positions, mask = right_padded(np.array([2, 0, 1]), 3)
    >>> rows.tolist(), positions.tolist(), mask.sum(axis=1).tolist()
    ([0, 0, 2], [0, 1, 0], [2, 0, 1])
    """
    lengths = np.asarray(lengths, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    return rows, positions, mask
