"""What the incremental trainer learns from: new examples, a held-out slice, older ones to replay.

Customers are split by a stable hash (``in_holdout``): a fixed fraction is never trained on and
their latest examples form the held-out slice; the rest are new training examples, retired after
a refresh into a bounded reservoir that later refreshes replay so they do not forget.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence

import numpy as np

from crmrisk.training.point_in_time import PointInTimeExample

__all__ = ["ExampleBuffer", "in_holdout"]


def in_holdout(customer_id: str, fraction: float) -> bool:
    """Stable customer-level assignment to the held-out slice (same answer in every process).

    >>> in_holdout("c-1", 0.0), in_holdout("c-1", 1.0)
    (False, True)
    """
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


class ExampleBuffer:
    """New training examples, the recent held-out slice, and a reservoir of older examples."""

    def __init__(
        self, *, holdout_fraction: float, holdout_size: int, replay_pool: int, seed: int
    ) -> None:
        self.holdout_fraction = holdout_fraction
        self.new: list[PointInTimeExample] = []
        self.holdout: deque[PointInTimeExample] = deque(maxlen=holdout_size)
        self._pool: list[PointInTimeExample] = []
        self._pool_size = replay_pool
        self._seen = 0  # examples offered to the reservoir so far
        self._rng = np.random.default_rng(seed)

    def add(self, example: PointInTimeExample) -> None:
        if in_holdout(example.customer_id, self.holdout_fraction):
            self.holdout.append(example)
        else:
            self.new.append(example)

    def add_trained(self, example: PointInTimeExample) -> None:
        """An example an earlier run trained on: to the held-out slice or the reservoir."""
        if in_holdout(example.customer_id, self.holdout_fraction):
            self.holdout.append(example)
        else:
            self.retire([example])

    def replay(self, k: int) -> list[PointInTimeExample]:
        """Up to ``k`` older examples, drawn uniformly from the reservoir."""
        k = min(k, len(self._pool))
        if k == 0:
            return []
        return [self._pool[i] for i in self._rng.choice(len(self._pool), k, replace=False)]

    def retire(self, examples: Sequence[PointInTimeExample]) -> None:
        """Move trained-on examples into the reservoir (reservoir sampling: uniform, bounded)."""
        for example in examples:
            self._seen += 1
            if len(self._pool) < self._pool_size:
                self._pool.append(example)
            else:
                j = int(self._rng.integers(0, self._seen))
                if j < self._pool_size:
                    self._pool[j] = example

    @property
    def pool_size(self) -> int:
        return len(self._pool)
