"""Deterministic split rules shared by the adapters; each returns one split name per row.

- ``random_splits``: stratified by label (sklearn ``train_test_split`` with ``random_state =
  seed``): ``test_fraction`` of rows to test, then ``val_fraction`` of the rest to validation,
  stratified again. Seeds 0-4 are the benchmark's.
- ``ordered_splits``: rows already in time order; the last ``test_fraction`` is test and the last
  ``val_fraction`` of what precedes it is validation, so validation is the most recent past.
- ``group_splits``: ``val_fraction`` of the distinct groups (customers) to validation, the rest
  to train, so one customer's rows at several cutoffs never straddle train and validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

__all__ = ["RANDOM_STRATIFIED", "group_splits", "ordered_splits", "random_splits"]

# How the built-in datasets with a random split describe it (``random_splits`` at 0.2, 0.2).
RANDOM_STRATIFIED = "random stratified: 20% test, then 20% of the rest validation"


def _stratify(labels: np.ndarray) -> np.ndarray | None:
    # sklearn needs >= 2 rows per class to stratify; tiny or one-class data is split plainly.
    _, counts = np.unique(labels, return_counts=True)
    return labels if counts.size > 1 and counts.min() >= 2 else None


def random_splits(
    labels: Sequence[int], seed: int, test_fraction: float = 0.2, val_fraction: float = 0.2
) -> np.ndarray:
    """Stratified random split names ("train"/"val"/"test") per row.

    >>> random_splits([0, 1] * 10, seed=0).tolist().count("test")
    4
    """
    y = np.asarray(labels)
    names = np.full(len(y), "train", dtype=object)
    rows = np.arange(len(y))
    rest, test = train_test_split(
        rows, test_size=test_fraction, random_state=seed, stratify=_stratify(y)
    )
    names[test] = "test"
    if val_fraction > 0:
        _, val = train_test_split(
            rest, test_size=val_fraction, random_state=seed, stratify=_stratify(y[rest])
        )
        names[val] = "val"
    return names


def ordered_splits(n: int, test_fraction: float = 0.2, val_fraction: float = 0.2) -> np.ndarray:
    """Split names for ``n`` rows in time order: train, then val, then test.

    >>> ordered_splits(10).tolist()
    ['train', 'train', 'train', 'train', 'train', 'train', 'val', 'val', 'test', 'test']
    """
    test_start = n - round(n * test_fraction)
    val_start = test_start - round(test_start * val_fraction)
    names = np.full(n, "train", dtype=object)
    names[val_start:test_start] = "val"
    names[test_start:] = "test"
    return names


def group_splits(groups: Sequence[str], seed: int, val_fraction: float = 0.2) -> np.ndarray:
    """ "train"/"val" per row, choosing whole groups for validation (seeded, sorted ids first).

    >>> group_splits(["a", "a", "b", "c", "d"], seed=0, val_fraction=0.25).tolist().count("val")
    1
    """
    keys = np.asarray(groups, dtype=object)
    unique = np.array(sorted(set(keys.tolist())), dtype=object)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(unique))[: round(len(unique) * val_fraction)]
    val = set(unique[chosen].tolist())
    return np.array(["val" if k in val else "train" for k in keys], dtype=object)
