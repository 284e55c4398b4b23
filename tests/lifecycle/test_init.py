"""The package's public surface: every exported name exists, the contract names are there."""

from __future__ import annotations

from crmrisk import lifecycle


def test_all__every_exported_name_resolves():
    missing = [name for name in lifecycle.__all__ if not hasattr(lifecycle, name)]
    assert not missing


def test_all__exports_the_architecture_contract():
    contract = {"save_checkpoint", "load_checkpoint", "ModelRegistry", "ModelPointer"}
    assert contract <= set(lifecycle.__all__)
