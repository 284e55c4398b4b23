"""A dataset as a live feed: its customer records -> events and outcomes in event-time order.

What ``crmrisk replay``, the demo, the integration tests and the benchmarks publish. The profile
goes out as a ``kind == "profile"`` event dated at the customer's first event: its fields
(limit, demographics, contract) are known from account opening, so every event is scored with
the profile it would have had live. (The adapters date it ``as_of`` for training, where only the
final window matters.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crmrisk.stream.event_order import in_event_time_order
from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.training.datasets.loader import load_domain
from crmrisk.training.datasets.records import CustomerRecord

__all__ = ["dataset_events", "dataset_outcomes", "load_records"]


def load_records(
    domain: str, data_dir: Path, seed: int, splits: Sequence[str] = (), **options: Any
) -> list[CustomerRecord]:
    """The domain's customer records (all splits unless ``splits`` names some); ``options``
    go to ``load_domain`` (e.g. ``spec=`` for a spec domain)."""
    dataset = load_domain(domain, Path(data_dir), seed, **options)
    chosen = splits or ("train", "val", "test")
    return [r for name in chosen for r in dataset.splits()[name]]


def dataset_events(records: Sequence[CustomerRecord], domain: str) -> list[CustomerEvent]:
    """Every record's profile (dated at its first event) and events, in event-time order."""
    events: list[CustomerEvent] = []
    for record in records:
        profile = record.profile_event(domain)
        if record.events:
            first = min(e.event_time for e in record.events)
            profile = profile.model_copy(update={"event_time": min(first, profile.event_time)})
        events.append(profile)
        events.extend(record.events)
    return in_event_time_order(events)


def dataset_outcomes(records: Sequence[CustomerRecord], domain: str) -> list[Outcome]:
    """One outcome per record, observed at its prediction time."""
    return [
        Outcome(
            customer_id=r.customer_id,
            domain=domain,
            as_of=r.as_of,
            observed_at=r.as_of,
            label=r.label,
            value=r.target,
        )
        for r in records
    ]
