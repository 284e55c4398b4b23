"""``crmrisk models performance``: estimated vs realized performance per chunk, from the topics.

Reads ``risk.scores`` and ``crm.outcomes`` from the beginning to their current ends (no
consumer group, nothing committed), keeps one domain, and prints per model version and chunk of
score event time the CBPE estimate (``training.performance``) beside the realized figures where
outcomes have joined. Unreadable records are counted and skipped, not fatal.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from crmrisk.errors import UserError, require_services
from crmrisk.stream.events import Outcome, RiskScore, ShadowScore

if TYPE_CHECKING:
    from crmrisk.settings import Settings
    from crmrisk.training.performance import ChunkPerformance

__all__ = ["parse_records", "read_topic", "show_performance"]

_console = Console()
_M = TypeVar("_M", RiskScore, Outcome, ShadowScore)


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Every record value of ``topic`` up to its end offsets now (a bounded read)."""
    from kafka import KafkaConsumer, TopicPartition

    k = settings.kafka
    consumer = KafkaConsumer(
        **k.client_config(),
        client_id=f"{k.client_id}-performance",
        group_id=None,
        enable_auto_commit=False,
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise UserError(f"topic {topic} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[bytes] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                values += [r.value for r in records if r.offset < ends[tp]]
        return values
    finally:
        consumer.close()


def parse_records(model: type[_M], values: list[bytes]) -> tuple[list[_M], int]:
    """The values that parse as ``model``, and how many did not (counted, skipped)."""
    parsed: list[_M] = []
    bad = 0
    for value in values:
        try:
            parsed.append(model.model_validate_json(value))
        except ValidationError:
            bad += 1
    return parsed, bad


def _band(value: float | None, std: float | None = None, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}} ± {std:{spec}}" if std is not None else f"{value:{spec}}"


def _table(domain: str, threshold: float, rows: list[ChunkPerformance]) -> Table:
    from crmrisk.training.performance import ASSUMPTIONS

    table = Table(
        title=f"{domain}: estimated vs realized performance at threshold {threshold:g}",
        caption=f"estimate assumes {ASSUMPTIONS}; band = 1 std over sampled labels",
    )
    for name in ("version", "chunk", "n", "est. AUC", "real AUC", "est. P/R", "real P/R"):
        table.add_column(name, justify="left" if name in ("version", "chunk") else "right")
    table.add_column("labelled", justify="right")
    losses = any(r.estimate.exposed for r in rows)
    if losses:  # scores carry their customer's exposure: expected vs realized loss
        table.add_column("exp. loss", justify="right")
        table.add_column("real loss", justify="right")
    for r in rows:
        e, real = r.estimate, r.realized
        loss = []
        if losses:
            loss = [
                _band(e.expected_loss, e.expected_loss_std, ",.0f"),
                "-" if real is None or real.loss is None else f"{real.loss:,.0f}",
            ]
        table.add_row(
            r.model_version,
            f"{r.chunk_start:%Y-%m-%d %H:%M}",
            str(e.n),
            _band(e.auc, e.auc_std),
            _band(real.auc) if real else "-",
            f"{e.precision:.3f} / {e.recall:.3f}",
            f"{real.precision:.3f} / {real.recall:.3f}" if real else "-",
            str(real.n) if real else "0",
            *loss,
        )
    return table


def show_performance(
    settings: Settings,
    domain: str,
    since: datetime | None,
    chunk_hours: float,
    threshold: float | None,
) -> None:
    """Print ``domain``'s estimated and realized performance per version and chunk."""
    from crmrisk.training.performance import performance_by_chunk

    if chunk_hours <= 0:
        raise UserError(f"--chunk-hours must be positive, got {chunk_hours}")
    require_services(settings, redis=False)
    k = settings.kafka
    scores, bad_scores = parse_records(RiskScore, read_topic(settings, k.topics.scores))
    outcomes, bad_outcomes = parse_records(Outcome, read_topic(settings, k.topics.outcomes))
    if since is not None and since.tzinfo is None:
        since = since.astimezone()  # a naive --since is local time
    scores = [s for s in scores if s.domain == domain and (since is None or s.event_time >= since)]
    outcomes = [o for o in outcomes if o.domain == domain and (since is None or o.as_of >= since)]
    if bad_scores or bad_outcomes:
        _console.print(f"skipped unreadable records: {bad_scores} scores, {bad_outcomes} outcomes")
    if not scores:
        _console.print(
            f"no scores for {domain} on {k.topics.scores}" + (f" since {since}" if since else "")
        )
        return
    cut = settings.scoring.alert_threshold if threshold is None else threshold
    rows = performance_by_chunk(scores, outcomes, cut, chunk_hours * 3600)
    _console.print(_table(domain, cut, rows))
