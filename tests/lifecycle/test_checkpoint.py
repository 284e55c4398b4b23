"""Checkpoints: safetensors + manifest, atomic writes, hash verification, clear errors."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from crmrisk.lifecycle import CheckpointError, ChecksumMismatch, load_checkpoint, save_checkpoint
from crmrisk.lifecycle.checkpoint import MANIFEST_FILE, WEIGHTS_FILE
from crmrisk.model import build
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, random_batch

ENCODER = {"domain": "credit", "event_dim": EVENT_DIM, "stats": {"mean": [0.5, 1.5]}}


def _saved(tmp_path, **overrides):
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=3, **overrides).eval()
    manifest = {
        "version": "v0007",
        "encoder": ENCODER,
        "metrics": {"auc": 0.78},
        "data_window": {"train": ["2005-04", "2005-09"]},
    }
    directory = tmp_path / "ckpt"
    written = save_checkpoint(directory, model, manifest)
    return model, directory, written


def test_save__manifest_records_hash_variant_config_and_caller_fields(tmp_path):
    model, directory, written = _saved(tmp_path, hidden=24)
    on_disk = json.loads((directory / MANIFEST_FILE).read_text())
    assert on_disk == written
    weights = (directory / WEIGHTS_FILE).read_bytes()
    assert on_disk["sha256"] == hashlib.sha256(weights).hexdigest()
    assert on_disk["variant"] == "qrcnn-lstm-cross"
    assert on_disk["hyperparameters"] == model.config.to_dict()
    assert on_disk["hyperparameters"]["hidden"] == 24
    assert on_disk["encoder"] == ENCODER and on_disk["version"] == "v0007"
    assert on_disk["metrics"] == {"auc": 0.78} and "created_at" in on_disk


def test_save__weights_are_plain_safetensors(tmp_path):
    model, directory, _ = _saved(tmp_path)
    with safe_open(str(directory / WEIGHTS_FILE), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())


def test_save__leaves_no_temporary_files(tmp_path):
    _, directory, _ = _saved(tmp_path)
    save_checkpoint(directory, build("lstm", EVENT_DIM, PROFILE_DIM), {"version": "2"})
    assert sorted(p.name for p in directory.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_save__overwrites_an_existing_checkpoint(tmp_path):
    _, directory, _ = _saved(tmp_path)
    other = build("lstm", EVENT_DIM, PROFILE_DIM, seed=1).eval()
    save_checkpoint(directory, other, {"version": "2"})
    loaded, manifest = load_checkpoint(directory)
    assert manifest["variant"] == "lstm" and manifest["version"] == "2"
    batch = random_batch([3], slots=3)
    with torch.inference_mode():
        assert torch.equal(loaded(*batch).logit, other(*batch).logit)


@torch.inference_mode()
def test_load__round_trip_gives_identical_outputs_in_eval_mode(tmp_path):
    model, directory, _ = _saved(tmp_path)
    loaded, manifest = load_checkpoint(directory)
    assert not loaded.training and manifest["encoder"] == ENCODER
    batch = random_batch([1, 4, 6], slots=6)
    before, after = model(*batch), loaded(*batch)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def test_load__with_dtype_converts_parameters(tmp_path):
    _, directory, _ = _saved(tmp_path)
    loaded, _ = load_checkpoint(directory, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    events, mask, profile = random_batch([2], slots=2)
    assert loaded(events, mask, profile).logit.dtype == torch.float64


def test_load__refuses_a_tampered_weights_file(tmp_path):
    _, directory, _ = _saved(tmp_path)
    path = directory / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # flip one bit of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="refusing"):
        load_checkpoint(directory)


def test_load__refuses_weights_swapped_from_another_checkpoint(tmp_path):
    _, directory, _ = _saved(tmp_path)
    other = tmp_path / "other"
    save_checkpoint(other, build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=9), {})
    (directory / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ChecksumMismatch):
        load_checkpoint(directory)


def test_load__missing_manifest_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"manifest\.json"):
        load_checkpoint(tmp_path)


def test_load__manifest_whose_config_does_not_fit_the_weights_is_refused(tmp_path):
    _, directory, written = _saved(tmp_path)
    written["hyperparameters"]["hidden"] = 8  # the sha256 still matches: weights untouched
    (directory / MANIFEST_FILE).write_text(json.dumps(written))
    with pytest.raises(CheckpointError, match="does not rebuild"):
        load_checkpoint(directory)


def test_load__unknown_format_is_refused(tmp_path):
    _, directory, written = _saved(tmp_path)
    written["format"] = 99
    (directory / MANIFEST_FILE).write_text(json.dumps(written))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(directory)


def test_save__non_json_manifest_is_refused_before_writing(tmp_path):
    model = build("lstm", EVENT_DIM, PROFILE_DIM)
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "a", model, {"metrics": {"auc": float("nan")}})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "b", model, {"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_save__refuses_a_module_that_is_not_a_risk_model(tmp_path):
    with pytest.raises(CheckpointError, match="RiskModel"):
        save_checkpoint(tmp_path / "x", torch.nn.Linear(2, 2), {})


def test_load__calibration_and_margin_travel_with_the_weights(tmp_path):
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=3).eval()
    model.set_calibration(0.7, -0.4)
    model.set_interval_margin(0.25)
    save_checkpoint(tmp_path / "c", model, {"version": "v1"})
    loaded, _ = load_checkpoint(tmp_path / "c")
    assert loaded.calibration.tolist() == pytest.approx([0.7, -0.4])
    assert float(loaded.interval_margin) == pytest.approx(0.25)
    batch = random_batch([6, 2, 1, 4], 6, seed=1)
    torch.testing.assert_close(loaded(*batch).probability, model(*batch).probability)


def test_load__a_checkpoint_from_before_members_loads_as_one_member(tmp_path):
    """Weights saved by the single-network RiskModel (no ``members.`` prefix, no buffers)."""
    from safetensors.torch import save as save_safetensors

    model, directory, written = _saved(tmp_path, members=1)
    legacy = {
        k.removeprefix("members.0."): v
        for k, v in model.state_dict().items()
        if k.startswith("members.0.")
    }
    data = save_safetensors({k: v.contiguous() for k, v in legacy.items()})
    (directory / WEIGHTS_FILE).write_bytes(data)
    manifest = dict(written, sha256=hashlib.sha256(data).hexdigest())
    del manifest["hyperparameters"]["members"]
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    loaded, _ = load_checkpoint(directory)
    assert len(loaded.members) == 1 and loaded.calibration.tolist() == [1.0, 0.0]
    batch = random_batch([5, 3, 1], 5, seed=2)
    torch.testing.assert_close(loaded(*batch).logit, model(*batch).logit)
