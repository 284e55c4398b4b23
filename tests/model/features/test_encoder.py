"""FeatureEncoder: fitted on training data only, per-event == batch, JSON round trip."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole

SPEC = FeatureSpec(
    domain="shop",
    event_fields=(
        FieldRole("amount", "numeric", "signed_log1p"),
        FieldRole("channel", "categorical"),
        FieldRole("code", "categorical"),
        FieldRole("code", "numeric", "none"),
        FieldRole("skewed", "numeric", "auto"),
        FieldRole("flat", "numeric", "auto"),
    ),
    profile_fields=(FieldRole("plan", "categorical"), FieldRole("age", "numeric", "none")),
    min_count=2,
)


def _events(n: int, seed: int) -> tuple[list[str], list[dict]]:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["purchase", "return", "visit"], size=n).tolist()
    fields = []
    for i in range(n):
        fields.append(
            {
                "amount": float(rng.lognormal(3, 2)) * (-1 if i % 7 == 0 else 1),
                "channel": str(rng.choice(["web", "app", "store"])),
                "code": int(rng.integers(-2, 4)),
                "skewed": float(rng.exponential(1.0) ** 4),
                "flat": float(rng.normal(50, 3)),
            }
        )
    return kinds, fields


def _fitted(seed: int = 0, spec: FeatureSpec = SPEC) -> FeatureEncoder:
    kinds, fields = _events(400, seed)
    profiles = [{"plan": p, "age": 20 + i % 50} for i, p in enumerate(["a", "b", "c"] * 40)]
    return FeatureEncoder.fit(spec, kinds, fields, profiles)


# Awkward inputs the stream may deliver: missing, None, NaN, text numbers, bools, junk, unseen.
AWKWARD = [
    ("purchase", {}),
    ("purchase", {"amount": None, "channel": None, "code": None}),
    ("return", {"amount": float("nan"), "channel": "fax", "code": 9}),
    ("visit", {"amount": "12.5", "channel": " web ", "code": "2", "skewed": True}),
    ("refund", {"amount": "n/a", "channel": 3, "code": 2.0, "flat": float("inf")}),
    ("purchase", {"amount": 1e12, "channel": "app", "code": -2, "unrelated": "x"}),
    ("purchase", {"amount": -3.0, "channel": "", "code": False}),
    ("visit", {"amount": np.float32(2.5), "code": np.int64(3), "flat": np.bool_(True)}),
    ("visit", {"amount": [1, 2], "channel": {"a": 1}, "flat": " 7 "}),
    ("visit", {"amount": 10**400, "code": 10**400, "flat": "1e999"}),
]


def test_fit__dims_match_feature_names():
    encoder = _fitted()
    assert encoder.event_dim == len(encoder.event_feature_names())
    assert encoder.profile_dim == len(encoder.profile_feature_names())
    assert encoder.kinds == ("purchase", "return", "visit")


def test_fit__auto_transform_logs_skewed_fields_only():
    encoder = _fitted()
    transforms = {c.name: c.transform for c in encoder.event_columns if hasattr(c, "transform")}
    assert transforms["skewed"] == "signed_log1p"
    assert transforms["flat"] == "none"


def test_fit__training_statistics_standardise():
    encoder = _fitted()
    kinds, fields = _events(400, 0)
    column = encoder.event_feature_names().index("flat")
    values = encoder.encode_events_many(kinds, fields)[:, column]
    assert abs(float(np.median(values))) < 1e-6
    assert 0.5 < float(np.std(values)) < 1.5


def test_encode__value_seen_only_outside_training_is_unknown():
    encoder = _fitted()
    names = encoder.event_feature_names()
    vector = encoder.encode_event("teleport", {"channel": "carrier-pigeon"})
    assert vector[names.index("kind=<unknown>")] == 1.0
    assert vector[names.index("channel=<unknown>")] == 1.0
    assert vector.sum() == pytest.approx(2.0 + 4.0)  # 4 numeric blocks flag missing
    profile = encoder.encode_profile({"plan": "z", "age": 30})
    assert profile[encoder.profile_feature_names().index("plan=<unknown>")] == 1.0


def test_encode__rare_training_category_shares_unknown_slot():
    kinds = ["k"] * 5
    fields = [{"channel": "web"}] * 4 + [{"channel": "rare"}]
    encoder = FeatureEncoder.fit(SPEC, kinds, fields, [{}])
    assert "channel=rare" not in encoder.event_feature_names()
    assert "channel=web" in encoder.event_feature_names()


def test_encode__missing_numeric_sets_indicator_and_zero_value():
    encoder = _fitted()
    names = encoder.event_feature_names()
    for fields in ({}, {"amount": None}, {"amount": float("nan")}, {"amount": " "}):
        vector = encoder.encode_event("purchase", fields)
        assert vector[names.index("amount")] == 0.0
        assert vector[names.index("amount:missing")] == 1.0


def test_encode__numbers_and_text_numbers_agree():
    encoder = _fitted()
    a = encoder.encode_event("purchase", {"amount": 12.5, "code": 2, "channel": "web"})
    b = encoder.encode_event("purchase", {"amount": "12.5", "code": "2", "channel": "web "})
    np.testing.assert_array_equal(a, b)


def test_encode__linear_numbers_extrapolate_outside_training_range():
    encoder = _fitted(spec=replace(SPEC, numeric="linear"))
    column = encoder.event_feature_names().index("flat")
    low = encoder.encode_event("visit", {"flat": 0.0})[column]
    lower = encoder.encode_event("visit", {"flat": -100.0})[column]
    assert lower < low < -5
    assert encoder.event_dim == len(encoder.event_feature_names())


def test_encode__ple_block_saturates_outside_training_range():
    encoder = _fitted()
    _, fields = _events(400, 0)  # the training events
    train_flat = [f["flat"] for f in fields]
    names = encoder.event_feature_names()
    block = [i for i, n in enumerate(names) if n == "flat" or n.startswith("flat:")]
    assert len(block) == 2 + SPEC.bins  # value, missing, one column per bin

    def encoded(x: float) -> np.ndarray:
        return encoder.encode_event("visit", {"flat": x})[block]

    np.testing.assert_array_equal(encoded(min(train_flat) - 1e6), encoded(min(train_flat)))
    np.testing.assert_array_equal(encoded(max(train_flat) + 1e6), encoded(max(train_flat)))
    inside = np.stack([encoded(x) for x in np.linspace(min(train_flat), max(train_flat), 50)])
    bins = inside[:, 2:]
    assert ((bins >= 0) & (bins <= 1)).all()
    assert (np.diff(inside[:, 0]) > 0).all()  # the clipped value still orders inside the range
    assert (np.diff(bins.sum(1)) >= 0).all() and bins.sum(1)[-1] == SPEC.bins
    assert encoded(min(train_flat))[2:].sum() == 0.0


def test_encode__ple_values_and_bins_match_the_reference():
    encoder = _fitted()
    column = next(c for c in encoder.event_columns if c.name == "amount")
    names = encoder.event_feature_names()
    start = names.index("amount")
    for value in (-1e9, -3.0, 0.0, 12.5, 1e3, 1e12, None, "n/a"):
        vector = encoder.encode_event("purchase", {"amount": value})
        np.testing.assert_allclose(
            vector[start : start + column.width], column.encode(value), rtol=1e-6, atol=1e-6
        )


def test_encode_events_many__agrees_with_encode_event():
    encoder = _fitted()
    kinds, fields = _events(300, seed=1)
    kinds += [k for k, _ in AWKWARD]
    fields += [f for _, f in AWKWARD]
    batch = encoder.encode_events_many(kinds, fields)
    one = np.stack([encoder.encode_event(k, f) for k, f in zip(kinds, fields, strict=True)])
    assert batch.dtype == np.float32 and batch.shape == (len(kinds), encoder.event_dim)
    np.testing.assert_allclose(batch, one, rtol=1e-6, atol=1e-6)
    assert np.isfinite(batch).all()


def test_encode_profiles_many__agrees_with_encode_profile():
    encoder = _fitted()
    profiles = [{"plan": "a", "age": 31}, {}, {"plan": "q", "age": "x"}, {"age": 10**9}]
    batch = encoder.encode_profiles_many(profiles)
    one = np.stack([encoder.encode_profile(p) for p in profiles])
    np.testing.assert_allclose(batch, one, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("numeric", ["ple", "linear"])
def test_to_dict__json_round_trip_gives_identical_vectors(numeric):
    encoder = _fitted(spec=replace(SPEC, numeric=numeric))
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    kinds, fields = _events(100, seed=2)
    kinds += [k for k, _ in AWKWARD]
    fields += [f for _, f in AWKWARD]
    np.testing.assert_array_equal(
        restored.encode_events_many(kinds, fields), encoder.encode_events_many(kinds, fields)
    )
    for kind, f in zip(kinds, fields, strict=True):
        np.testing.assert_array_equal(restored.encode_event(kind, f), encoder.encode_event(kind, f))
    profile = {"plan": "b", "age": 44}
    np.testing.assert_array_equal(restored.encode_profile(profile), encoder.encode_profile(profile))
    assert restored.to_dict() == encoder.to_dict()


def test_from_dict__reads_a_format_1_encoder_as_linear():
    linear = _fitted(spec=replace(SPEC, numeric="linear")).to_dict()
    legacy = json.loads(json.dumps(linear))
    legacy["format"] = "crmrisk.features/1"
    for key in ("numeric", "bins"):
        del legacy["spec"][key]
    restored = FeatureEncoder.from_dict(legacy)
    assert restored.spec.numeric == "linear"
    kinds, fields = _events(50, seed=3)
    np.testing.assert_array_equal(
        restored.encode_events_many(kinds, fields),
        FeatureEncoder.from_dict(linear).encode_events_many(kinds, fields),
    )


def test_from_dict__rejects_other_formats_and_inconsistent_dims():
    d = _fitted().to_dict()
    with pytest.raises(ValueError, match="format"):
        FeatureEncoder.from_dict({**d, "format": "other/9"})
    with pytest.raises(ValueError, match="dims"):
        FeatureEncoder.from_dict({**d, "event_dim": d["event_dim"] + 1})


def test_fit__constant_and_empty_columns_do_not_divide_by_zero():
    spec = FeatureSpec(
        "d", (FieldRole("c", "numeric"), FieldRole("none_seen", "numeric")), (), min_count=1
    )
    for numeric, expected in (("linear", 2.0), ("ple", 0.0)):  # ple: clipped to the constant
        encoder = FeatureEncoder.fit(replace(spec, numeric=numeric), ["k"] * 3, [{"c": 5}] * 3, [])
        vector = encoder.encode_event("k", {"c": 7, "none_seen": 1.0})
        assert all(math.isfinite(v) for v in vector)
        assert vector[encoder.event_feature_names().index("c")] == pytest.approx(expected)
        assert len(vector) == len(encoder.event_feature_names())
