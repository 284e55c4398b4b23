"""Helpers shared by the stream tests."""

from __future__ import annotations

import json


def raw_event(event_id, customer="c1", day=1, kind="bill", **fields) -> bytes:
    """An inbound credit event as the broker delivers it (``fields`` default: amount = day)."""
    return json.dumps(
        {
            "event_id": event_id,
            "customer_id": customer,
            "event_time": f"2024-01-{day:02d}T00:00:00Z",
            "domain": "credit",
            "kind": kind,
            "fields": fields or {"amount": day},
        }
    ).encode()


# -- in-memory ports for the pipeline tests -------------------------------------------------

import asyncio  # noqa: E402
from collections import namedtuple  # noqa: E402

import torch  # noqa: E402

from crmrisk import model  # noqa: E402
from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole  # noqa: E402
from crmrisk.state import AlertTable, WindowTable  # noqa: E402
from crmrisk.state.memory import MemoryState  # noqa: E402
from crmrisk.stream.alert_policy import AlertPolicy  # noqa: E402
from crmrisk.stream.alerting import Alerter  # noqa: E402
from crmrisk.stream.field_contract import FieldContract  # noqa: E402
from crmrisk.stream.kafka_producer import DeliveryFailed  # noqa: E402
from crmrisk.stream.metrics import WorkerMetrics  # noqa: E402
from crmrisk.stream.models import DomainModel  # noqa: E402
from crmrisk.stream.outage import Outage  # noqa: E402
from crmrisk.stream.ownership import Ownership  # noqa: E402
from crmrisk.stream.pipeline import Pipeline  # noqa: E402
from crmrisk.stream.ports import Topics  # noqa: E402
from crmrisk.stream.score_side import ScoreSide  # noqa: E402
from crmrisk.stream.scorer import Scorer  # noqa: E402
from crmrisk.stream.stages import BatchStages, EventSide  # noqa: E402

Record = namedtuple("Record", "topic partition offset key value timestamp")
TOPICS = Topics("dlq", "scores", "alerts", "requests", "shadow")
SPEC = FeatureSpec(
    "credit", (FieldRole("amount", "numeric"),), (FieldRole("limit", "numeric"),), min_count=1
)


def kit(version: str = "v1", seed: int = 0, bias: float = 0.0) -> DomainModel:
    """A tiny credit model: ``bias`` 8 puts every score far above the alert threshold."""
    fields = [{"amount": float(i)} for i in range(50)]
    encoder = FeatureEncoder.fit(SPEC, ["bill"] * 50, fields, [{"limit": 1.0}, {"limit": 9.0}])
    net = model.build(
        "qrcnn-lstm-cross", encoder.event_dim, encoder.profile_dim, (), seed=seed,
        members=1, channels=8, hidden=8, summary_dim=8, d_k=8, profile_hidden=8, head_hidden=8,
    )  # fmt: skip
    net.set_calibration(1.0, bias)
    scorer = Scorer(
        net, version=version, event_dim=encoder.event_dim, profile_dim=encoder.profile_dim,
        quantiles=(), device=torch.device("cpu"), top_events=2, precision="fp32",
        cuda_graphs=False,
    )  # fmt: skip
    return DomainModel("credit", version, encoder, scorer, {})


class Log(list):
    """What happened, in order, across the ports."""


class ListSource:
    """Batches from a list, as one member that owns every partition (or ``owned``)."""

    def __init__(self, log: Log, batches, owned=None, generation: int = 1) -> None:
        self.log, self.batches, self.committed = log, list(batches), {}
        self.owned, self.gen, self.rewinds = owned, generation, []

    async def next_batch(self, idle_timeout_s: float):
        return self.batches.pop(0) if self.batches else []

    def owns(self, partition: int) -> bool:
        return self.owned is None or partition in self.owned

    def generation(self) -> int:
        return self.gen

    async def commit(self, offsets) -> bool:
        self.log.append(("commit", dict(offsets)))
        self.committed.update(offsets)
        return True

    def rewind(self, partition: int, offset: int) -> None:
        self.log.append(("rewind", partition, offset))
        self.rewinds.append((partition, offset))

    async def lag(self) -> int:
        return 0


