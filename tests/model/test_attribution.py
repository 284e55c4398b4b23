"""Reason codes (model/attribution.py): completeness, the served probability, a planted field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from crmrisk.model import DEFAULT_VARIANT, FeatureEncoder, FeatureSpec, FieldRole, build
from crmrisk.model.attribution import Explainer, FieldLayout
from crmrisk.model.fused import fuse

SPEC = FeatureSpec(
    domain="synth",
    event_fields=(
        FieldRole("signal", "numeric", "none"),
        FieldRole("noise", "numeric", "none"),
        FieldRole("amount", "numeric", "signed_log1p"),
        FieldRole("channel", "categorical"),
        FieldRole("channel", "numeric", "none"),  # one field encoded twice: summed as one
    ),
    profile_fields=(FieldRole("age", "numeric", "none"), FieldRole("segment", "categorical")),
    min_count=1,
)


def _customers(n: int, seed: int):
    """Synthetic customers: the label is whether the *last* event's ``signal`` exceeds 0.8."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(3, 9))
        events = [
            {
                "signal": float(rng.normal()),
                "noise": float(rng.normal()),
                "amount": float(rng.lognormal(5, 1)),
                "channel": int(rng.integers(0, 3)),
            }
            for _ in range(length)
        ]
        if i % 7 == 0:
            events[0]["noise"] = None  # some missing values
        profile = {"age": float(rng.integers(20, 70)), "segment": ["a", "b", "c"][i % 3]}
        out.append((events, profile, int(events[-1]["signal"] > 0.8)))
    return out


def _arrays(encoder: FeatureEncoder, customers, slots: int = 8):
    n = len(customers)
    events = np.zeros((n, slots, encoder.event_dim), dtype=np.float32)
    mask = np.zeros((n, slots), dtype=bool)
    profile = np.zeros((n, encoder.profile_dim), dtype=np.float32)
    for i, (evs, prof, _) in enumerate(customers):
        events[i, : len(evs)] = encoder.encode_events_many(["txn"] * len(evs), evs)
        mask[i, : len(evs)] = True
        profile[i] = encoder.encode_profile(prof)
    labels = np.array([c[2] for c in customers], dtype=np.float32)
    return events, mask, profile, labels


@pytest.fixture(scope="module")
def encoder():
    customers = _customers(400, seed=1)
    kinds = [k for evs, _, _ in customers for k in ["txn"] * len(evs)]
    fields = [e for evs, _, _ in customers for e in evs]
    return FeatureEncoder.fit(SPEC, kinds, fields, [p for _, p, _ in customers])


