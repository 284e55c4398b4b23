"""The risk model: QRCNN -> LSTM -> cross-attention, its ablations and losses.

Public surface (ARCHITECTURE.md, "The model"): ``build(variant, event_dim, profile_dim,
quantiles)`` returns a module whose ``forward(events, mask, profile)`` gives a ``RiskOutput``;
``FeatureEncoder`` turns event and profile fields into the vectors the model reads. Saving and
loading a model (``save_checkpoint`` / ``load_checkpoint``) belongs to ``lifecycle``.
"""

from model.features import FeatureEncoder, FeatureSpec, FieldRole
from model.flops import count_flops
from model.losses import pinball_loss, risk_loss
from model.output import RiskOutput
from model.risk_model import RiskModel, RiskModelConfig
from model.variants import DEFAULT_VARIANT, VARIANTS, Variant, build, variants_in

__all__ = [
    "DEFAULT_VARIANT",
    "VARIANTS",
    "FeatureEncoder",
    "FeatureSpec",
    "FieldRole",
    "RiskModel",
    "RiskModelConfig",
    "RiskOutput",
    "Variant",
    "build",
    "count_flops",
    "pinball_loss",
    "risk_loss",
    "variants_in",
]