class ListSink:
    """Keeps what is sent; acknowledges at once unless told to fail or hold."""

    def __init__(self, log: Log, failures=()) -> None:
        self.log, self.failures = log, list(failures)
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.acked: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic, messages, delivery) -> int:
        batch = [(topic, k, v) for k, v in messages]
        self.log.append(("send", topic, len(batch)))
        self.sent.extend(batch)
        delivery.sent(len(batch))
        for _ in batch:
            delivery.acked()
        delivery._held = getattr(delivery, "_held", []) + batch
        return len(batch)

    async def delivered(self, delivery) -> None:
        if self.failures:
            error = self.failures.pop(0)
            if isinstance(error, DeliveryFailed):  # what was sent is gone: send again
                delivery.failed = list(delivery._held)
                delivery._held = []
            raise error
        self.acked.extend(getattr(delivery, "_held", []))
        delivery._held = []

    def resend(self, delivery) -> int:
        failed, delivery.failed = delivery.failed, []
        self.log.append(("resend", len(failed)))
        self.sent.extend(failed)
        delivery._held = failed
        return len(failed)

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.acked if t == topic]


class ListHistory:
    """The topic as a list of records; reads it back in chunks of ``chunk``."""

    def __init__(self, records, chunk: int = 2) -> None:
        self.records, self.chunk, self.reads = records, chunk, []

    async def beginning(self, topic: str, partition: int) -> int:
        offsets = [r.offset for r in self.records if (r.topic, r.partition) == (topic, partition)]
        return min(offsets, default=0)

    async def read(self, topic, partition, start, end):
        self.reads.append((topic, partition, start, end))
        wanted = [
            r for r in self.records
            if (r.topic, r.partition) == (topic, partition) and start <= r.offset < end
        ]  # fmt: skip
        for i in range(0, len(wanted), self.chunk):
            yield wanted[i : i + self.chunk]

    async def close(self) -> None:
        return None


class LoggedState(MemoryState):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def write(self, topic, writes):
        self.log.append(("write", sorted(w.partition for w in writes)))
        return super().write(topic, writes)


def records(values, start: int = 0, partition: int = 0, topic: str = "events", key=b"c1"):
    return [Record(topic, partition, start + i, key, v, 1000 + i) for i, v in enumerate(values)]


def pipeline(
    log=None, batches=(), *, model_kit=None, sink=None, state=None, history=None,
    scoring=True, events=True, topic="events", source=None, window=4, **kw,
):  # fmt: skip
    """A worker over lists and the in-memory state: ingest (``events``) and/or scoring."""
    log = log if log is not None else Log()
    model_kit = model_kit or kit("v1", bias=8.0)
    state = state if state is not None else LoggedState(log)
    encoder = model_kit.encoder
    event_side = score_side = None
    if events:
        event_side = EventSide(
            {"credit": encoder},
            {"credit": FieldContract.of(encoder, "strict", "count", "limit")},
            {"credit": WindowTable(window, encoder.event_dim, encoder.profile_dim, 3600)},
            {"credit": "limit"}, 4096, None,
        )  # fmt: skip
    if scoring:
        score_side = ScoreSide(
            {"credit": model_kit.scorer},
            {"credit": AlertTable(3600)},
            Alerter(AlertPolicy(0.5, 0.1, 0.0), {"credit": "default"}),
        )
    stages = BatchStages(topic, Ownership(topic, state), state, events=event_side,
                         scoring=score_side)  # fmt: skip
    source = source or ListSource(log, batches)
    sink = sink or ListSink(log)
    metrics = WorkerMetrics()
    # What the pipeline defaulted to before its wiring passed them (crmrisk/wiring/worker.py).
    kw.setdefault("outage", Outage(metrics.outage_retries, max_s=5.0, give_up_s=900.0))
    kw.setdefault("max_inflight", 4)
    kw.setdefault("max_customers", 1_000_000)
    made = Pipeline(source, sink, state, stages, TOPICS, metrics, history=history, **kw)
    return made, source, sink


def run(p: Pipeline, steps: int = 1, drain_each: bool = False) -> list:
    """``steps`` steps, then everything in flight completed (one event loop); ``drain_each``:
    complete each batch before the next step (a refusal is then settled by the next step)."""

    async def go():
        reports = []
        for _ in range(steps):
            reports.append(await p.step(0.0))
            if drain_each:
                await p.drain()
        await p.settle()
        return reports

    return asyncio.run(go())


class TopicSource(ListSource):
    """A topic (a list of records) read ``size`` records a batch, per-partition positions;
    ``rewind`` moves a position back, as a consumer's seek."""

    def __init__(self, log: Log, topic_records, size: int = 4, owned=None) -> None:
        super().__init__(log, [], owned)
        self.records = list(topic_records)
        self.size = size
        self.position: dict[int, int] = {}

    async def next_batch(self, idle_timeout_s: float):
        out = []
        for r in self.records:
            if len(out) == self.size:
                break
            if self.owns(r.partition) and r.offset >= self.position.get(r.partition, 0):
                out.append(r)
        for r in out:
            self.position[r.partition] = max(self.position.get(r.partition, 0), r.offset + 1)
        return out

    def rewind(self, partition: int, offset: int) -> None:
        super().rewind(partition, offset)
        self.position[partition] = offset
