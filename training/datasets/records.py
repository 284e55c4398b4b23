"""What every dataset adapter yields: one ``CustomerRecord`` per (customer, prediction time).

A record is what the streaming system would hold for a customer at ``as_of``: the static
profile, the events up to then (oldest first, in the event contract) and what happened
afterwards (``label``, and ``target`` where the domain has a continuous one). ``DomainDataset``
bundles a domain's three splits with the feature spec its encoder is fitted from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from crmrisk.model.features import FeatureSpec
from crmrisk.stream.events import CustomerEvent, FieldValue

__all__ = [
    "PROFILE_KIND",
    "CustomerRecord",
    "DomainDataset",
    "Split",
    "group_by_split",
    "validate_events",
]

Split = Literal["train", "val", "test"]
_EVENT_LIST = TypeAdapter(list[CustomerEvent])
PROFILE_KIND = "profile"


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One labelled customer as of a prediction time.

    ``events`` holds no profile event; ``profile_event`` renders the profile as one (the
    contract's ``kind == "profile"``) for replay onto Kafka.
    """

    customer_id: str
    profile: dict[str, FieldValue]
    events: list[CustomerEvent]  # oldest first, every event_time <= as_of
    label: int  # 0/1
    target: float | None  # continuous target (e.g. 90-day spend), None where the domain has none
    split: Split
    as_of: datetime  # UTC prediction time; the label is about what happens after it

    def with_split(self, split: Split) -> CustomerRecord:
        return replace(self, split=split)

    def profile_event(self, domain: str) -> CustomerEvent:
        """The profile as a ``kind == "profile"`` event at ``as_of`` (the profile known then)."""
        return CustomerEvent(
            event_id=f"{self.customer_id}-profile-{self.as_of:%Y%m%dT%H%M%S}",
            customer_id=self.customer_id,
            event_time=self.as_of,
            domain=domain,
            kind=PROFILE_KIND,
            fields=self.profile,
        )


@dataclass(frozen=True)
class DomainDataset:
    """A domain's train/val/test records, the spec to fit its encoder with, and how they were cut.

    ``info`` is JSON-able: the split rule, dates and counts (e.g. rows that could not be
    scored); it belongs in the model manifest's data window.
    """

    domain: str
    spec: FeatureSpec
    train: list[CustomerRecord]
    val: list[CustomerRecord]
    test: list[CustomerRecord]
    has_target: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, list[CustomerRecord]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """Customers, positive rate and mean/max sequence length per split."""
        out: dict[str, Any] = {}
        for name, records in self.splits().items():
            lengths = [len(r.events) for r in records]
            out[name] = {
                "customers": len(records),
                "positive_rate": sum(r.label for r in records) / max(len(records), 1),
                "mean_events": sum(lengths) / max(len(lengths), 1),
                "max_events": max(lengths, default=0),
            }
        return out


def group_by_split(
    records: Iterable[CustomerRecord], names: Iterable[str]
) -> dict[str, list[CustomerRecord]]:
    """Records re-labelled with their split name, grouped as {"train", "val", "test"}."""
    out: dict[str, list[CustomerRecord]] = {"train": [], "val": [], "test": []}
    for record, name in zip(records, names, strict=True):
        out[name].append(record.with_split(name))  # type: ignore[arg-type]
    return out


def validate_events(documents: list[dict[str, Any]]) -> list[CustomerEvent]:
    """Many event dicts validated against the contract in one call (faster than one by one)."""
    return _EVENT_LIST.validate_python(documents)
