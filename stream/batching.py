"""Dynamic batching like Triton's: up to ``max_batch_size`` items or ``max_delay_ms``, first wins.

``batch_ready`` is the policy, pure and tested alone; ``DynamicBatcher`` applies it to any async
source that can hand over up to n items within a timeout (``getmany``, a queue drain).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["DynamicBatcher", "batch_ready"]

T = TypeVar("T")


def batch_ready(size: int, waited_ms: float, max_batch_size: int, max_delay_ms: float) -> bool:
    """True when a batch of ``size`` items, the oldest waiting ``waited_ms``, should run now.

    >>> batch_ready(512, 0.1, 512, 5.0), batch_ready(3, 5.0, 512, 5.0)
    (True, True)
    >>> batch_ready(3, 1.0, 512, 5.0)  # not full, not waited long enough
    False
    >>> batch_ready(0, 99.0, 512, 5.0)  # nothing to run
    False
    """
    return size >= max_batch_size or (size > 0 and waited_ms >= max_delay_ms)


class DynamicBatcher(Generic[T]):
    """Collects a batch from ``await source(timeout_s, max_items) -> list`` under ``batch_ready``.

    The delay is counted from when the first item of the batch was received.
    """

    def __init__(
        self,
        source: Callable[[float, int], Awaitable[list[T]]],
        max_batch_size: int,
        max_delay_ms: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        self._source = source
        self.max_batch_size = max_batch_size
        self.max_delay_ms = max_delay_ms
        self._clock = clock

    async def next_batch(self, idle_timeout_s: float) -> list[T]:
        """Block up to ``idle_timeout_s`` for a first item, then fill per the policy."""
        batch = list(await self._source(idle_timeout_s, self.max_batch_size))
        if not batch:
            return batch
        start = self._clock()
        while True:
            waited_ms = (self._clock() - start) * 1000.0
            if batch_ready(len(batch), waited_ms, self.max_batch_size, self.max_delay_ms):
                return batch
            remaining_s = max(self.max_delay_ms - waited_ms, 0.0) / 1000.0
            batch.extend(await self._source(remaining_s, self.max_batch_size - len(batch)))
