"""Training data as arrays: one split (``Arrays``), a domain's three splits (``DomainData``).

``load_data`` reads a domain through ``training.datasets``, fits the feature encoder on the
training customers and pads every split to one number of event slots; ``subsample`` cuts the
splits for quick runs. The fit loop (``training.fit``) and the publishing job
(``training.train_job``) read these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crmrisk.training.datasets import fit_encoder, load_domain, to_arrays

__all__ = ["Arrays", "DomainData", "TargetTransform", "load_data", "subsample"]

TargetTransform = Literal["none", "log1p"]


@dataclass(frozen=True)
class Arrays:
    """One split as arrays (see ARCHITECTURE.md, "Sequences as arrays")."""

    events: np.ndarray  # (N, T, event_dim) float32
    mask: np.ndarray  # (N, T) bool
    profile: np.ndarray  # (N, profile_dim) float32
    label: np.ndarray  # (N,) 0/1
    target: np.ndarray | None = None  # (N,) continuous target, NaN where unknown
    customer_ids: Sequence[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        if self.events.ndim != 3 or self.events.shape[0] != n:
            raise ValueError(f"events {self.events.shape} do not match {n} labels")
        if self.mask.shape != self.events.shape[:2]:
            raise ValueError(f"mask {self.mask.shape} does not match events {self.events.shape}")
        if self.profile.ndim != 2 or self.profile.shape[0] != n:
            raise ValueError(f"profile {self.profile.shape} does not match {n} labels")
        if self.target is not None and len(self.target) != n:
            raise ValueError(f"target has {len(self.target)} rows, labels {n}")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def event_dim(self) -> int:
        return int(self.events.shape[2])

    @property
    def profile_dim(self) -> int:
        return int(self.profile.shape[1])

    def concat(self, other: Arrays) -> Arrays:
        """These rows, then ``other``'s (same event slots and widths)."""
        if self.events.shape[1:] != other.events.shape[1:]:
            raise ValueError(f"events {self.events.shape} and {other.events.shape} do not stack")
        if (self.target is None) != (other.target is None):
            raise ValueError("one of the arrays has a target and the other has none")
        ids = None
        if self.customer_ids is not None and other.customer_ids is not None:
            ids = [*self.customer_ids, *other.customer_ids]
        return Arrays(
            events=np.concatenate([self.events, other.events]),
            mask=np.concatenate([self.mask, other.mask]),
            profile=np.concatenate([self.profile, other.profile]),
            label=np.concatenate([self.label, other.label]),
            target=None if self.target is None else np.concatenate([self.target, other.target]),
            customer_ids=ids,
        )

    def take(self, index: np.ndarray) -> Arrays:
        """Rows ``index`` (used for subsampling in quick runs)."""
        return replace(
            self,
            events=self.events[index],
            mask=self.mask[index],
            profile=self.profile[index],
            label=self.label[index],
            target=None if self.target is None else self.target[index],
            customer_ids=None
            if self.customer_ids is None
            else [self.customer_ids[i] for i in index],
        )


@dataclass(frozen=True)
class DomainData:
    """One protocol's splits as arrays plus what a manifest needs to know about them."""

    train: Arrays
    val: Arrays
    test: Arrays
    target_kind: TargetTransform = "none"  # what the quantile heads train on
    encoder: dict | None = None  # FeatureEncoder.to_dict(), fitted on training customers
    window: dict | None = None  # data window (split rule, dates) for the manifest


def subsample(data: DomainData, limit: int | None, seed: int) -> DomainData:
    """At most ``limit`` customers per split, drawn without replacement (quick runs only)."""
    if not limit:
        return data
    rng = np.random.default_rng(seed)

    def cut(a: Arrays) -> Arrays:
        if len(a) <= limit:
            return a
        return a.take(np.sort(rng.choice(len(a), limit, replace=False)))

    return replace(data, train=cut(data.train), val=cut(data.val), test=cut(data.test))


def _pad(arrays: Any, steps: int) -> Arrays:
    """``training.datasets`` arrays -> ``Arrays`` right-padded to ``steps`` event slots."""
    n, t, e = arrays.events.shape
    events = np.zeros((n, steps, e), dtype=np.float32)
    events[:, :t] = arrays.events
    mask = np.zeros((n, steps), dtype=bool)
    mask[:, :t] = arrays.mask
    return Arrays(
        events=events,
        mask=mask,
        profile=np.asarray(arrays.profile, dtype=np.float32),
        label=np.asarray(arrays.label),
        target=arrays.target,
        customer_ids=arrays.customer_ids,
    )


def load_data(
    domain: str,
    data_dir: Path,
    seed: int,
    window: int,
    numeric: Literal["ple", "linear"] | None = None,
    **options: Any,
) -> DomainData:
    """The domain's splits as arrays, encoded by a FeatureEncoder fitted on training customers.

    All three splits share one number of event slots (the longest kept sequence, at most
    ``window``), so flattened baselines see the same columns everywhere. A domain with a
    continuous target (spend) trains its quantile heads on ``log1p`` of it. ``numeric``
    overrides the spec's numeric encoding (the classical baselines read ``"linear"``).
    """
    dataset = load_domain(domain, Path(data_dir), seed, **options)
    spec = dataset.spec if numeric is None else replace(dataset.spec, numeric=numeric)
    encoder = fit_encoder(spec, dataset.train)
    raw = {name: to_arrays(records, encoder, window) for name, records in dataset.splits().items()}
    steps = max(a.events.shape[1] for a in raw.values())
    return DomainData(
        train=_pad(raw["train"], steps),
        val=_pad(raw["val"], steps),
        test=_pad(raw["test"], steps),
        target_kind="log1p" if dataset.has_target else "none",
        encoder=encoder.to_dict(),
        window=dict(dataset.info),
    )
