"""The bytes of a customer's state in Redis: one packed record per window, one per alert state.

Partition-owned state (``state/window_storage.py``) lives in the worker's memory and is written
to Redis once per batch; Redis keeps it for restarts, other workers, ``crmrisk score`` and the
dashboard. A record is one string value (one ``SET`` to write, one ``GET`` to read, no
per-field work in Redis). Both kinds start with the same guard header, which the write script
reads to refuse a stale writer (``state/partition_fence.lua``): ``magic (4 bytes) | partition
(int32) | epoch (uint32)``, little-endian.

Window record, after the header::

    length L (uint16) | event_dim E (uint16) | profile_dim P (uint16, 0: no profile) |
    ids bytes (uint32) | kinds bytes (uint32) | profile id bytes (uint16) |
    profile time ms (int64) | exposure (float64, NaN: none) | profile hash (8 bytes) |
    times (int64 x L) | hashes (8 bytes x L) | vectors (float32 x L x E) | profile (float32 x P) |
    ids (NUL-terminated, UTF-8) | kinds (NUL-terminated) | profile id

Alert record, after the header: ``armed (uint8) | last alert s (float64, NaN: never)``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALERT_MAGIC",
    "GUARD",
    "WINDOW_MAGIC",
    "AlertRecord",
    "WindowRecord",
    "pack_alert",
    "pack_window",
    "pack_windows",
    "unpack_alert",
    "unpack_window",
]

WINDOW_MAGIC = b"CRW1"
ALERT_MAGIC = b"CRA1"
GUARD = struct.Struct("<4siI")  # magic, partition, epoch: what the write script compares
_WINDOW = struct.Struct("<4siIHHHIIHqd8s")
_ALERT = struct.Struct("<4siIBd")
_NO_HASH = b"\0" * 8  # an unknown content hash: never conflicts


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """A decoded window record (what ``CustomerSequenceStore.read`` turns into a sequence)."""

    partition: int
    epoch: int
    event_ids: list[str]
    event_times_ms: np.ndarray  # int64 (L,)
    hashes: np.ndarray  # uint64 (L,), 0: unknown
    kinds: list[str]
    events: np.ndarray  # float32 (L, E)
    profile: np.ndarray | None  # float32 (P,)
    profile_time_ms: int
    profile_id: str | None
    profile_hash: int
    exposure: float | None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    partition: int
    epoch: int
    armed: bool
    last_alert_s: float | None


def pack_window(
    partition: int,
    epoch: int,
    event_ids: bytes,
    kinds: bytes,
    times: np.ndarray,
    hashes: np.ndarray,
    vectors: np.ndarray,
    profile: np.ndarray | None,
    profile_time_ms: int,
    profile_id: str | None,
    profile_hash: int,
    exposure: float | None,
) -> bytes:
    """One window record; ``event_ids`` and ``kinds`` are already NUL-terminated and joined."""
    length, dim = vectors.shape
    pid = (profile_id or "").encode()
    head = _WINDOW.pack(
        WINDOW_MAGIC,
        partition,
        epoch,
        length,
        dim,
        0 if profile is None else len(profile),
        len(event_ids),
        len(kinds),
        len(pid),
        profile_time_ms,
        math.nan if exposure is None else exposure,
        int(profile_hash).to_bytes(8, "little"),
    )
    parts = [
        head,
        times.astype("<i8", copy=False).tobytes(),
        hashes.astype("<u8", copy=False).tobytes(),
        vectors.astype("<f4", copy=False).tobytes(),
    ]
    if profile is not None:
        parts.append(profile.astype("<f4", copy=False).tobytes())
    parts += [event_ids, kinds, pid]
    return b"".join(parts)


def pack_windows(
    partitions: np.ndarray,
    epochs: np.ndarray,
    lengths: np.ndarray,
    event_ids: list[bytes],
    kinds: list[bytes],
    times: np.ndarray,
    hashes: np.ndarray,
    vectors: np.ndarray,
    profiles: np.ndarray,
    has_profile: np.ndarray,
    profile_times: np.ndarray,
    profile_ids: list[str | None],
    profile_hashes: np.ndarray,
    exposures: np.ndarray,
) -> list[bytes]:
    """``pack_window`` of many customers at once (equal bytes): the events of all of them
    flattened in order (``times``, ``hashes``, ``vectors``: sum(lengths) rows), one numpy
    conversion per column instead of one per customer."""
    dim = vectors.shape[1]
    pdim = profiles.shape[1]
    time_bytes = times.astype("<i8", copy=False).tobytes()
    hash_bytes = hashes.astype("<u8", copy=False).tobytes()
    vector_bytes = vectors.astype("<f4", copy=False).tobytes()
    profile_bytes = profiles.astype("<f4", copy=False).tobytes()
    row = 4 * dim
    out = []
    at = 0
    pack = _WINDOW.pack
    for j, length in enumerate(lengths.tolist()):
        pid = (profile_ids[j] or "").encode()
        with_profile = bool(has_profile[j])
        ids, kind = event_ids[j], kinds[j]
        exposure = float(exposures[j])
        head = pack(
            WINDOW_MAGIC, int(partitions[j]), int(epochs[j]), length, dim,
            pdim if with_profile else 0, len(ids), len(kind), len(pid),
            int(profile_times[j]), exposure, int(profile_hashes[j]).to_bytes(8, "little"),
        )  # fmt: skip
        end = at + length
        out.append(
            b"".join(
                (
                    head,
                    time_bytes[8 * at : 8 * end],
                    hash_bytes[8 * at : 8 * end],
                    vector_bytes[row * at : row * end],
                    profile_bytes[4 * pdim * j : 4 * pdim * (j + 1)] if with_profile else b"",
                    ids,
                    kind,
                    pid,
                )
            )
        )
        at = end
    return out


def unpack_window(raw: bytes) -> WindowRecord:
    """Inverse of ``pack_window``; raises ``ValueError`` for bytes that are not one."""
    if raw[:4] != WINDOW_MAGIC:
        raise ValueError(f"not a window record (starts with {raw[:4]!r})")
    (_, partition, epoch, length, dim, pdim, nid, nkind, npid, ptime, exposure, phash) = (
        _WINDOW.unpack_from(raw)
    )
    at = _WINDOW.size
    times = np.frombuffer(raw, "<i8", length, at).astype(np.int64)
    at += 8 * length
    hashes = np.frombuffer(raw, "<u8", length, at).astype(np.uint64)
    at += 8 * length
    events = np.frombuffer(raw, "<f4", length * dim, at).reshape(length, dim)
    at += 4 * length * dim
    profile = None
    if pdim:
        profile = np.frombuffer(raw, "<f4", pdim, at)
        at += 4 * pdim
    ids = raw[at : at + nid].decode().split("\0")[:-1]
    at += nid
    kinds = raw[at : at + nkind].decode().split("\0")[:-1]
    at += nkind
    pid = raw[at : at + npid].decode() or None
    if len(ids) != length or len(kinds) != length or at + npid != len(raw):
        raise ValueError("window record is truncated or inconsistent")
    return WindowRecord(
        partition=partition,
        epoch=epoch,
        event_ids=ids,
        event_times_ms=times,
        hashes=hashes,
        kinds=kinds,
        events=events,
        profile=profile,
        profile_time_ms=ptime,
        profile_id=pid,
        profile_hash=int.from_bytes(phash, "little"),
        exposure=None if math.isnan(exposure) else exposure,
    )


def pack_alert(partition: int, epoch: int, armed: bool, last_alert_s: float | None) -> bytes:
    """One alert record.

    >>> r = unpack_alert(pack_alert(3, 7, False, 12.5))
    >>> (r.partition, r.epoch, r.armed, r.last_alert_s)
    (3, 7, False, 12.5)
    """
    last = math.nan if last_alert_s is None else last_alert_s
    return _ALERT.pack(ALERT_MAGIC, partition, epoch, 1 if armed else 0, last)


def unpack_alert(raw: bytes) -> AlertRecord:
    if raw[:4] != ALERT_MAGIC or len(raw) != _ALERT.size:
        raise ValueError(f"not an alert record (starts with {raw[:4]!r})")
    _, partition, epoch, armed, last = _ALERT.unpack(raw)
    return AlertRecord(partition, epoch, bool(armed), None if math.isnan(last) else last)
