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
