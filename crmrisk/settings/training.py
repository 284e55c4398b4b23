"""Training and the incremental trainer (``RISK_TRAINING__...``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from crmrisk.settings.sections import FROZEN

__all__ = ["TrainingSettings"]


class TrainingSettings(BaseModel):
    model_config = FROZEN

    data_dir: Path = Field(Path("data"), description="Folder with the vendored datasets.")
    seed: int = Field(0, description="Seed for splits, initialisation and shuffling.")
    epochs: int = Field(40, ge=1, description="Upper bound on epochs (early stopping ends sooner).")
    batch_size: int = Field(256, ge=1, description="Training mini-batch size.")
    device: str = Field(
        "auto",
        description="Where `crmrisk train` and `crmrisk worker train` train: 'auto' (CUDA when "
        "present), 'cpu' or 'cuda[:N]'.",
    )
    learning_rate: float = Field(3e-3, gt=0, description="AdamW learning rate.")
    patience: int = Field(5, ge=1, description="Epochs without validation gain before stopping.")
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="crmrisk train: keep an exponential moving average of the weights with this "
        "decay per step (0 = off; 0.99 gained 0.001-0.002 validation AUC on average in "
        "benchmarks/results/weight_averaging.json, within seed noise).",
    )
    results_dir: Path = Field(
        Path("benchmarks/results"), description="Where benchmark JSON, plots and reports go."
    )
    # Incremental refresh (`crmrisk worker train`), model registry and drift.
    retrain_every_s: float = Field(
        900.0, gt=0, description="Refresh at least this often when new labels exist (s)."
    )
    retrain_every_labels: int = Field(
        5000, ge=1, description="Refresh as soon as this many new labels have arrived."
    )
    min_new_labels: int = Field(
        200, ge=1, description="Never refresh on fewer new labels than this (any trigger)."
    )
    replay_sample: int = Field(
        5000, ge=0, description="Older examples mixed into each refresh so it does not forget."
    )
    replay_pool: int = Field(
        50_000, ge=0, description="Older examples remembered (uniform reservoir) for replay."
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of customers never trained on: the held-out slice."
    )
    holdout_size: int = Field(
        5000, ge=1, description="Most recent held-out examples champion and challenger face."
    )
    min_holdout: int = Field(
        200, ge=1, description="No promotion on a held-out slice smaller than this."
    )
    promotion_tolerance: float = Field(
        0.005, ge=0, description="Promote unless held-out AUC drops by more than this."
    )
    calibration_tolerance: float = Field(
        0.02, ge=0, description="Promote unless calibration error rises by more than this."
    )
    shadow_first: bool = Field(
        False,
        description="A refresh that passes the gate starts a shadow trial instead of going live; "
        "`crmrisk models guard --promote-on-pass` makes it live once it passes on live traffic.",
    )
    fine_tune_epochs: int = Field(4, ge=1, description="Epoch bound of one refresh.")
    fine_tune_learning_rate: float = Field(
        5e-4, gt=0, description="AdamW learning rate when fine-tuning from the live weights."
    )
    history_limit: int = Field(
        128, ge=1, description="Events per customer the trainer keeps for point-in-time rebuilds."
    )
    drift_psi_threshold: float = Field(
        0.25, gt=0, description="PSI above which a score or feature counts as drifted."
    )
    drift_recent: int = Field(5000, ge=1, description="Latest values per quantity PSI compares.")
    drift_min_values: int = Field(
        500, ge=1, description="No PSI (and no drift) on fewer recent values than this."
    )
    drift_features: int = Field(
        8, ge=0, description="Event features watched for drift (most variable in training)."
    )
    drift_retrain: bool = Field(True, description="Drift above the threshold refreshes early.")
    pointer_history: int = Field(
        200, ge=1, description="Model pointer changes kept per domain in Redis."
    )
    reload_check_every_s: float = Field(
        5.0, gt=0, description="Inference workers re-read the model pointer at least this often."
    )
    metrics_port: int = Field(
        9309, ge=0, description="Prometheus /metrics port of `crmrisk worker train` (0 = off)."
    )
