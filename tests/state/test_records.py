"""The packed records of a window and an alert state: round trips, the batch twin."""

import numpy as np
import pytest

from crmrisk.state.records import pack_alert, pack_window, pack_windows, unpack_alert, unpack_window


def _one(rng, length, dim=3, pdim=2, profile=True):
    ids = [f"e{i}\u00e9" for i in range(length)]
    return {
        "partition": int(rng.integers(0, 8)),
        "epoch": int(rng.integers(1, 99)),
        "event_ids": b"".join(i.encode() + b"\0" for i in ids),
        "kinds": b"".join(k.encode() + b"\0" for k in rng.choice(["bill", "pay"], length)),
        "times": rng.integers(0, 10**12, length).astype(np.int64),
        "hashes": rng.integers(0, 2**63, length).astype(np.uint64),
        "vectors": rng.normal(size=(length, dim)).astype(np.float32),
        "profile": rng.normal(size=pdim).astype(np.float32) if profile else None,
        "profile_time_ms": int(rng.integers(0, 10**12)),
        "profile_id": "p1" if profile else None,
        "profile_hash": int(rng.integers(0, 2**63)),
        "exposure": float(rng.normal()) if profile else None,
    }


def test_window__round_trips():
    rng = np.random.default_rng(0)
    for length, profile in ((0, False), (1, True), (5, True), (3, False)):
        item = _one(rng, length, profile=profile)
        record = unpack_window(pack_window(**item))
        assert (record.partition, record.epoch) == (item["partition"], item["epoch"])
        assert record.event_ids == item["event_ids"].decode().split("\0")[:-1]
        np.testing.assert_array_equal(record.events, item["vectors"])
        np.testing.assert_array_equal(record.hashes, item["hashes"])
        assert record.exposure == item["exposure"] and record.profile_id == item["profile_id"]
        assert (record.profile is None) == (not profile)


def test_pack_windows__equals_pack_window_one_by_one():
    rng = np.random.default_rng(1)
    items = [_one(rng, n, profile=n % 2 == 0) for n in (0, 1, 4, 2, 7)]
    profiles = np.stack([i["profile"] if i["profile"] is not None else np.zeros(2, np.float32)
                         for i in items])  # fmt: skip
    many = pack_windows(
        np.array([i["partition"] for i in items]),
        np.array([i["epoch"] for i in items]),
        np.array([len(i["times"]) for i in items]),
        [i["event_ids"] for i in items],
        [i["kinds"] for i in items],
        np.concatenate([i["times"] for i in items]),
        np.concatenate([i["hashes"] for i in items]),
        np.concatenate([i["vectors"] for i in items]),
        profiles,
        np.array([i["profile"] is not None for i in items]),
        np.array([i["profile_time_ms"] for i in items]),
        [i["profile_id"] for i in items],
        np.array([i["profile_hash"] for i in items], np.uint64),
        np.array([np.nan if i["exposure"] is None else i["exposure"] for i in items]),
    )
    assert many == [pack_window(**i) for i in items]


def test_unpack__refuses_what_is_not_a_record():
    with pytest.raises(ValueError, match="not a window record"):
        unpack_window(b"garbage")
    with pytest.raises(ValueError, match="truncated"):
        unpack_window(pack_window(**_one(np.random.default_rng(2), 3))[:-2])
    assert unpack_alert(pack_alert(1, 2, True, None)).last_alert_s is None
