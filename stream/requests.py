"""A score request: one stored event and the exact window it left, handed from ingest to inference.

Through the in-process channel a request is passed as is; through a Kafka topic it travels as
``to_bytes``: a JSON header line, then the raw float32 window and profile (no re-encoding).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from crmrisk.state import CustomerSequence

__all__ = ["ScoreRequest"]


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    customer_id: str
    domain: str
    event_id: str  # the event whose arrival asks for this score
    event_time_ms: int
    produced_ms: int  # Kafka timestamp of the inbound event: the start of event -> score latency
    sequence: CustomerSequence

    def to_bytes(self) -> bytes:
        seq = self.sequence
        header = {
            "customer_id": self.customer_id,
            "domain": self.domain,
            "event_id": self.event_id,
            "event_time_ms": self.event_time_ms,
            "produced_ms": self.produced_ms,
            "event_ids": seq.event_ids,
            "event_times_ms": seq.event_times_ms.tolist(),
            "kinds": seq.kinds,
            "event_dim": int(seq.events.shape[1]) if seq.events.ndim == 2 else 0,
            "profile_dim": None if seq.profile is None else int(seq.profile.shape[0]),
            "exposure": seq.exposure,
        }
        body = np.ascontiguousarray(seq.events, dtype=np.float32).tobytes()
        if seq.profile is not None:
            body += np.ascontiguousarray(seq.profile, dtype=np.float32).tobytes()
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScoreRequest:
        """Inverse of ``to_bytes``; raises ``ValueError`` on a malformed request."""
        head, sep, body = raw.partition(b"\n")
        if not sep:
            raise ValueError("score request has no header line")
        h = json.loads(head)
        length, dim = len(h["event_ids"]), h["event_dim"]
        values = np.frombuffer(body, dtype=np.float32)
        profile_dim = h["profile_dim"] or 0
        if values.size != length * dim + profile_dim:
            raise ValueError(
                f"score request body holds {values.size} floats, expected "
                f"{length} x {dim} + {profile_dim}"
            )
        sequence = CustomerSequence(
            event_ids=h["event_ids"],
            event_times_ms=np.asarray(h["event_times_ms"], dtype=np.int64),
            kinds=h["kinds"],
            events=values[: length * dim].reshape(length, dim),
            profile=values[length * dim :] if h["profile_dim"] is not None else None,
            exposure=h["exposure"],
        )
        return cls(
            customer_id=h["customer_id"],
            domain=h["domain"],
            event_id=h["event_id"],
            event_time_ms=h["event_time_ms"],
            produced_ms=h["produced_ms"],
            sequence=sequence,
        )
