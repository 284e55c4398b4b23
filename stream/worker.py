"""A running worker: a pipeline and the clients it owns, stepped until told to stop.

``crmrisk/wiring/worker.py`` builds one from settings; this module only runs it, and adapts a
model watcher (``lifecycle/watcher.py``) to the pipeline's between-batches hooks.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from crmrisk.stream.challenger import Challenger
from crmrisk.stream.heap import freeze_heap
from crmrisk.stream.kafka_producer import FastProducer
from crmrisk.stream.pipeline import Pipeline

__all__ = ["Worker", "watcher_hooks"]


@dataclass
class Worker:
    """A pipeline and the clients it owns; ``run`` starts them, steps, and stops them."""

    pipeline: Pipeline
    consumer: Any
    producer: FastProducer
    client: redis.Redis

    async def run(self, stop: asyncio.Event, idle_timeout_s: float = 0.5) -> None:
        """Step until ``stop`` is set; an exception propagates (restart from committed offsets).
        On the way out, what is in flight is completed and committed first."""
        # The loop shares the interpreter with the explanation, state-write and producer
        # threads: hand the GIL over every 0.5 ms (default 5) so a batch never waits long.
        sys.setswitchinterval(0.0005)
        await self.producer.start()
        # The alert process loads torch and the models (seconds of CPU on a small machine):
        # before the worker takes partitions, not while it scores their first events.
        await self.pipeline.ready()
        await self.consumer.start()
        freeze_heap()
        try:
            while not stop.is_set():
                await self.pipeline.step(idle_timeout_s)
        finally:
            try:
                await self.pipeline.close()
            finally:
                await self.consumer.stop()
                await self.producer.stop()
                self.client.close()


def watcher_hooks(
    watcher: Any,
) -> tuple[Callable[[], dict[str, Any]], Callable[[], dict[str, Challenger | None]]]:
    """The pipeline's ``between_batches`` and ``trials_between_batches`` over a started
    ``ModelWatcher``: the models it reloaded, and the trials it started or ended, since the
    last batch (the heap frozen again after either, as at start)."""

    def reloaded() -> dict[str, Any]:
        kits = {d: v.value for d, v in watcher.take().items()}
        if kits:
            freeze_heap()
        return kits

    def trials() -> dict[str, Challenger | None]:
        out: dict[str, Challenger | None] = {}
        for domain, loaded in watcher.take_trials().items():
            if loaded is None:
                out[domain] = None
            else:
                trial = loaded.trial
                out[domain] = Challenger(trial.mode, loaded.model.value.scorer, trial.percent)
        if out:
            freeze_heap()
        return out

    return reloaded, trials
