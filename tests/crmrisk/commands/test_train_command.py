"""``crmrisk train`` smoke test: a real (tiny) training run through the CLI, then reload it."""

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from crmrisk.cli import app
from model import load_checkpoint

DATA = Path(__file__).resolve().parents[3] / "data"


def test_train__saves_a_checkpoint_that_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--domain",
            "telco",
            "--epochs",
            "1",
            "--max-rows",
            "150",
            "--out",
            str(tmp_path),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test AUC" in result.output

    (saved,) = list((tmp_path / "telco").iterdir())
    model, manifest = load_checkpoint(saved)
    assert manifest["domain"] == "telco" and manifest["version"] == saved.name
    assert manifest["variant"] == "qrcnn-lstm-cross"
    assert manifest["encoder"]["domain"] == "telco"
    test = manifest["metrics"]["test"]
    assert test["threshold"] == manifest["metrics"]["val"]["threshold"]
    assert 0.0 <= test["auc"] <= 1.0
    assert manifest["data_window"]["seed"] == 0
    # The reloaded model scores.
    dims = manifest["hyperparameters"]
    out = model(
        torch.zeros(2, 3, dims["event_dim"]),
        torch.tensor([[True, True, False], [True, False, False]]),
        torch.zeros(2, dims["profile_dim"]),
    )
    assert np.isfinite(out.probability.detach().numpy()).all()
    json.dumps(manifest)  # plain JSON


def test_train__unknown_domain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(app, ["train", "--domain", "mortgage", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "mortgage" in str(result.exception) + result.output