@pytest.fixture(scope="module")
def trained(encoder):
    """A small model trained for a few seconds on the synthetic domain."""
    torch.manual_seed(0)
    model = build(DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=0, members=2)
    events, mask, profile, labels = (torch.from_numpy(a) for a in _arrays(encoder, _customers(
        1500, seed=2)))  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(12):
        for batch in torch.randperm(len(labels), generator=generator).split(128):
            out = model(events[batch], mask[batch], profile[batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logit, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.set_calibration(0.9, -0.1)  # the calibration is part of what is attributed
    return model.eval()


def test_baseline__replaces_present_fields_keeps_missing_kind_and_padding(encoder):
    events, mask, profile, _ = _arrays(encoder, _customers(20, seed=3))
    layout = FieldLayout(encoder)
    base_events, base_profile = layout.baseline(events, mask, profile, np.ones(20, dtype=bool))
    kinds = len(encoder.kinds) + 1
    np.testing.assert_array_equal(base_events[..., :kinds], events[..., :kinds])  # kinds kept
    np.testing.assert_array_equal(base_events[~mask], events[~mask])  # padding kept
    # Customer 0's first event misses ``noise``: its block stays as it is in the baseline.
    noise = layout.event_fields.index("noise")
    assert layout.decode_event(events[0, 0], noise) == "missing"
    assert layout.decode_event(base_events[0, 0], noise) == "missing"
    # A present number becomes its training median; the baseline of a baseline is itself.
    signal = layout.event_fields.index("signal")
    median = encoder.event_columns[0].center
    assert float(layout.decode_event(base_events[1, 0], signal)) == pytest.approx(median, 1e-2)
    again = layout.baseline(base_events, mask, base_profile, np.ones(20, dtype=bool))
    np.testing.assert_array_equal(again[0], base_events)
    np.testing.assert_array_equal(again[1], base_profile)


def test_decode__reads_back_the_encoded_values(encoder):
    layout = FieldLayout(encoder)
    vector = encoder.encode_event("txn", {"signal": 0.5, "amount": 150.0, "channel": 2})
    values = {f: layout.decode_event(vector, i) for i, f in enumerate(layout.event_fields)}
    assert values == {"signal": "0.5", "noise": "missing", "amount": "150", "channel": "2"}
    top = encoder.event_columns[0].edges[-1]
    assert layout.decode_event(encoder.encode_event("txn", {"signal": 99.0}), 0).startswith("≥")
    assert float(layout.decode_event(encoder.encode_event("txn", {"signal": top}), 0)[2:]) == (
        pytest.approx(top, abs=1e-2)
    )
    profile = encoder.encode_profile({"age": 33, "segment": "b"})
    assert [layout.decode_profile(profile, i) for i in range(2)] == ["33", "b"]


@pytest.mark.parametrize("members", [1, 3])
def test_explain__attributions_sum_to_score_minus_baseline(encoder, members):
    model = build(DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=members,
                  members=members).eval()  # fmt: skip
    model.set_calibration(1.7, 0.4)
    events, mask, profile, _ = _arrays(encoder, _customers(24, seed=4))
    explainer = Explainer(model, encoder, steps=32, top=5, device=torch.device("cpu"), chunk=7)
    event_attr, profile_attr, prob, base, delta = explainer.attribute(
        events, mask, profile, np.ones(24, dtype=bool)
    )
    total = event_attr.sum(axis=(1, 2)) + profile_attr.sum(axis=1)
    assert np.abs(prob - base).max() > 1e-3  # otherwise the check below says nothing
    np.testing.assert_allclose(total, prob - base, atol=2e-3)
    np.testing.assert_allclose(total - (prob - base), delta, atol=1e-9)
    with torch.no_grad():  # f(x): the members' own probability, not only the fused one's
        members_p = model(*(torch.from_numpy(a) for a in (events, mask, profile))).probability
    np.testing.assert_allclose(prob, members_p.numpy(), atol=1e-6)
    assert not event_attr[~mask].any()  # padding gets nothing
    explanations = explainer.explain(events, mask, profile)
    for e, t in zip(explanations, total, strict=True):
        assert e.total == pytest.approx(t, abs=1e-9)
        contributions = [abs(r.contribution) for r in e.reasons]
        assert contributions == sorted(contributions, reverse=True) and len(e.reasons) == 5


def test_explain__through_the_fused_form_equals_captum_on_the_members(trained, encoder):
    # The explainer integrates through the fused members (fewer operations, same function) with
    # one backward pass of the summed outputs; plain Captum over the unfused ensemble must agree.
    events, mask, profile, _ = _arrays(encoder, _customers(12, seed=10))
    explainer = Explainer(trained, encoder, steps=16, top=3, device=torch.device("cpu"))
    event_attr, profile_attr, _, _, _ = explainer.attribute(
        events, mask, profile, np.ones(12, dtype=bool)
    )
    base_events, base_profile = explainer.layout.baseline(
        events, mask, profile, np.ones(12, dtype=bool)
    )
    ig = IntegratedGradients(lambda e, p, m: trained(e, m, p).probability)
    e, p, be, bp = (torch.from_numpy(a) for a in (events, profile, base_events, base_profile))
    want_events, want_profile = ig.attribute(
        (e, p), baselines=(be, bp), additional_forward_args=(torch.from_numpy(mask),), n_steps=16
    )
    assert np.abs(want_events.numpy()).max() > 1e-3
    np.testing.assert_allclose(event_attr, want_events.double().numpy(), atol=2e-6)
    np.testing.assert_allclose(profile_attr, want_profile.double().numpy(), atol=2e-6)
    # The explainer attributes a frozen copy: the served model keeps its trainable weights.
    assert all(w.requires_grad for w in trained.parameters())


def test_explain__completeness_holds_on_a_sharp_trained_model(trained, encoder):
    # Trained to near-certainty, its probability jumps along the path: the hard case for the
    # integral (64 steps; the serving default is 16, for smoother real models).
    events, mask, profile, _ = _arrays(encoder, _customers(60, seed=8))
    explainer = Explainer(trained, encoder, steps=64, top=3, device=torch.device("cpu"))
    event_attr, profile_attr, prob, base, _ = explainer.attribute(
        events, mask, profile, np.ones(60, dtype=bool)
    )
    total = event_attr.sum(axis=(1, 2)) + profile_attr.sum(axis=1)
    assert np.abs(prob - base).max() > 0.5
    np.testing.assert_allclose(total, prob - base, atol=0.02)


def test_explain__probability_is_the_served_fused_one(trained, encoder):
    events, mask, profile, _ = _arrays(encoder, _customers(16, seed=5))
    explainer = Explainer(trained, encoder, steps=16, top=3, device=torch.device("cpu"))
    explanations = explainer.explain(events, mask, profile)
    with torch.inference_mode():
        served = fuse(trained)(*(torch.from_numpy(a) for a in (events, mask, profile)))
    got = np.array([e.probability for e in explanations])
    np.testing.assert_allclose(got, served.probability.numpy(), atol=1e-6)


def test_explain__batched_equals_one_at_a_time(trained, encoder):
    events, mask, profile, _ = _arrays(encoder, _customers(6, seed=6))
    explainer = Explainer(trained, encoder, steps=16, top=3, device=torch.device("cpu"), chunk=4)
    batched = explainer.explain(events, mask, profile)
    for i, b in enumerate(batched):
        (one,) = explainer.explain(events[i : i + 1], mask[i : i + 1], profile[i : i + 1])
        assert [(r.field, r.position, r.value) for r in one.reasons] == [
            (r.field, r.position, r.value) for r in b.reasons
        ]
        np.testing.assert_allclose(
            [r.contribution for r in one.reasons], [r.contribution for r in b.reasons], atol=1e-6
        )


def test_explain__planted_field_ranks_first_for_most_positives(trained, encoder):
    customers = _customers(400, seed=7)
    events, mask, profile, labels = _arrays(encoder, customers)
    explainer = Explainer(trained, encoder, steps=24, top=3, device=torch.device("cpu"))
    explanations = explainer.explain(events, mask, profile)
    flagged = [
        (e, int(mask[i].sum()) - 1)
        for i, e in enumerate(explanations)
        if labels[i] == 1 and e.probability > 0.5
    ]
    assert len(flagged) >= 40, "the model did not learn the synthetic domain"
    first = [e.reasons[0] for e, _ in flagged]
    on_signal = sum(r.field == "signal" for r in first) / len(first)
    on_last_signal = sum(
        r.field == "signal" and r.position == last
        for r, (_, last) in zip(first, flagged, strict=True)
    ) / len(first)
    assert on_signal >= 0.8, f"signal ranked first for only {on_signal:.0%} of positives"
    assert on_last_signal >= 0.7, f"the last event's signal first for {on_last_signal:.0%}"
    assert all(r.contribution > 0 for r in first if r.field == "signal")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_explain__on_cuda_equals_cpu(trained, encoder):
    # cuDNN's RNN backward refuses eval mode: the explainer disables cuDNN while attributing.
    import copy

    events, mask, profile, _ = _arrays(encoder, _customers(8, seed=9))
    cpu = Explainer(copy.deepcopy(trained), encoder, steps=16, top=3, device=torch.device("cpu"))
    gpu = Explainer(copy.deepcopy(trained), encoder, steps=16, top=3, device=torch.device("cuda"))
    for a, b in zip(cpu.explain(events, mask, profile), gpu.explain(events, mask, profile),
                    strict=True):  # fmt: skip
        assert [(r.field, r.position) for r in a.reasons] == [
            (r.field, r.position) for r in b.reasons
        ]
        np.testing.assert_allclose(
            [r.contribution for r in a.reasons], [r.contribution for r in b.reasons], atol=1e-4
        )


def test_explain__integrates_where_the_model_is(encoder):
    # Every tensor the reason codes touch lives on the explainer's device: on ``meta`` (no
    # data, any machine) the whole integration, backward passes included, runs there.
    model = build(DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (0.1, 0.9), seed=0,
                  members=2).eval()  # fmt: skip
    explainer = Explainer(model, encoder, steps=4, top=3, device=torch.device("meta"), chunk=3)
    events, mask, profile, _ = _arrays(encoder, _customers(5, seed=5))
    e, p, m = (torch.from_numpy(a).to("meta") for a in (events, profile, mask))
    event_attr, profile_attr, both = explainer.integrate(e, e, p, p, m)
    assert event_attr.device.type == profile_attr.device.type == both.device.type == "meta"
    assert event_attr.shape == events.shape and both.shape == (10,)


def test_explain__rejects_a_mask_that_is_not_right_padded(encoder):
    model = build(DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=0).eval()
    explainer = Explainer(model, encoder, steps=2, top=3, device=torch.device("cpu"))
    events, mask, profile, _ = _arrays(encoder, _customers(3, seed=6))
    mask[0, 0] = False  # a gap before real events: padding would be read as history
    with pytest.raises(ValueError, match="right-padded"):
        explainer.explain(events, mask, profile)
