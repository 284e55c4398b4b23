"""The incremental trainer's records from the broker: a kafka-python ``RecordSource``.

Lives on the composition side so that ``training`` imports no Kafka client. One consumer
without a consumer group (every trainer rebuilds its own point-in-time log): events and
outcomes from the earliest retained offset, live scores from the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["KafkaRecordSource"]


class KafkaRecordSource:
    """``training.record_source.RecordSource`` over ``events``, ``outcomes`` and ``scores``
    (None: no scores read)."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        *,
        events_topic: str,
        outcomes_topic: str,
        scores_topic: str | None,
    ) -> None:
        self._consumer = KafkaConsumer(
            **dict(kafka_config), group_id=None, enable_auto_commit=False
        )
        events = self._partitions(events_topic)
        outcomes = self._partitions(outcomes_topic)
        scores = self._partitions(scores_topic) if scores_topic else []
        self._consumer.assign(events + outcomes + scores)
        self._consumer.seek_to_beginning(*events, *outcomes)
        if scores:
            self._consumer.seek_to_end(*scores)
        self._start_ends: dict[TopicPartition, int] = dict(self._consumer.end_offsets(events))

    def _partitions(self, topic: str) -> list[TopicPartition]:
        found = self._consumer.partitions_for_topic(topic)
        if not found:
            raise LookupError(f"topic {topic} does not exist (crmrisk topics create)")
        return [TopicPartition(topic, p) for p in sorted(found)]

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Sequence[Any]]:
        return self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)

    @property
    def caught_up(self) -> bool:
        return all(self._consumer.position(tp) >= end for tp, end in self._start_ends.items())

    def close(self) -> None:
        self._consumer.close()
