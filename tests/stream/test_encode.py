"""Encode: one domain's decoded events as the windows' appends, equal to the per-event encoder."""

from __future__ import annotations

import numpy as np

from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
from crmrisk.stream.decode import decode_events
from crmrisk.stream.encode import content_hash, encode
from crmrisk.stream.field_contract import FieldContract
from tests.stream.conftest import raw_event, records


def test_encode__vectorised_encoding_equals_the_per_event_encoder():
    spec = FeatureSpec(
        "credit",
        (FieldRole("amount", "numeric"), FieldRole("channel", "categorical")),
        (FieldRole("limit", "numeric"),),
        min_count=1,
    )
    fields = [{"amount": float(i), "channel": "web" if i % 2 else "app"} for i in range(20)]
    encoder = FeatureEncoder.fit(spec, ["bill"] * 20, fields, [{"limit": 1.0}, {"limit": 9.0}])
    values = [raw_event("p", kind="profile", limit=3000)]
    values += [raw_event(f"e{d}", day=d, amount=d * 7.5, channel="web") for d in (1, 2, 3)]
    values += [raw_event("odd", day=4, amount="n/a", channel=None)]
    d = decode_events(records(values), {"credit"}, 4096, None, None)
    contract = FieldContract.of(encoder, "coerce", "count", "limit")  # "n/a": missing
    never = lambda p, o: np.zeros(len(p), bool)  # noqa: E731
    appends, rows = encode(d, np.arange(len(d)), encoder, contract, encoder.event_dim,
                           encoder.profile_dim, "limit", never)  # fmt: skip
    assert rows.tolist() == [0, 1, 2, 3, 4]
    expected = [encoder.encode_event("bill", {"amount": d * 7.5, "channel": "web"})
                for d in (1, 2, 3)]  # fmt: skip
    expected.append(encoder.encode_event("bill", {"amount": "n/a", "channel": None}))
    np.testing.assert_array_equal(appends.vectors[1:], np.stack(expected))
    np.testing.assert_array_equal(appends.profiles[0], encoder.encode_profile({"limit": 3000}))
    assert appends.exposure[0] == 3000.0 and np.isnan(appends.exposure[1:]).all()
    assert appends.hashes.tolist() == [
        content_hash(k, int(t), f)
        for k, t, f in zip(appends.kinds, appends.times_ms, d.fields, strict=True)
    ]
