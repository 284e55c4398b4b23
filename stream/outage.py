"""Riding out a Redis or broker outage: retry the step that failed, with backoff, for a while.

A worker whose Redis or broker goes away must neither crash into a restart loop nor skip what it
holds: the batch in hand is kept, the failed delivery step (``stream/pipeline.py``) is retried
with exponential backoff (``initial_s`` doubling up to ``max_s``), every retry is counted in
``crmrisk_outage_retries_total{dependency}``, and ``health()`` names the outage, so ``/health``
answers 503 until the step succeeds. Nothing is committed meanwhile. Each delivery step is
idempotent or re-run from the start (appends are guarded by event id and offset), so a retry
never stores an event twice. After ``give_up_s`` of one outage the error propagates: the worker
stops with it and whatever supervises it (compose's ``restart``) starts it again later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis

from crmrisk.state import StateError

__all__ = ["Outage", "as_awaitable", "dependency_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def dependency_of(exc: BaseException) -> str | None:
    """'redis' or 'kafka' when ``exc`` means that dependency is unreachable; None otherwise.

    A bug (TypeError, a Lua error on one key) is not an outage: retrying it would not help.
    """
    if isinstance(exc, StateError):
        cause = exc.__cause__
        if cause is None or isinstance(cause, redis.ConnectionError | redis.TimeoutError):
            return "redis"
        if isinstance(cause, redis.exceptions.ClusterError | redis.exceptions.ResponseError):
            # CLUSTERDOWN, TRYAGAIN, MOVED during a failover; LOADING after a restart.
            text = str(cause)
            if any(word in text for word in ("CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN")):
                return "redis"
            return "redis" if isinstance(cause, redis.exceptions.ClusterError) else None
        return None
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "redis"
    from aiokafka.errors import KafkaError as AioKafkaError
    from confluent_kafka import KafkaException

    from crmrisk.stream.kafka_producer import DeliveryFailed

    if isinstance(exc, DeliveryFailed | KafkaException | AioKafkaError | TimeoutError):
        return "kafka"
    return None


class Outage:
    """Retries awaitables through outages and reports them (one per worker)."""

    def __init__(
        self,
        counter=None,
        *,
        initial_s: float = 0.1,
        max_s: float,
        give_up_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counter = counter  # a prometheus Counter labelled by dependency, or None
        self.initial_s, self.max_s, self.give_up_s = initial_s, max_s, give_up_s
        self._sleep, self._clock = sleep, clock
        self._since: float | None = None
        self._problem: str | None = None

    def health(self) -> str | None:
        """None unless a dependency is down now; then what and for how long (for /health)."""
        return self._problem

    async def retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``await attempt()`` until it succeeds; an outage error waits and tries again."""
        delay = self.initial_s
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                dependency = dependency_of(exc)
                if dependency is None:
                    raise
                now = self._clock()
                self._since = self._since if self._since is not None else now
                down_s = now - self._since
                if self._counter is not None:
                    self._counter.labels(dependency).inc()
                if self._problem is None:
                    log.error("%s unavailable while %s, retrying: %s", dependency, what, exc)
                self._problem = (
                    f"{dependency} unavailable for {down_s:.0f} s while {what} (retrying): {exc}"
                )
                if down_s > self.give_up_s:
                    log.error("%s still down after %.0f s: giving up", dependency, down_s)
                    raise
                await self._sleep(delay)
                delay = min(delay * 2, self.max_s)
                continue
            if self._problem is not None:
                log.info("recovered after %.1f s: %s", self._clock() - self._since, what)
            self._problem, self._since = None, None
            return result


async def as_awaitable(function: Callable, *args: object):
    """A synchronous call as an awaitable, for ``Outage.retry``."""
    return function(*args)
