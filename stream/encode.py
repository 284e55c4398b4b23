"""Encode: one domain's decoded events, held to its field contract, as the windows' appends.

``encode`` holds one domain's events to its field contract (``stream/field_contract.py``:
value types, unknown field names and kinds, from the model's feature spec) and turns them into
the ``state.Appends`` the windows take: one vectorised call per (domain, events | profiles);
rows that fail or encode to non-finite values are dead-lettered (``unencodable``), found one by
one only when the block fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import orjson

from crmrisk.state import Appends
from crmrisk.stream.decode import Decoded
from crmrisk.stream.events import FieldValue, InvalidEvent
from crmrisk.stream.field_contract import FieldContract

__all__ = ["Encoder", "content_hash", "encode"]


class Encoder(Protocol):
    """The per-domain ``model.FeatureEncoder`` surface that encoding uses."""

    def encode_events_many(
        self, kinds: Sequence[str], fields: Sequence[Mapping[str, FieldValue]]
    ) -> np.ndarray: ...

    def encode_profiles_many(self, fields: Sequence[Mapping[str, FieldValue]]) -> np.ndarray: ...


def content_hash(kind: str, time_ms: int, fields: Mapping[str, FieldValue]) -> int:
    """A 64-bit name of what an event says (kind, time, fields as canonical JSON; never 0).

    >>> content_hash("k", 1, {"x": 1, "y": 2}) == content_hash("k", 1, {"y": 2, "x": 1})
    True
    >>> content_hash("k", 1, {"x": 1}) == content_hash("k", 1, {"x": 2})
    False
    """
    digest = hashlib.blake2b(
        orjson.dumps([kind, time_ms, fields], option=orjson.OPT_SORT_KEYS), digest_size=8
    ).digest()
    return int.from_bytes(digest, "little") or 1  # 0 means "unknown" in the store


def encode(
    d: Decoded,
    index: np.ndarray,
    encoder: Encoder,
    contract: FieldContract,
    event_dim: int,
    profile_dim: int,
    exposure_field: str | None,
    redelivered: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[Appends, np.ndarray]:
    """One domain's rows ``index`` of ``d`` as ``Appends``, and the rows kept (the others
    broke ``contract`` or became ``unencodable``: dead letters). ``redelivered(partitions,
    offsets)`` flags events whose partition offset the state already holds."""
    kinds = [d.kinds[i] for i in index.tolist()]
    fields = [d.fields[i] for i in index.tolist()]
    is_profile = np.fromiter((k == "profile" for k in kinds), bool, len(kinds))
    vectors = np.zeros((len(index), event_dim), np.float32)
    profiles = np.zeros((len(index), profile_dim), np.float32)
    ok = np.ones(len(index), bool)
    for profile, target in ((False, vectors), (True, profiles)):
        rows = np.flatnonzero(is_profile == profile)
        if rows.size:
            rows = rows[_hold(d, index, rows, kinds, fields, contract, profile, ok)]
        if rows.size:
            ok[rows] = _encode_rows(d, index, rows, kinds, fields, encoder, profile, target)
    keep = np.flatnonzero(ok)
    rows = index[keep]
    times = d.times_ms[rows]
    kinds = [kinds[i] for i in keep.tolist()]
    fields = [fields[i] for i in keep.tolist()]
    said = [d.fields[i] for i in rows.tolist()]  # as sent: the hash names the message
    hashes = np.fromiter(
        (content_hash(k, t, f) for k, t, f in zip(kinds, times.tolist(), said, strict=True)),
        np.uint64,
        len(rows),
    )
    exposure = np.full(len(rows), np.nan)
    if exposure_field is not None:
        for j in np.flatnonzero(is_profile[keep]).tolist():
            value = fields[j].get(exposure_field)
            if not isinstance(value, bool) and isinstance(value, int | float):
                exposure[j] = float(value)
    partitions, offsets = d.partitions[rows], d.offsets[rows]
    appends = Appends(
        customers=[d.customers[i] for i in rows.tolist()],
        event_ids=[d.event_ids[i] for i in rows.tolist()],
        times_ms=times,
        kinds=kinds,
        vectors=vectors[keep],
        profiles=profiles[keep],
        is_profile=is_profile[keep],
        hashes=hashes,
        exposure=exposure,
        partitions=partitions.astype(np.int32),
        redelivered=redelivered(partitions, offsets),
    )
    return appends, rows


def _hold(d, index, rows, kinds, fields, contract: FieldContract, profile, ok) -> np.ndarray:
    """Hold ``rows`` to the contract: rejected ones become dead letters (``ok`` False), fixed
    ones are encoded with their fixed fields, counts go to ``d``; returns which rows remain."""
    js = rows.tolist()
    verdict = contract.check([kinds[j] for j in js], [fields[j] for j in js], profile)
    domain = contract.domain
    for (name, to), n in verdict.coerced.items():
        d.coerced[domain, name, to] += n
    for name, n in verdict.unknown_fields.items():
        d.unknown_fields[domain, name] += n
    for kind, n in verdict.unknown_kinds.items():
        d.unknown_kinds[domain, kind] += n
    for n, fixed in verdict.fixed.items():
        fields[js[n]] = fixed
    keep = np.ones(len(js), bool)
    for n, (reason, error) in verdict.rejected.items():
        d.reject(d.records[d.rows[index[js[n]]]], InvalidEvent(reason, error))
        ok[js[n]] = keep[n] = False
    return keep


def _encode_rows(d, index, rows, kinds, fields, encoder, profile, target) -> np.ndarray:
    """Encode ``rows`` into ``target``; returns which encoded (the rest are dead letters)."""

    def block(js):
        if profile:
            return encoder.encode_profiles_many([fields[j] for j in js])
        return encoder.encode_events_many([kinds[j] for j in js], [fields[j] for j in js])

    ok = np.ones(len(rows), bool)
    try:
        target[rows] = block(rows.tolist())
        finite = np.isfinite(target[rows]).all(axis=1)
    except Exception:  # find the events to blame one by one
        finite = np.zeros(len(rows), bool)
        for n, j in enumerate(rows.tolist()):
            record = d.records[d.rows[index[j]]]
            try:
                target[j] = block([j])[0]
            except Exception as exc:
                d.reject(
                    record,
                    InvalidEvent("unencodable", f"{kinds[j]} fields: {type(exc).__name__}: {exc}"),
                )
                ok[n] = False
                continue
            finite[n] = np.isfinite(target[j]).all()
    for n in np.flatnonzero(ok & ~finite).tolist():
        j = int(rows[n])
        d.reject(
            d.records[d.rows[index[j]]],
            InvalidEvent("unencodable", f"{kinds[j]} fields encode to non-finite values"),
        )
        ok[n] = False
    return ok
