"""The risk model: QRCNN -> LSTM -> cross-attention, its ablations and losses.

Public surface (ARCHITECTURE.md, "The model"): ``build(variant, event_dim, profile_dim,
quantiles)`` returns a module whose ``forward(events, mask, profile)`` gives a ``RiskOutput``;
``FeatureEncoder`` turns event and profile fields into the vectors the model reads. Saving and
loading a model (``save_checkpoint`` / ``load_checkpoint``) belongs to ``lifecycle``.

The network reads top to bottom in ``model/network.py`` (hyper-parameters in ``model/config.py``,
the parts the ablations swap in in ``model/ablations.py``, named variants in ``model/variants.py``);
``model/fused.py`` is its serving form, the members fused, with the same outputs.
"""

from crmrisk.model.config import RiskModelConfig
from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
from crmrisk.model.losses import head_loss, pinball_loss, risk_loss
from crmrisk.model.network import RiskModel, RiskOutput
from crmrisk.model.variants import DEFAULT_VARIANT, VARIANTS, Variant, build, variants_in

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
    "head_loss",
    "pinball_loss",
    "risk_loss",
    "variants_in",
]
