"""Scorer: padding, batch independence, explanations."""

import numpy as np
import pytest
import torch

from crmrisk import model
from crmrisk.state import CustomerSequence
from crmrisk.stream.requests import ScoreRequest
from crmrisk.stream.scorer import Scorer, windows_of

E, P = 6, 4


def _request(i, length, rng, profile=True):
    return ScoreRequest(
        customer_id=f"c{i}",
        domain="credit",
        event_id=f"c{i}-last",
        event_time_ms=1000 * length,
        produced_ms=0,
        sequence=CustomerSequence(
            event_ids=[f"c{i}-{t}" for t in range(length)],
            event_times_ms=np.arange(length, dtype=np.int64) * 1000,
            kinds=["bill"] * length,
            events=rng.normal(size=(length, E)).astype(np.float32),
            profile=rng.normal(size=P).astype(np.float32) if profile else None,
        ),
    )


@pytest.fixture
def scorer():
    torch.manual_seed(0)
    network = model.build(model.DEFAULT_VARIANT, E, P, (0.1, 0.5, 0.9), seed=0)
    return Scorer(
        network,
        version="v",
        event_dim=E,
        profile_dim=P,
        quantiles=(0.1, 0.5, 0.9),
        device=torch.device("cpu"),
        top_events=2,
        precision="fp32",
        cuda_graphs=False,
    )


def test_windows_of__right_pads_and_masks():
    rng = np.random.default_rng(0)
    reqs = [_request(0, 3, rng), _request(1, 1, rng, profile=False)]
    w = windows_of(reqs, E, P)
    assert w.events.shape == (2, 3, E) and w.mask.tolist() == [[True] * 3, [True, False, False]]
    np.testing.assert_array_equal(w.events[1, 0], reqs[1].sequence.events[0])
    assert not w.events[1, 1:].any()
    assert not w.profile[1].any() and w.has_profile.tolist() == [True, False]
    assert w.event_ids(0) == ["c0-0", "c0-1", "c0-2"] and w.lengths.tolist() == [3, 1]


def test_score__batched_equals_one_at_a_time(scorer):
    rng = np.random.default_rng(1)
    reqs = [_request(i, length, rng) for i, length in enumerate([1, 5, 32, 2, 7])]
    batched = scorer.score(reqs)
    single = [scorer.score([r])[0] for r in reqs]
    for b, s in zip(batched, single, strict=True):
        assert b.probability == pytest.approx(s.probability, abs=1e-6)
        assert b.quantiles == pytest.approx(s.quantiles, abs=1e-5)
        assert [t[0] for t in b.top_events] == [t[0] for t in s.top_events]


def test_score__explains_with_the_most_attended_real_events(scorer):
    rng = np.random.default_rng(2)
    scored = scorer.score([_request(0, 5, rng), _request(1, 1, rng)])
    first, short = scored
    assert len(first.top_events) == 2 and len(short.top_events) == 1
    weights = [t[3] for t in first.top_events]
    assert weights == sorted(weights, reverse=True)
    assert all(t[0].startswith("c0-") for t in first.top_events)
    assert set(first.quantiles) == {"q10", "q50", "q90"}
    assert 0.0 <= first.probability <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("precision", "graphs"), [("bf16", False), ("fp32", True), ("bf16", True)])
def test_score__cuda_bf16_agrees_with_cpu(scorer, precision, graphs):
    """The serving path on a GPU (either precision, graphs or not) scores like the CPU path."""
    rng = np.random.default_rng(2)
    reqs = [_request(i, length, rng) for i, length in enumerate([1, 5, 32, 2, 7, 16])]
    on_cpu = scorer.score(reqs)
    network = model.build(model.DEFAULT_VARIANT, E, P, (0.1, 0.5, 0.9), seed=0)
    on_gpu = Scorer(
        network,
        version="v",
        event_dim=E,
        profile_dim=P,
        quantiles=(0.1, 0.5, 0.9),
        device=torch.device("cuda"),
        top_events=2,
        precision=precision,
        cuda_graphs=graphs,
    ).score(reqs)
    for a, b in zip(on_cpu, on_gpu, strict=True):
        assert abs(a.probability - b.probability) < 2e-2  # bfloat16 keeps ~3 significant digits
        assert len(b.top_events) == len(a.top_events)
