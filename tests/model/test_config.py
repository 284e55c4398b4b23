"""RiskModelConfig: JSON round trip, and bad values named in the error."""

from __future__ import annotations

import pytest

from crmrisk.model import RiskModelConfig, build
from tests.model.conftest import EVENT_DIM, PROFILE_DIM


def test_config__round_trips_through_a_dict():
    config = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=0).config
    assert RiskModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"frontend": "rnn"},
        {"attention": "global"},
        {"quantiles": (0.9, 0.1)},
        {"quantiles": (0.0, 0.5)},
        {"hidden": 0},
        {"dropout": 1.0},
        {"channels": 30},
    ],
)
def test_config__rejects_bad_values_with_the_field_name(bad):
    field = next(iter(bad))
    with pytest.raises(ValueError, match=field if field != "channels" else "channels"):
        build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, **bad)


def test_from_dict__a_config_saved_before_head_ensembles_has_one_head():
    saved = RiskModelConfig(event_dim=4, profile_dim=2, head_members=8).to_dict()
    assert RiskModelConfig.from_dict(saved).head_members == 8
    del saved["head_members"]
    assert RiskModelConfig.from_dict(saved).head_members == 1


def test_config__rejects_no_heads():
    with pytest.raises(ValueError, match="head_members=0"):
        RiskModelConfig(event_dim=4, profile_dim=2, head_members=0)
