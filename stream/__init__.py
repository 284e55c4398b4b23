"""Events in, scores and alerts out: the wire contract, the pure transforms and policies.

Light to import (no torch, Kafka or Redis client): the scoring loop and its plumbing live in
``stream.pipeline`` (the loop and the completer), ``stream.batch`` (one batch's stages),
``stream.decode``, ``stream.scorer``, ``stream.ownership`` and ``stream.kafka_io``, wired by
``stream.app``, which entry points import by module.
"""

from stream.alert_policy import AlertPolicy, decide
from stream.batching import DynamicBatcher, batch_ready
from stream.events import (
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
from stream.transform import event_time_ms, window

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
