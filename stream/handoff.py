"""The topic hand-off between ingest and inference workers: windows out as score requests, in
as windows again (a request that does not fit the served model is a dead letter)."""

from __future__ import annotations

import numpy as np

from crmrisk.state import CustomerSequence, Windows
from crmrisk.stream.batch import Batch, RowMeta
from crmrisk.stream.decode import rejected
from crmrisk.stream.events import DeadLetter, InvalidEvent
from crmrisk.stream.ports import Record
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.scorer import Scorer, windows_of

__all__ = ["request_windows", "score_requests"]


def request_windows(
    scorer: Scorer, pairs: list[tuple[Record, ScoreRequest]], batch: Batch
) -> tuple[Windows, RowMeta, list[tuple[Record, ScoreRequest]]]:
    """Score requests handed over by an ingest worker, as windows (the inference worker): the
    windows, who they belong to, and the pairs kept (the others are dead letters in ``batch``)."""
    kept = []
    for record, request in pairs:
        seq = request.sequence
        if (
            seq.events.ndim != 2
            or seq.events.shape[1] != scorer.event_dim
            or (seq.profile is not None and seq.profile.shape != (scorer.profile_dim,))
        ):
            batch.dead_letters.append(_incompatible(record, request, scorer))
            continue
        kept.append((record, request))
    requests = [r for _, r in kept]
    w = windows_of(requests, scorer.event_dim, scorer.profile_dim)
    meta = RowMeta(
        [r.customer_id for r in requests],
        [r.event_id for r in requests],
        np.array([r.event_time_ms for r in requests], np.int64),
        np.array([rec.partition for rec, _ in kept], np.int32),
        np.array([r.produced_ms for r in requests], np.int64),
        [rec for rec, _ in kept],
    )
    return w, meta, kept


def score_requests(domain: str, w: Windows, meta: RowMeta) -> list[tuple[bytes, bytes]]:
    """Score requests for the inference workers (topic hand-off): the exact windows."""
    customers, event_ids, times, produced = (
        meta.customers,
        meta.event_ids,
        meta.times,
        meta.produced,
    )
    kinds = w.kinds
    out = []
    for i, customer in enumerate(customers):
        length = int(w.lengths[i])
        sequence = CustomerSequence(
            event_ids=w.event_ids(i),
            event_times_ms=w.times_ms[i, :length],
            kinds=[kinds[c] for c in w.kind_codes[i, :length].tolist()],
            events=w.events[i, :length],
            profile=w.profile[i] if w.has_profile[i] else None,
            exposure=None if np.isnan(w.exposure[i]) else float(w.exposure[i]),
        )
        request = ScoreRequest(
            customer, domain, event_ids[i], int(times[i]), int(produced[i]), sequence
        )
        out.append((customer.encode(), request.to_bytes()))
    return out


def _incompatible(record: Record, request: ScoreRequest, scorer: Scorer) -> DeadLetter:
    error = InvalidEvent(
        "incompatible_request",
        f"window of width {request.sequence.events.shape[1:]} does not fit model "
        f"{scorer.version} (event_dim {scorer.event_dim}, profile_dim {scorer.profile_dim})",
    )
    return rejected(record, error)
