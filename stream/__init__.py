"""Events in, scores and alerts out: the wire contract, the pure transforms and policies.

Light to import (no torch, Kafka or Redis client): the scoring loop and its plumbing live in
``stream.pipeline`` (the loop), ``stream.completer`` (what follows a batch), ``stream.stages``
(one batch's stages), ``stream.decode``, ``stream.encode``, ``stream.score_side``,
``stream.scorer``, ``stream.ownership``, ``stream.kafka_consumer`` and
``stream.kafka_producer``; ``stream.worker`` runs them. Entry points import them by module and
wire them from settings in ``crmrisk/wiring/``.
"""

from crmrisk.stream.alert_policy import AlertPolicy, decide
from crmrisk.stream.batching import DynamicBatcher, batch_ready
from crmrisk.stream.events import (
    CustomerEvent,
    DeadLetter,
    EventRef,
    InvalidEvent,
    Outcome,
    ReasonCode,
    RiskAlert,
    RiskScore,
    dead_letter,
    parse_event,
    parse_outcome,
)
from crmrisk.stream.transform import event_time_ms, window

__all__ = [
    "AlertPolicy",
    "CustomerEvent",
    "DeadLetter",
    "DynamicBatcher",
    "EventRef",
    "InvalidEvent",
    "Outcome",
    "ReasonCode",
    "RiskAlert",
    "RiskScore",
    "batch_ready",
    "dead_letter",
    "decide",
    "event_time_ms",
    "parse_event",
    "parse_outcome",
    "window",
]
