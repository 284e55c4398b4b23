"""The trainer's reading loop on an in-memory record source: no broker needed."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import NamedTuple

from crmrisk.stream.events import Outcome
from crmrisk.training.trainer_loop import TrainerLoop

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class _Partition(NamedTuple):
    topic: str
    partition: int


class _Source:
    """A ``RecordSource`` that hands out one prepared batch, then nothing."""

    def __init__(self, batch) -> None:
        self.batches = [batch]
        self.caught_up = False
        self.closed = False

    def poll(self, timeout_ms, max_records):
        return self.batches.pop(0) if self.batches else {}

    def close(self) -> None:
        self.closed = True


class _Trainer:
    domain = "credit"

    def __init__(self, resume: dict[str, int]) -> None:
        latest = SimpleNamespace(data_window={"outcome_offsets": resume})
        self.registry = SimpleNamespace(latest=lambda domain: latest)
        self.outcomes: list[tuple[str, bool]] = []
        self.position: dict[str, int] = {}

    def observe_outcome(self, outcome, *, trained=False) -> None:
        self.outcomes.append((outcome.customer_id, trained))

    def due(self, drifted=False):
        return None


def _outcome(offset: int) -> SimpleNamespace:
    value = Outcome(
        customer_id=f"c{offset}", domain="credit", as_of=T0, observed_at=T0, label=1
    ).to_bytes()
    return SimpleNamespace(offset=offset, value=value)


def test_poll__outcomes_before_the_recorded_offsets_count_as_trained():
    partition = _Partition("crm.outcomes", 0)
    bad = SimpleNamespace(offset=3, value=b"not json")
    source = _Source({partition: [_outcome(0), _outcome(1), _outcome(2), bad]})
    trainer = _Trainer({"crm.outcomes:0": 2})
    loop = TrainerLoop(
        trainer,  # type: ignore[arg-type]
        source=source,
        events_topic="crm.events",
        outcomes_topic="crm.outcomes",
        drift=None,
        drift_features=0,
        drift_retrain=False,
    )
    assert loop.poll() == 4 and loop.poll() == 0
    assert trainer.outcomes == [("c0", True), ("c1", True), ("c2", False)]
    assert trainer.position == {"crm.outcomes:0": 4} and loop.invalid == 1
    assert loop.step() is None  # not caught up: no refresh yet
    loop.close()
    assert source.closed
