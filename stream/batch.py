"""One batch's record: what it produced and what it leaves to do, and who each scored row is.

``BatchStages`` (``stream/stages.py``) fills a ``Batch`` from the records of one batch:
the messages to publish now (dead letters, scores, or score requests under the topic hand-off),
the scores that fire (explained later, off the scoring step: ``stream/alerting.py``), and the
state to write once they are published (per partition: the changed windows, alert states and
latest scores, snapshotted as this batch leaves them).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from crmrisk.state import PartitionWrite
from crmrisk.stream.alerting import Firing
from crmrisk.stream.events import DeadLetter
from crmrisk.stream.ports import Delivery, Record

__all__ = ["Batch", "RowMeta"]


@dataclass
class Batch:
    """What one batch produced and what it leaves to do."""

    serial: int
    records: Sequence[Record]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    scores: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, RiskScore JSON)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # topic hand-off
    firing: list[Firing] = field(default_factory=list)
    writes: dict[int, PartitionWrite] = field(default_factory=dict)
    incarnations: dict[int, int] = field(default_factory=dict)
    first_offsets: dict[int, int] = field(default_factory=dict)
    produced_ms: list[np.ndarray] = field(default_factory=list)  # per score: event's timestamp
    scored_per_domain: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    model_ms: list[float] = field(default_factory=list)
    # Field contract counts (``stream/field_contract.py``), keyed as in ``Decoded``.
    coerced: Counter = field(default_factory=Counter)
    unknown_fields: Counter = field(default_factory=Counter)
    unknown_kinds: Counter = field(default_factory=Counter)
    delivery: Delivery = field(default_factory=Delivery)
    # A challenger on trial (``stream/challenger.py``): its shadow scores, the rows it scored
    # (shadow: all; canary: its share), its model time, and rows it failed (champion's then).
    shadow_scores: list[tuple[bytes, bytes]] = field(default_factory=list)
    challenger_rows: Counter = field(default_factory=Counter)  # (domain, mode) -> rows
    challenger_failures: Counter = field(default_factory=Counter)  # (domain, mode) -> rows
    challenger_ms: list[float] = field(default_factory=list)


@dataclass
class RowMeta:
    """Who each scored window belongs to (rows of a ``Windows``)."""

    customers: list[str]
    event_ids: list[str]
    times: np.ndarray  # int64 event time ms
    partitions: np.ndarray  # int32
    produced: np.ndarray  # int64: Kafka timestamp of the inbound record (latency's start)
    records: list[Record]

    def take(self, keep: np.ndarray) -> RowMeta:
        rows = keep.tolist()
        return RowMeta(
            [self.customers[i] for i in rows],
            [self.event_ids[i] for i in rows],
            self.times[keep],
            self.partitions[keep],
            self.produced[keep],
            [self.records[i] for i in rows],
        )
