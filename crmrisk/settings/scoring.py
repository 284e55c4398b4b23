"""The inference worker and where models live (``RISK_SCORING__...``, ``RISK_MODEL__...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from crmrisk.settings.sections import FROZEN

__all__ = ["ModelSettings", "ScoringSettings"]


class ScoringSettings(BaseModel):
    model_config = FROZEN

    max_batch_size: int = Field(512, ge=1, description="Largest batch the inference worker runs.")
    max_delay_ms: float = Field(5.0, ge=0, description="Longest a request waits for a batch (ms).")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'.")
    # fp32: on an H200 bf16 was slower at every batch size (issue 18); gpu_throughput.py
    # measures both per shape.
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Precision of the forward pass on CUDA (the CPU runs fp32)."
    )
    cuda_graphs: bool = Field(
        False,
        description="On CUDA, capture the scoring forward pass once per bucketed batch shape "
        "and replay it (off until benchmarks/gpu_check.sh has measured it on a GPU).",
    )
    alert_threshold: float = Field(0.5, ge=0, le=1, description="Probability that fires an alert.")
    alert_hysteresis: float = Field(
        0.05, ge=0, le=1, description="Score must fall this far below the threshold to re-arm."
    )
    alert_cooldown_s: float = Field(
        3600.0, ge=0, description="Minimum seconds between two alerts for one customer."
    )
    top_events: int = Field(3, ge=0, description="Events named in each score's explanation.")
    reasons: int = Field(
        5, ge=0, description="Reason codes (integrated gradients) per alert; 0 = off."
    )
    # 16 steps: on the credit model's benchmark alerts, sums within 0.0094 of score - baseline
    # and the same ordered top three as 256 steps for 98.6% of them (8 steps: 0.019 and 96.9%;
    # benchmarks/reasons.py, accuracy_vs_256_steps).
    reason_steps: int = Field(
        16, ge=1, description="Integration steps of the reason codes (more: smaller error)."
    )
    explain_in_process: bool = Field(
        True,
        description="Explain alerts (reason codes) in a process of the worker's own, so the "
        "scoring loop never waits for the interpreter lock they hold; false: in a thread.",
    )
    metrics_port: int = Field(9308, ge=0, description="Prometheus /metrics port (0 = off).")
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address /metrics and /health listen on (workers and trainer); 0.0.0.0 in "
        "containers, which needs metrics_token.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Access token of /metrics and /health (workers and trainer): sent as "
        "'Authorization: Bearer <token>' or as the basic-auth password, else 401. Required to "
        "listen beyond loopback; the dashboard sends it to read a worker's /metrics.",
    )
    exposure_fields: dict[str, str] = Field(
        default_factory=lambda: {"credit": "LIMIT_BAL"},
        description="Per domain, the profile field holding the amount at risk (expected loss).",
    )
    risk_types: dict[str, str] = Field(
        default_factory=lambda: {
            "credit": "default",
            "telco": "churn",
            "bank": "non_conversion",
            "retail": "churn",
        },
        description="Per domain, what an alert warns of (default, churn, non_conversion, risk).",
    )
    outage_max_backoff_s: float = Field(
        5.0, gt=0, description="Longest wait between two retries while Redis or Kafka is down."
    )
    outage_give_up_s: float = Field(
        900.0,
        gt=0,
        description="A worker stops (for its supervisor to restart) after one outage this long.",
    )
    rebuild_state: bool = Field(
        True,
        description="Restore a partition's windows and alert states from its input topic when "
        "Redis lost them (or a tail of them), before scoring it.",
    )
    max_inflight: int = Field(
        4,
        ge=1,
        description="Batches scored and published whose alerts, state writes and commits are "
        "still pending (they overlap the next batches; more: bursts absorbed, more redelivered "
        "after a crash).",
    )
    max_customers: int = Field(
        200_000,
        ge=1,
        description="Customers per domain a worker holds in memory (least recently used ones "
        "beyond it are forgotten, Redis keeps them): about 2.7 KB each with 6 events of credit's "
        "width, 11 KB with full 32-event windows (benchmarks/results/state_memory.json).",
    )
    handoff: Literal["inline", "topic"] = Field(
        "inline",
        description="Ingest -> inference: in-process ('inline') or via the score-requests topic.",
    )
    field_policy: Literal["strict", "coerce"] = Field(
        "strict",
        description="A field value of the wrong type for its domain's model (text or true/false "
        "in a numeric field, e.g. bill_amt 'abc'): 'strict' makes the event a dead letter "
        "(invalid_field_value, naming the field, the value and the expected type); 'coerce' "
        "encodes the value as missing and counts it (crmrisk_coerced_fields_total{domain,field,"
        "to='missing'}). Either way, numeric text such as '12.5' is taken as its number and "
        "counted (to='number'), blank text as missing.",
    )
    field_policies: dict[str, Literal["strict", "coerce"]] = Field(
        default_factory=dict,
        description="Per domain, a field_policy overriding the one above (e.g. {'retail': "
        "'coerce'}).",
    )
    # Counted, not rejected, by default: the replayed datasets carry no field or kind their
    # models do not know, but a producer adding a field before the model is retrained to use it
    # is normal schema evolution (the trainer reads crm.events itself), and the encoder has an
    # unknown-kind slot so that a kind first seen while serving never fails.
    unknown_policy: Literal["count", "reject"] = Field(
        "count",
        description="Field names and event kinds a domain's model does not know: 'count' "
        "(crmrisk_unknown_fields_total / crmrisk_unknown_kinds_total per name, the first 100 "
        "names per domain, later ones as '_other'; the event is scored) or 'reject' (also dead "
        "letters: unknown_field, unknown_kind).",
    )


class ModelSettings(BaseModel):
    model_config = FROZEN

    dir: Path = Field(Path("models"), description="Where trained models and the registry live.")
    variant: str = Field("qrcnn-lstm-cross", description="Architecture variant to train.")
