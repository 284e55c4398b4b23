"""The example buffer: a stable held-out slice by customer, a bounded uniform reservoir."""

from datetime import UTC, datetime, timedelta

import numpy as np

from crmrisk.training.example_buffer import ExampleBuffer, in_holdout
from crmrisk.training.point_in_time import PointInTimeExample

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _example(customer: str, minutes: int) -> PointInTimeExample:
    as_of = T0 + timedelta(hours=minutes + 1)
    return PointInTimeExample("synth", customer, as_of, as_of, 1, None, (), {})


def test_in_holdout__is_stable_and_close_to_the_fraction():
    ids = [f"c{i}" for i in range(20_000)]
    share = np.mean([in_holdout(c, 0.2) for c in ids])
    assert 0.19 < share < 0.21
    assert [in_holdout(c, 0.2) for c in ids[:50]] == [in_holdout(c, 0.2) for c in ids[:50]]


def test_buffer__reservoir_is_bounded_and_replay_samples_without_repeats():
    buffer = ExampleBuffer(holdout_fraction=0.2, holdout_size=10, replay_pool=50, seed=0)
    examples = [_example(f"c{i}", i) for i in range(300)]
    for x in examples:
        buffer.add(x)
    assert len(buffer.holdout) == 10  # newest held-out examples only
    assert not {x.customer_id for x in buffer.new} & {x.customer_id for x in buffer.holdout}
    buffer.retire(buffer.new)
    assert buffer.pool_size == 50
    sample = buffer.replay(30)
    assert len({x.customer_id for x in sample}) == 30
    # Uniform reservoir: old and recent examples both survive.
    kept = [int(x.customer_id[1:]) for x in buffer.replay(50)]
    assert min(kept) < 100 and max(kept) > 200
