"""Feature encoding: one mapping from event and profile fields to float32 vectors.

The same fitted ``FeatureEncoder`` serves training arrays, offline evaluation and the live
stream. Three parts, read in this order:

- ``spec.py``: ``FeatureSpec`` / ``FieldRole``, which fields a domain uses and how;
- ``columns.py``: a fitted column per field (numeric with piecewise-linear bins, or
  categorical one-hot with an unknown slot), how it encodes a value and how it is fitted;
- ``encoder.py``: ``FeatureEncoder``, the vector layout, fitting, the per-event fast path for
  the stream, the batch path for training arrays, and the manifest form.
"""

from crmrisk.model.features.columns import CategoricalColumn, NumericColumn
from crmrisk.model.features.encoder import ENCODER_FORMAT, FeatureEncoder
from crmrisk.model.features.spec import FeatureSpec, FieldRole

__all__ = [
    "ENCODER_FORMAT",
    "CategoricalColumn",
    "FeatureEncoder",
    "FeatureSpec",
    "FieldRole",
    "NumericColumn",
]
