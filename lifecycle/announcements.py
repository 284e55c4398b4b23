"""The control-plane message: ``risk.model-updates`` announces each change of a live model.

An announcement only wakes workers sooner: they follow the pointer (``lifecycle/pointer.py``),
not the messages, so a duplicated, reordered or lost one cannot load a wrong version. Sent by
``lifecycle/promoter.py`` with kafka-python, the one Kafka client of the control plane; this
module needs no Kafka client, so readers of the topic can parse it with any.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["ModelUpdate", "parse_model_update"]


class ModelUpdate(BaseModel):
    """A domain's live model changed from ``previous`` to ``version`` (``kind`` "live"), or a
    trial of ``version`` started (``trial_start``: ``mode`` shadow or canary, ``percent``) or
    ended (``trial_end``: ``outcome`` promoted, rolled_back or stopped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    domain: str
    version: str
    previous: str | None
    reason: str
    changed_at: AwareDatetime
    metrics: dict[str, float] = Field(default_factory=dict)
    kind: Literal["live", "trial_start", "trial_end"] = "live"
    mode: Literal["shadow", "canary"] | None = None
    percent: float | None = None
    outcome: Literal["promoted", "rolled_back", "stopped"] | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @property
    def key(self) -> bytes:
        return self.domain.encode()


def parse_model_update(raw: bytes | str) -> ModelUpdate:
    """Validate one ``risk.model-updates`` message (raises ``pydantic.ValidationError``)."""
    return ModelUpdate.model_validate_json(raw)
