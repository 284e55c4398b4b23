"""The package's public surface: every exported name exists, the contract names are there."""

from __future__ import annotations

from crmrisk import model


def test_all__every_exported_name_resolves():
    missing = [name for name in model.__all__ if not hasattr(model, name)]
    assert not missing


def test_all__exports_the_architecture_contract():
    contract = {"build", "VARIANTS", "RiskOutput"}
    assert contract | {"pinball_loss", "FeatureEncoder"} <= set(model.__all__)
