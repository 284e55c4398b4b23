"""The worker wiring: every limit a pipeline runs under comes from settings, none from a default
of the library's own (nothing is started or connected here)."""

from __future__ import annotations

import asyncio

from crmrisk.settings import Settings
from crmrisk.wiring.worker import build_worker
from tests.stream.conftest import kit


def test_build_worker__passes_the_settings_to_the_pipeline_it_wires():
    settings = Settings(
        kafka={"max_future_s": 60.0, "max_message_bytes": 4096, "topics": {"alerts": "my.alerts"}},
        scoring={"max_inflight": 2, "max_customers": 10, "outage_max_backoff_s": 1.5,
                 "outage_give_up_s": 30.0, "reasons": 0, "rebuild_state": False},
    )  # fmt: skip

    async def build():
        worker = build_worker(settings, "ingest", {"credit": kit()}, handoff="inline")
        await worker.consumer.stop()  # never started: releases what its constructor holds
        worker.client.close()
        return worker.pipeline

    p = asyncio.run(build())
    assert (p.max_inflight, p.max_customers) == (2, 10)
    assert (p.outage.max_s, p.outage.give_up_s) == (1.5, 30.0)
    assert (p.stages.events.max_future_s, p.stages.events.max_message_bytes) == (60.0, 4096)
    assert p.topics.alerts == "my.alerts"
    assert p.topics.score_requests == settings.kafka.topics.score_requests
    assert p.history is None  # rebuild_state off
