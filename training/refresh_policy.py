"""When the incremental trainer refreshes: a label count, a timer, or drift."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RefreshPolicy"]


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh every ``every_s`` seconds or ``every_labels`` new labels, whichever comes first,
    never on fewer than ``min_labels`` new labels, whatever the trigger."""

    every_s: float
    every_labels: int
    min_labels: int

    def due(self, elapsed_s: float, new_labels: int, drifted: bool = False) -> str | None:
        """The reason a refresh is due now, or None.

        >>> RefreshPolicy(every_s=600, every_labels=1000, min_labels=1).due(10, 1000)
        'labels: 1000 new >= 1000'
        >>> RefreshPolicy(every_s=600, every_labels=1000, min_labels=1).due(10, 5) is None
        True
        """
        if new_labels < max(self.min_labels, 1):
            return None
        if new_labels >= self.every_labels:
            return f"labels: {new_labels} new >= {self.every_labels}"
        if elapsed_s >= self.every_s:
            return f"timer: {elapsed_s:.0f} s >= {self.every_s:.0f} s"
        if drifted:
            return "drift above threshold"
        return None
