"""load_domain: built-in adapters with options, spec-driven domains, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crmrisk.training.datasets import DOMAINS, DataError, fit_encoder, load_domain, to_arrays

DATA = Path(__file__).resolve().parents[3] / "data"


def test_load_domain__telco_end_to_end_is_json_describable_and_fits_on_train():
    data = load_domain("telco", DATA, seed=2)
    assert {len(data.train), len(data.val), len(data.test)} and data.domain == "telco"
    json.dumps(data.info)  # goes into the model manifest
    encoder = fit_encoder(data.spec, data.train)
    arrays = to_arrays(data.test, encoder, window=32)
    assert arrays.events.shape == (len(data.test), 6, encoder.event_dim)
    assert arrays.mask.all() and np.isfinite(arrays.events).all()
    assert json.loads(json.dumps(encoder.to_dict()))["domain"] == "telco"


def test_load_domain__options_reach_the_adapter_and_bad_ones_fail():
    assert set(DOMAINS) == {"credit", "telco", "bank", "retail"}
    with pytest.raises(TypeError):
        load_domain("telco", DATA, seed=0, split="time")
    with pytest.raises(TypeError, match="no options"):
        load_domain("generic", DATA, spec={"domain": "x"}, window=3)
    # the built-ins are specs now: a missing file is the spec path's DataError naming it
    with pytest.raises(DataError, match="credit_default"):
        load_domain("credit", DATA / "missing")
