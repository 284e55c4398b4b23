"""The ``risk.model-updates`` message: what is sent is what is parsed, and nothing else."""

import json
from datetime import UTC, datetime

import pydantic
import pytest

from crmrisk.lifecycle.announcements import ModelUpdate, parse_model_update


def test_model_update__round_trips_keyed_by_domain():
    update = ModelUpdate(
        domain="credit",
        version="v0002",
        previous="v0001",
        reason="canary passed",
        changed_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="trial_start",
        mode="canary",
        percent=5.0,
    )
    assert parse_model_update(update.to_bytes()) == update
    assert update.key == b"credit"


def test_parse_model_update__refuses_unknown_fields_and_naive_times():
    good = {"domain": "credit", "version": "v1", "previous": None, "reason": "r"}
    assert parse_model_update(json.dumps(dict(good, changed_at="2026-01-01T00:00:00+00:00")))
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        parse_model_update(json.dumps(dict(good, changed_at="2026-01-01T00:00:00")))
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        parse_model_update(
            json.dumps(dict(good, changed_at="2026-01-01T00:00:00+00:00", surprise=1))
        )
