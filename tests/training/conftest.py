"""Shared by the training tests: small splits with a learnable label."""

from collections.abc import Callable

import numpy as np
import pytest

from crmrisk.training.data import Arrays


def _learnable(n: int, seed: int, target: bool = False) -> Arrays:
    """Customers whose label follows the sum of their first event feature (a learnable rule)."""
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, 5, 3)).astype(np.float32)
    lengths = rng.integers(1, 6, n)
    mask = np.arange(5)[None] < lengths[:, None]
    events[~mask] = 0
    profile = rng.normal(size=(n, 2)).astype(np.float32)
    score = (events[..., 0] * mask).sum(1) + profile[:, 0]
    label = (score + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    spend = np.exp(1 + 0.5 * score + 0.3 * rng.normal(size=n)) if target else None
    return Arrays(events, mask, profile, label, spend)


@pytest.fixture
def make_arrays() -> Callable[..., Arrays]:
    """``make_arrays(n, seed, target=False)``: ``n`` customers (see ``_learnable``)."""
    return _learnable
