"""When a score becomes an alert: a threshold with hysteresis and a per-customer cool-down.

A pure function of (state, probability, time), so it is tested alone and replayed identically.
Time is the event time, not the wall clock: a replay at any speed fires the same alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmrisk.state import AlertState

__all__ = ["AlertPolicy", "decide", "decide_many"]


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    threshold: float  # probability at or above which an alert fires
    hysteresis: float  # the score must fall below threshold - hysteresis to re-arm
    cooldown_s: float  # at least this long (event time) between two alerts of one customer

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.hysteresis < 0:
            raise ValueError(f"hysteresis must be >= 0, got {self.hysteresis}")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {self.cooldown_s}")


def decide(
    policy: AlertPolicy, state: AlertState, probability: float, now_s: float
) -> tuple[bool, AlertState]:
    """Return (fire, new state) for one score.

    >>> p = AlertPolicy(threshold=0.5, hysteresis=0.1, cooldown_s=60)
    >>> fire, s = decide(p, AlertState(), 0.7, now_s=0)
    >>> fire, s.armed
    (True, False)
    >>> decide(p, s, 0.45, now_s=100)[0]  # hovering just under the threshold: still disarmed
    False
    >>> decide(p, decide(p, s, 0.3, now_s=100)[1], 0.7, now_s=120)[0]  # re-armed, then fires
    True
    """
    if not state.armed:
        if probability < policy.threshold - policy.hysteresis:
            return False, AlertState(armed=True, last_alert_s=state.last_alert_s)
        return False, state
    if probability < policy.threshold:
        return False, state
    last = state.last_alert_s
    # A late event older than the last alert counts as inside the cool-down.
    if last is not None and now_s - last < policy.cooldown_s:
        return False, state
    return True, AlertState(armed=False, last_alert_s=now_s)


def decide_many(
    policy: AlertPolicy,
    armed: np.ndarray,
    last_s: np.ndarray,
    probability: np.ndarray,
    now_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``decide`` for many customers at once (each once): (fire, armed, last alert s).

    ``last_s`` NaN means never. Row i equals ``decide`` of row i (tests/stream/
    test_alert_policy.py checks them against each other).

    >>> p = AlertPolicy(threshold=0.5, hysteresis=0.1, cooldown_s=60)
    >>> fire, armed, last = decide_many(p, np.array([True, False, True]),
    ...     np.array([np.nan, 0.0, 90.0]), np.array([0.7, 0.3, 0.9]), np.array([100.0] * 3))
    >>> fire.tolist(), armed.tolist(), last.tolist()
    ([True, False, False], [False, True, True], [100.0, 0.0, 90.0])
    """
    with np.errstate(invalid="ignore"):
        cooled = np.isnan(last_s) | ~(now_s - last_s < policy.cooldown_s)
    fire = armed & (probability >= policy.threshold) & cooled
    rearm = ~armed & (probability < policy.threshold - policy.hysteresis)
    return fire, (armed & ~fire) | rearm, np.where(fire, now_s, last_s)
