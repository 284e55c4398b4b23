"""How the served models are doing, from what the stream publishes: bounded, pure.

Fed the scores (``risk.scores``), the outcomes (``crm.outcomes``) and a challenger's shadow
scores (``risk.scores.shadow``) as the dashboard's consumers read them (the tests feed it by
hand), it reports per domain, chunk of score event time and model version:

- as ``training.performance.performance_by_chunk``: the CBPE estimate (``estimate``), AUC with
  its band and the expected positives, on every score of the chunk, and the realized AUC
  (``realized``) of the scores an outcome joined point in time (``join_outcomes``);
- the reliability curve of each version over every joined pair kept (``realized``);
- champion vs challenger per chunk: mean |difference| of the probabilities, the share of rows
  where both make the same alert decision (probability reaches the threshold; cool-down and
  re-arming replayed for neither), each side's would-be alerts; and a sample of (champion,
  challenger) probability pairs for a scatter.

The estimate holds only under ``training.performance.ASSUMPTIONS``; the report carries them.

Memory is bounded: the newest ``chunks`` chunks of scores per domain (by event time; a score
older than all of them once that many are held is dropped), at most ``chunk_scores`` scores per
chunk (the newest), ``outcomes`` outcomes per domain, and per shadow pair the newest ``chunks``
chunks of running sums, ``scatter`` probability pairs per domain. Scores are kept slim (no reason
codes or attended events).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from crmrisk.stream.events import Outcome, RiskScore, ShadowScore
from crmrisk.training.performance import ASSUMPTIONS, Realized, estimate, join_outcomes, realized

__all__ = ["PerformanceView", "ShadowChunk"]


@dataclass
class ShadowChunk:
    """Running sums of one (champion, challenger) pair over one chunk of event time."""

    n: int = 0
    abs_diff: float = 0.0  # sum of |challenger - champion|
    same_decision: int = 0  # both reach the threshold, or neither does
    challenger_alerts: int = 0  # the challenger's would_alert
    champion_alerts: int = 0  # the champion's probability reaches the threshold

    def add(self, shadow: ShadowScore, threshold: float) -> None:
        champion_fires = shadow.champion_probability >= threshold
        self.n += 1
        self.abs_diff += abs(shadow.probability - shadow.champion_probability)
        self.same_decision += int(champion_fires == shadow.would_alert)
        self.challenger_alerts += int(shadow.would_alert)
        self.champion_alerts += int(champion_fires)


class PerformanceView:
    """Estimated vs realized performance and champion vs challenger, per domain.

    Parameters
    ----------
    threshold
        The alert threshold: predicted positive means ``p >= threshold``.
    chunk_s
        Chunk length in seconds, over score event time (as ``crmrisk models performance``).
    chunks
        Chunks kept per domain (the newest by event time).
    chunk_scores
        Scores kept per domain and chunk (the newest).
    outcomes
        Outcomes kept per domain (the newest).
    scatter
        (champion, challenger) probability pairs kept per domain for the scatter.
    draws
        Sampled label vectors behind the estimate's band (``training.performance.estimate``).
    """

    def __init__(
        self,
        threshold: float,
        chunk_s: float,
        chunks: int,
        chunk_scores: int,
        outcomes: int,
        scatter: int,
        draws: int,
    ) -> None:
        if chunk_s <= 0 or chunks < 1:
            raise ValueError(f"chunk_s must be > 0 and chunks >= 1, got {chunk_s} and {chunks}")
        self.threshold, self.chunk_s, self.draws = threshold, chunk_s, draws
        self._chunks, self._chunk_scores = chunks, chunk_scores
        self._outcomes_kept, self._scatter_kept = outcomes, scatter
        self._scores: dict[str, dict[int, deque[RiskScore]]] = defaultdict(dict)
        self._outcomes: dict[str, deque[Outcome]] = {}
        # domain -> (champion, challenger) -> chunk index -> sums
        self._shadow: dict[str, dict[tuple[str, str], dict[int, ShadowChunk]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        self._scatter: dict[str, deque[tuple[float, float]]] = {}
        self.dropped = 0  # scores and shadow scores older than every chunk held
        self.changed: set[str] = set()  # domains with news since their last report
        # The consumer adds while a thread reports: a report copies what it reads under it.
        self._lock = threading.Lock()

    def _index(self, t: datetime) -> int:
        return int(t.timestamp() // self.chunk_s)

    def _slot(self, held: dict[int, Any], index: int, new) -> Any | None:
        """The chunk ``index`` of ``held``, made if new; the oldest dropped beyond ``chunks``;
        None for a chunk older than all ``chunks`` held."""
        if index not in held:
            if len(held) >= self._chunks and index < min(held):
                return None
            held[index] = new()
            if len(held) > self._chunks:
                del held[min(held)]
        return held[index]

    def add_score(self, score: RiskScore) -> None:
        slim = RiskScore.model_construct(  # already validated; the fields the join reads only
            customer_id=score.customer_id,
            domain=score.domain,
            event_id=score.event_id,
            event_time=score.event_time,
            probability=score.probability,
            model_version=score.model_version,
            scored_at=score.scored_at,
        )
        with self._lock:
            held = self._scores[score.domain]
            index = self._index(score.event_time)
            chunk = self._slot(held, index, lambda: deque(maxlen=self._chunk_scores))
            if chunk is None:
                self.dropped += 1
                return
            chunk.append(slim)
            self.changed.add(score.domain)

    def add_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            kept = self._outcomes.setdefault(outcome.domain, deque(maxlen=self._outcomes_kept))
            kept.append(outcome)
            self.changed.add(outcome.domain)

    def add_shadow(self, shadow: ShadowScore) -> None:
        with self._lock:
            held = self._shadow[shadow.domain][(shadow.champion_version, shadow.model_version)]
            chunk = self._slot(held, self._index(shadow.event_time), ShadowChunk)
            if chunk is None:
                self.dropped += 1
                return
            chunk.add(shadow, self.threshold)
            scatter = self._scatter.setdefault(shadow.domain, deque(maxlen=self._scatter_kept))
            scatter.append((shadow.champion_probability, shadow.probability))
            self.changed.add(shadow.domain)

    def report(self, domain: str) -> dict[str, Any]:
        """``domain``'s performance as JSON-able values (NaN as None), chunks oldest first."""
        with self._lock:  # a copy, then the work without the lock
            self.changed.discard(domain)
            held = {i: list(chunk) for i, chunk in self._scores.get(domain, {}).items()}
            outcomes = list(self._outcomes.get(domain, ()))
            shadow = self._shadow_report(domain)
            scatter = [[round(a, 4), round(b, 4)] for a, b in self._scatter.get(domain, ())]
        scores = [s for chunk in held.values() for s in chunk]
        # As performance_by_chunk (its chunks are ours), but one join serves both the chunks'
        # realized figures and the calibration curve: the join is most of a report's time.
        joined = join_outcomes(scores, outcomes)
        served: dict[tuple[str, int], list[float]] = defaultdict(list)
        for i, chunk in held.items():
            for score in chunk:
                served[(score.model_version, i)].append(score.probability)
        labelled: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
        pooled: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for score, outcome in joined:
            pair = (score.probability, outcome.label)
            labelled[(score.model_version, self._index(score.event_time))].append(pair)
            pooled[score.model_version].append(pair)
        versions: dict[str, dict[str, Any]] = {}
        for version, i in sorted(served):
            e = estimate(np.array(served[(version, i)]), self.threshold, self.draws)
            r = _realized(labelled.get((version, i)), self.threshold)
            versions.setdefault(version, {"chunks": [], "reliability": None})
            versions[version]["chunks"].append(
                {
                    "start": datetime.fromtimestamp(i * self.chunk_s, UTC).isoformat(),
                    "n": e.n,
                    "estimated_auc": _number(e.auc),
                    "auc_std": _number(e.auc_std),
                    "expected_positives": _number(e.expected_positives),
                    "realized_auc": None if r is None else _number(r.auc),
                    "labelled": 0 if r is None else r.n,
                    "positives": 0 if r is None else r.positives,
                }
            )
        for version, pairs in pooled.items():
            observed, mean_p = _realized(pairs, self.threshold).reliability
            versions[version]["reliability"] = {
                "mean_p": [round(float(x), 4) for x in mean_p],
                "observed": [round(float(x), 4) for x in observed],
                "n": len(pairs),
            }
        return {
            "threshold": self.threshold,
            "chunk_s": self.chunk_s,
            "assumptions": ASSUMPTIONS,
            "scores": len(scores),
            "outcomes": len(outcomes),
            "versions": versions,
            "shadow": shadow,
            "scatter": scatter,
        }

    def _shadow_report(self, domain: str) -> list[dict[str, Any]]:
        out = []
        for (champion, challenger), held in sorted(self._shadow.get(domain, {}).items()):
            chunks = [
                {
                    "start": datetime.fromtimestamp(i * self.chunk_s, UTC).isoformat(),
                    "n": c.n,
                    "mean_abs_diff": round(c.abs_diff / c.n, 6),
                    "agreement": round(c.same_decision / c.n, 6),
                    "challenger_alerts": c.challenger_alerts,
                    "champion_alerts": c.champion_alerts,
                }
                for i, c in sorted(held.items())
            ]
            out.append({"champion": champion, "challenger": challenger, "chunks": chunks})
        return out


def _realized(pairs: list[tuple[float, int]] | None, threshold: float) -> Realized | None:
    if not pairs:
        return None
    p, y = map(np.array, zip(*pairs, strict=True))
    return realized(p, y, threshold)


def _number(x: float | None) -> float | None:
    """JSON has no NaN: None instead (a chunk with one score has no AUC)."""
    return None if x is None or math.isnan(x) else round(float(x), 6)
