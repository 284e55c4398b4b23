"""The scoring side of a batch: score the windows, decide alerts, build the score messages.

A challenger on trial (``stream/challenger.py``) scores beside the champion: a canary takes its
share of the customers, a shadow rescores the champion's rows; either failing leaves the
champion's output untouched. A window the model cannot score is found row by row and becomes a
``scoring_failed`` dead letter, the rest of the batch scored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from crmrisk.state import AlertTable, Windows
from crmrisk.stream.alert_policy import decide_many
from crmrisk.stream.alerting import Alerter, Firing
from crmrisk.stream.batch import Batch, RowMeta
from crmrisk.stream.challenger import Challenger, canary_rows, shadow_bytes
from crmrisk.stream.decode import rejected
from crmrisk.stream.events import InvalidEvent
from crmrisk.stream.score_encoding import iso_ms, score_bytes
from crmrisk.stream.scorer import ScoredRows, Scorer

__all__ = ["ScoreSide"]

log = logging.getLogger(__name__)


@dataclass
class ScoreSide:
    """Scoring: a scorer and the alert states per domain, and the alert policy."""

    scorers: dict[str, Scorer]
    alert_states: dict[str, AlertTable]
    alerter: Alerter
    challengers: dict[str, Challenger] = field(default_factory=dict)  # trials, per domain

    def score(self, domain, w, meta, batch, now, serial, publish, alerts_out, scores_out, epochs):
        """Score, then decide. A canary takes its customers' rows (a customer is wholly on one
        side, so each customer's scores keep their order); a shadow rescores the champion's."""
        champion = self.scorers[domain]
        challenger = self.challengers.get(domain) if publish else None
        sides = [(champion, w, meta)]
        if challenger is not None and challenger.mode == "canary":
            mine = canary_rows(meta.customers, challenger.percent)
            if mine.any():
                theirs, ours = np.flatnonzero(mine), np.flatnonzero(~mine)
                sides = [
                    (champion, w.take(ours), meta.take(ours)),
                    (challenger.scorer, w.take(theirs), meta.take(theirs)),
                ]
        shadow = challenger if challenger is not None and challenger.mode == "shadow" else None
        for scorer, w_side, meta_side in sides:
            if len(w_side):
                self._score_side(
                    domain, scorer, shadow, w_side, meta_side, batch, now, serial, publish,
                    alerts_out, scores_out, epochs,
                )  # fmt: skip

    def _score_side(
        self, domain, scorer, shadow, w, meta, batch, now, serial, publish, alerts_out,
        scores_out, epochs,
    ):  # fmt: skip
        champion = self.scorers[domain]
        started = time.perf_counter()
        if scorer is champion:
            rows, w, meta = self._forward(scorer, w, meta, batch)
        else:  # the canary's rows
            batch.challenger_rows[(domain, "canary")] += len(w)
            try:
                rows = scorer.score_windows(w)
            except Exception:  # the champion serves them instead: nothing lost
                log.exception("%s: canary %s failed on %d rows", domain, scorer.version, len(w))
                batch.challenger_failures[(domain, "canary")] += len(w)
                scorer = champion
                rows, w, meta = self._forward(scorer, w, meta, batch)
            else:
                batch.challenger_ms.append((time.perf_counter() - started) * 1000)
        model_ms = (time.perf_counter() - started) * 1000
        customers, event_ids, times, partitions = (
            meta.customers,
            meta.event_ids,
            meta.times,
            meta.partitions,
        )
        batch.model_ms.append(model_ms)
        if not len(w):
            return
        if shadow is not None:
            self._shadow(domain, shadow, w, meta, rows, champion, model_ms, batch, now)
        tops = _top_events(w, rows)
        quantile_names = scorer.quantile_names
        scored_at = iso_ms(int(now * 1000))
        latest: dict[str, tuple[int, bytes]] = {}
        exposure = [None if e != e else e for e in w.exposure.tolist()]  # NaN: unknown
        for i, customer in enumerate(customers):
            q = None
            if rows.quantiles is not None:
                q = dict(zip(quantile_names, rows.quantiles[i].tolist(), strict=True))
            body = score_bytes(
                customer_id=customer,
                domain=domain,
                event_id=event_ids[i],
                event_time_ms=int(times[i]),
                probability=float(rows.probability[i]),
                quantiles=q,
                model_version=scorer.version,
                scored_at=scored_at,
                top_events=tops[i],
                exposure=exposure[i],
            )
            latest[customer] = (int(partitions[i]), body)
            if publish:
                batch.scores.append((customer.encode(), body))
        scores_out += [(domain, p, c, body) for c, (p, body) in latest.items()]
        if publish:
            batch.produced_ms.append(meta.produced)
            batch.scored_per_domain[domain] = batch.scored_per_domain.get(domain, 0) + len(w)
        fire = self.decide(
            domain, customers, partitions, rows.probability, times, serial, now, alerts_out, epochs
        )
        if publish and fire.size:
            batch.firing.append(
                Firing(
                    domain,
                    scorer,
                    w.take(fire),
                    [customers[i] for i in fire.tolist()],
                    [event_ids[i] for i in fire.tolist()],
                    rows.probability[fire],
                    [tops[i] for i in fire.tolist()],
                )
            )

    def _forward(self, scorer: Scorer, w: Windows, meta: RowMeta, batch: Batch):
        """The batch's forward pass; if it fails, row by row (``_score_each``)."""
        try:
            return scorer.score_windows(w), w, meta
        except Exception:  # one bad window must not fail the batch: find it
            log.exception(
                "model %s: scoring a batch of %d failed; one by one", scorer.version, len(w)
            )
            rows, keep = self._score_each(scorer, w, meta, batch)
            return rows, w.take(keep), meta.take(keep)

    def _shadow(self, domain, shadow, w, meta, rows, champion, champion_ms, batch, now) -> None:
        """The shadow's scores of the windows the champion just scored: ``batch.shadow_scores``
        only. Whatever it raises is logged and counted; the champion's output is untouched."""
        started = time.perf_counter()
        batch.challenger_rows[(domain, "shadow")] += len(w)
        try:
            theirs = shadow.scorer.score_windows(w).probability
        except Exception:
            log.exception("%s: shadow %s failed on %d rows", domain, shadow.scorer.version, len(w))
            batch.challenger_failures[(domain, "shadow")] += len(w)
            return
        shadow_ms = (time.perf_counter() - started) * 1000
        batch.challenger_ms.append(shadow_ms)
        threshold = self.alerter.policy.threshold
        scored_at = iso_ms(int(now * 1000))
        shadow_us, champion_us = shadow_ms * 1000 / len(w), champion_ms * 1000 / len(w)
        for i, customer in enumerate(meta.customers):
            p = float(theirs[i])
            body = shadow_bytes(
                customer_id=customer,
                domain=domain,
                event_id=meta.event_ids[i],
                event_time_ms=int(meta.times[i]),
                probability=p,
                model_version=shadow.scorer.version,
                champion_version=champion.version,
                champion_probability=float(rows.probability[i]),
                would_alert=p >= threshold,
                scored_at=scored_at,
                shadow_us=shadow_us,
                champion_us=champion_us,
            )
            batch.shadow_scores.append((customer.encode(), body))

    def _score_each(self, scorer: Scorer, w: Windows, meta: RowMeta, batch: Batch):
        """Score one by one; whatever still fails becomes a ``scoring_failed`` dead letter."""
        parts, keep = [], []
        for i in range(len(w)):
            one = w.take(np.array([i]))
            try:
                parts.append(scorer.score_windows(one))
            except Exception as exc:
                record = meta.records[i]
                error = InvalidEvent("scoring_failed", f"{type(exc).__name__}: {exc}")
                batch.dead_letters.append(rejected(record, error))
                continue
            keep.append(i)
        keep_index = np.array(keep, np.int64)
        if not parts:
            empty = np.zeros((0, 0))
            return ScoredRows(np.zeros(0), None, empty.astype(np.int64), empty), keep_index
        k = max(p.top.shape[1] for p in parts)
        pad = lambda a, fill: np.pad(a, ((0, 0), (0, k - a.shape[1])), constant_values=fill)  # noqa: E731
        return (
            ScoredRows(
                np.concatenate([p.probability for p in parts]),
                None
                if parts[0].quantiles is None
                else np.concatenate([p.quantiles for p in parts]),
                np.concatenate([pad(p.top, -1) for p in parts]),
                np.concatenate([pad(p.weights, 0.0) for p in parts]),
            ),
            keep_index,
        )

    def decide(self, domain, customers, partitions, probability, times, serial, now, out, epochs):
        """The alert policy over the scores, in order (a customer scored twice decides twice):
        which rows fire; the changed alert states go to ``out``."""
        table = self.alert_states[domain]
        policy = self.alerter.policy
        slots = table.slots(customers, partitions, now, serial)
        fire = np.zeros(len(customers), bool)
        changed = []
        seconds = times / 1000.0
        for r in _rounds_of(slots):
            s = slots[r]
            armed, last = table.armed[s], table.last_s[s]
            f, new_armed, new_last = decide_many(policy, armed, last, probability[r], seconds[r])
            moved = (new_armed != armed) | ~(
                (new_last == last) | (np.isnan(new_last) & np.isnan(last))
            )
            table.armed[s], table.last_s[s] = new_armed, new_last
            fire[r] = f
            changed.append(s[moved])
        if changed:
            for customer, partition, record in table.records(np.concatenate(changed), epochs):
                out.append((domain, partition, customer, record))
        return np.flatnonzero(fire)


def _rounds_of(slots: np.ndarray) -> list[np.ndarray]:
    """Row indexes in rounds, each holding a slot at most once, rows kept in order."""
    if len(np.unique(slots)) == len(slots):
        return [np.arange(len(slots))]
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for i, s in enumerate(slots.tolist()):
        r = seen.get(s, -1) + 1
        seen[s] = r
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
    return [np.array(r, np.int64) for r in rounds]


def _top_events(w: Windows, rows: ScoredRows) -> list[list[tuple[str, int, str, float]]]:
    """Per row, (event id, time ms, kind, weight) of the most attended events."""
    out = []
    kinds = w.kinds
    for i in range(len(w)):
        positions = rows.top[i].tolist()
        if not positions or positions[0] < 0:
            out.append([])
            continue
        ids = w.ids[i].split(b"\0")
        times, codes, weights = w.times_ms[i], w.kind_codes[i], rows.weights[i]
        out.append(
            [
                (ids[t].decode(), int(times[t]), kinds[codes[t]], float(weights[j]))
                for j, t in enumerate(positions)
                if t >= 0
            ]
        )
    return out
