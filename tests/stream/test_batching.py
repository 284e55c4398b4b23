"""The batch policy alone, and the batcher over an asyncio queue."""

import asyncio

import pytest

from crmrisk.stream.batching import DynamicBatcher, batch_ready


@pytest.mark.parametrize(
    ("size", "waited_ms", "ready"),
    [(0, 100.0, False), (1, 0.0, False), (1, 5.0, True), (8, 0.0, True), (9, 0.0, True)],
)
def test_batch_ready__full_or_waited_long_enough(size, waited_ms, ready):
    assert batch_ready(size, waited_ms, max_batch_size=8, max_delay_ms=5.0) is ready


def _queue_source(queue):
    async def source(timeout_s, n):
        items = []
        try:
            items.append(await asyncio.wait_for(queue.get(), timeout=max(timeout_s, 1e-6)))
        except TimeoutError:
            return items
        while len(items) < n and not queue.empty():
            items.append(queue.get_nowait())
        return items

    return source


def test_next_batch__stops_at_max_batch_size():
    async def run():
        queue = asyncio.Queue()
        for i in range(20):
            queue.put_nowait(i)
        batcher = DynamicBatcher(_queue_source(queue), max_batch_size=8, max_delay_ms=1000)
        return await batcher.next_batch(1.0), await batcher.next_batch(1.0)

    first, second = asyncio.run(run())
    assert first == list(range(8))
    assert second == list(range(8, 16))


def test_next_batch__runs_a_partial_batch_after_max_delay():
    async def run():
        queue = asyncio.Queue()
        for i in range(3):
            queue.put_nowait(i)
        batcher = DynamicBatcher(_queue_source(queue), max_batch_size=100, max_delay_ms=20)

        async def late():
            await asyncio.sleep(1.0)
            queue.put_nowait("late")

        feeder = asyncio.create_task(late())
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = await batcher.next_batch(1.0)
        took = loop.time() - started
        await feeder
        return batch, took

    batch, took_s = asyncio.run(run())
    assert batch == [0, 1, 2]  # not full: waited for more, then ran without the late item
    assert 0.02 <= took_s < 1.0


def test_next_batch__empty_after_idle_timeout():
    async def run():
        batcher = DynamicBatcher(_queue_source(asyncio.Queue()), 4, 5.0)
        return await batcher.next_batch(0.01)

    assert asyncio.run(run()) == []
