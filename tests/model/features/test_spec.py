"""FeatureSpec and FieldRole refuse what no encoder could fit."""

from __future__ import annotations

import pytest

from crmrisk.model.features import FeatureSpec, FieldRole


def test_spec__rejects_duplicate_roles_and_bad_encodings():
    with pytest.raises(ValueError, match="twice"):
        FeatureSpec("d", (FieldRole("a", "numeric"), FieldRole("a", "numeric")), ())
    with pytest.raises(ValueError, match="encoding"):
        FieldRole("a", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numeric encoding"):
        FeatureSpec("d", (), (), numeric="spline")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins"):
        FeatureSpec("d", (), (), bins=0)
